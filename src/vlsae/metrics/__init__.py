"""Metric suites, one module per family (science.md "Real-data metrics", HET E.3)."""
