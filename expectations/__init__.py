"""Great Expectations suites, one per stage, and the runner that gates the night."""
