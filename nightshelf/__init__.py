"""Nightshelf: a nightly batch recommendation pipeline."""

__version__ = "0.1.0"
