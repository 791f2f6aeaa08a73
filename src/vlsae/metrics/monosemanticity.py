"""Monosemanticity score (HET Fig. 8, after Pach et al.) in O(N d) per latent, streaming.

Each latent's activations over the N samples are min-max normalised, ``a_n = (z_n - lo) / (hi - lo)``.
With unit embeddings ``e_n`` from an external encoder and ``s_nm = e_n . e_m``:

    MS = sum_{n<m} a_n a_m s_nm / sum_{n<m} a_n a_m
       = (||sum_n a_n e_n||^2 - sum_n a_n^2) / ((sum_n a_n)^2 - sum_n a_n^2),

because ``sum_{n<m} a_n a_m s_nm = (||sum a_n e_n||^2 - sum a_n^2 ||e_n||^2) / 2``. Two passes: the
first finds ``lo`` and ``hi``, the second accumulates ``sum z_n e_n``, ``sum z_n``, ``sum z_n^2`` and
``sum e_n`` (the affine map is applied at the end, so sparse codes stay sparse). Latents with no pair
to score get NaN: those that never vary (``hi = lo``) and those with a single non-zero ``a_n``
(``sum_{n<m} a_n a_m = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class MonosemanticityAccumulator:
    """Second pass of the closed form; feed ``(codes, embeddings)`` batches, then :meth:`result`."""

    lo: np.ndarray
    hi: np.ndarray
    dim: int

    def __post_init__(self):
        k = len(self.lo)
        self.n = 0
        self.z_e = np.zeros((k, self.dim))
        self.z_sum, self.z_sq = np.zeros(k), np.zeros(k)
        self.e_sum = np.zeros(self.dim)

    def update(self, codes: np.ndarray, embeddings: np.ndarray) -> None:
        z = sparse.csr_matrix(codes, dtype=np.float64)
        self.n += codes.shape[0]
        self.z_e += (z.T @ np.asarray(embeddings, dtype=np.float64))
        self.z_sum += np.asarray(z.sum(0)).ravel()
        self.z_sq += np.asarray(z.multiply(z).sum(0)).ravel()
        self.e_sum += embeddings.sum(0)

    def result(self) -> np.ndarray:
        lo, span = self.lo, self.hi - self.lo
        with np.errstate(divide="ignore", invalid="ignore"):
            a_e = (self.z_e - lo[:, None] * self.e_sum[None, :]) / span[:, None]
            a_sum = (self.z_sum - self.n * lo) / span
            a_sq = (self.z_sq - 2 * lo * self.z_sum + self.n * lo ** 2) / span ** 2
            pairs = a_sum ** 2 - a_sq  # 2 sum_{n<m} a_n a_m
            ms = ((a_e ** 2).sum(1) - a_sq) / pairs
        return np.where((span > 0) & (pairs > 1e-9 * a_sum ** 2), ms, np.nan)


def code_range(batches) -> tuple[np.ndarray, np.ndarray]:
    """First pass: per-latent minimum and maximum over an iterable of dense ``B x K`` code batches."""
    lo = hi = None
    for codes in batches:
        b_lo, b_hi = codes.min(0).astype(np.float64), codes.max(0).astype(np.float64)
        lo = b_lo if lo is None else np.minimum(lo, b_lo)
        hi = b_hi if hi is None else np.maximum(hi, b_hi)
    return lo, hi

