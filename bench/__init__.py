"""Benchmarks of connex-tui, run from the checkout (`python -m bench.<name>`)."""
