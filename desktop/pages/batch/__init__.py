"""Batch apply: run tasks over every row of a file."""
