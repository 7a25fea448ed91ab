"""PySpark jobs: pure DataFrame transforms with a thin main() for spark-submit."""
