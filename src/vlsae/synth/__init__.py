"""Synthetic data-generating processes with ground truth (science.md, "Synthetic studies")."""
