"""Helpers for ``bench/run.py``: trees, timing, a loopback registry, cases, report."""
