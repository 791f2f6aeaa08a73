"""Metric suites, one module per family (docs/methods.md, "Real-data metrics"; HET E.3)."""
