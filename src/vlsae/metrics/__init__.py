"""Metric suites, one module per family (docs/methods.md, "Real-data metrics"; HET E.3)."""

from __future__ import annotations

import numpy as np


def unit_rows(a: np.ndarray) -> np.ndarray:
    """The rows of ``a`` scaled to unit l2 norm (float64; a zero row stays zero)."""
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
