"""Coactivation correlation and the Hungarian permutation (HET §5, eqs. 5-7).

``C_ij = Corr(z_img,i(x), z_txt,j(y))`` over paired *training* data (eq. 5), Pearson and signed.
Dead latents (zero on every training input) are excluded. ``P = argmax_P tr(C P)`` (eq. 6) is
solved by ``scipy.optimize.linear_sum_assignment`` on ``-C``; only the text SAE is re-indexed
(eq. 7): aligned text code ``z'_txt[i] = z_txt[perm[i]]``. The permutation is computed once and
saved, then reused for every evaluation set (recomputing it per set inflates metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from ..atomic import atomic_path
from ..metrics.heterogeneity import pair_histogram
from ..sae import PairedSAE
from ..store import EmbeddingStore


def sparse_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^T b`` (float64) for sparse codes: a sparse product costs O(B k^2), not O(B m^2)."""
    return (sparse.csr_matrix(a, dtype=np.float64).T @ sparse.csr_matrix(b, dtype=np.float64)).toarray()


@dataclass
class CoactivationStats:
    """Streaming first and second moments of paired codes (float64 accumulators)."""

    n: int
    sum_image: np.ndarray
    sum_text: np.ndarray
    sumsq_image: np.ndarray
    sumsq_text: np.ndarray
    cross: np.ndarray

    @classmethod
    def empty(cls, m_image: int, m_text: int) -> "CoactivationStats":
        z = np.zeros
        return cls(0, z(m_image), z(m_text), z(m_image), z(m_text), z((m_image, m_text)))

    def update(self, z_image: np.ndarray, z_text: np.ndarray) -> None:
        self.n += len(z_image)
        self.sum_image += z_image.sum(0)
        self.sum_text += z_text.sum(0)
        self.sumsq_image += (z_image.astype(np.float64) ** 2).sum(0)
        self.sumsq_text += (z_text.astype(np.float64) ** 2).sum(0)
        self.cross += sparse_cross(z_image, z_text)

    @property
    def live_image(self) -> np.ndarray:
        return self.sumsq_image > 0

    @property
    def live_text(self) -> np.ndarray:
        return self.sumsq_text > 0

    def correlation(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Pearson ``C`` (eq. 5), or only its ``rows`` (image latents); entries of zero-variance latents are 0."""
        n, rows = self.n, slice(None) if rows is None else rows
        cov = self.cross[rows] / n - np.outer(self.sum_image[rows] / n, self.sum_text / n)
        std_i = np.sqrt(np.maximum(self.sumsq_image[rows] / n - (self.sum_image[rows] / n) ** 2, 0.0))
        std_t = np.sqrt(np.maximum(self.sumsq_text / n - (self.sum_text / n) ** 2, 0.0))
        denom = np.outer(std_i, std_t)
        return np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)


@torch.no_grad()
def coactivation_stats(model: PairedSAE, store: EmbeddingStore, batch_size: int = 4096, progress: bool = True) -> CoactivationStats:
    """Accumulate the moments of ``(z_img(x), z_txt(y))`` over every pair of ``store``."""
    dev = next(model.parameters()).device
    stats = CoactivationStats.empty(model.side("image").m, model.side("text").m)
    for batch in tqdm(store.iter_batches(batch_size), total=store.n_batches(batch_size), desc="coactivation",
                      disable=not progress, mininterval=2.0):
        zi = model.side("image").encode(torch.from_numpy(batch.image).to(dev)).dense()
        zt = model.side("text").encode(torch.from_numpy(batch.text).to(dev)).dense()
        stats.update(zi.float().cpu().numpy(), zt.float().cpu().numpy())
    return stats


def hungarian_permutation(corr: np.ndarray, live_image: np.ndarray, live_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``tr(C P)`` over live latents; return ``perm`` and the matched mask.

    ``perm[i]`` is the text latent assigned to image latent ``i``. Live image latents are matched
    to live text latents by the Hungarian algorithm; the remaining (dead) indices are paired in
    increasing order so that ``perm`` is a full permutation of the text latents.
    """
    m_image, m_text = corr.shape
    if m_image != m_text:
        raise ValueError(f"alignment needs equal latent counts, got {m_image} image and {m_text} text")
    li, lt = np.flatnonzero(live_image), np.flatnonzero(live_text)
    rows, cols = linear_sum_assignment(-corr[np.ix_(li, lt)])
    perm = np.full(m_image, -1, dtype=np.int64)
    perm[li[rows]] = lt[cols]
    matched = perm >= 0
    unused = np.setdiff1d(np.arange(m_text), perm[matched])
    perm[~matched] = unused
    return perm, matched


@dataclass
class Alignment:
    """A saved permutation with the correlation of each matched pair (NaN where unmatched), and, for a
    modality-specific pair, HET Fig. 2's histogram of every live image-text latent pair (``pair_counts``:
    correlation bins x decoder cosine-distance bins of :mod:`vlsae.metrics.heterogeneity`; empty for a
    shared SAE)."""

    perm: np.ndarray
    matched: np.ndarray
    matched_corr: np.ndarray
    live_image: np.ndarray
    live_text: np.ndarray
    pair_counts: np.ndarray

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            np.savez(tmp, **self.__dict__)

    @classmethod
    def load(cls, path: str | Path) -> "Alignment":
        with np.load(path) as f:
            return cls(**{k: f[k] for k in ("perm", "matched", "matched_corr", "live_image", "live_text", "pair_counts")})


def align_paired_sae(model: PairedSAE, train_store: EmbeddingStore, batch_size: int = 4096, progress: bool = True) -> Alignment:
    """Compute the one permutation of a modality-specific pair on its training data (and, for such a
    pair, the Fig. 2 histogram of all its live latent pairs, from the same correlation)."""
    stats = coactivation_stats(model, train_store, batch_size, progress)
    corr = stats.correlation()
    perm, matched = hungarian_permutation(corr, stats.live_image, stats.live_text)
    matched_corr = np.where(matched, corr[np.arange(len(perm)), perm], np.nan)
    pair_counts = np.zeros((0, 0))
    if model.spec.arrangement == "specific":
        atoms = [model.side(side).W_dec.detach().float().cpu().numpy() for side in ("image", "text")]
        pair_counts = pair_histogram(stats.correlation, stats.live_image, stats.live_text, *atoms)
    return Alignment(perm, matched, matched_corr, stats.live_image, stats.live_text, pair_counts)
