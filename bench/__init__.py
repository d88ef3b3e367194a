"""Benchmarks that print tables and ratios, never pass/fail. Run them all with ``python -m bench``."""
