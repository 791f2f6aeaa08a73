"""Dictionary and code recovery against a ground truth (ISO App. C.2, Table 5).

* ``W(D, W)``: the 1-Wasserstein distance between the learned atoms and the true atoms, each set
  an empirical distribution with uniform weights on the unit sphere and Euclidean ground cost.
  With equally many atoms, optimal transport is an assignment: ``W = min_P (1/K) sum_i ||d_i - w_P(i)||``,
  solved by the Hungarian algorithm. ``sign_invariant`` uses ``min(||d - w||, ||d + w||)`` for
  dictionaries with signed codes (Matching Pursuit), where ``-w`` is the same atom.
* ``mma(Z, C)``: mean matching accuracy. Each latent's activation pattern is its column of the
  ``N x K`` code over the same N samples; the Hungarian algorithm pairs learned and true columns
  to maximise the summed cosine, and mma is the mean cosine over matched pairs.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def _unit_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def wasserstein_atoms(learned: np.ndarray, truth: np.ndarray, sign_invariant: bool = False) -> float:
    """``W(D, W)`` between ``K x d`` atom sets (rows, any norm; normalised here)."""
    if learned.shape != truth.shape:
        raise ValueError(f"need as many learned as true atoms of one dimension, got {learned.shape} and {truth.shape}")
    cos = _unit_rows(learned) @ _unit_rows(truth).T
    if sign_invariant:
        cos = np.abs(cos)
    cost = np.sqrt(np.clip(2.0 - 2.0 * cos, 0.0, None))  # ||a - b|| for unit a, b
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def mean_matching_accuracy(codes: np.ndarray, truth: np.ndarray) -> float:
    """``mma(Z, C)`` for ``N x K`` learned and true codes over the same samples (K may differ)."""
    if codes.shape[0] != truth.shape[0]:
        raise ValueError(f"codes cover {codes.shape[0]} samples, the truth {truth.shape[0]}")
    cos = _unit_rows(np.asarray(codes).T) @ _unit_rows(np.asarray(truth).T).T
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].sum() / max(codes.shape[1], truth.shape[1]))
