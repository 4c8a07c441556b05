"""Tests of benchmarks/run.py (the report and its processes, never its figures)."""
