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
from ..store import MODALITIES
from ..sae.base import Code
from ..store import EmbeddingStore


def code_matrix(code: Code) -> sparse.csr_matrix:
    """A batch of codes as a float64 CSR matrix, straight from a sparse :class:`Code` (no ``B x m`` array)."""
    if code.indices is None:
        return sparse.csr_matrix(code.values.float().cpu().numpy()).astype(np.float64)
    values, indices = code.values.double().cpu().numpy(), code.indices.cpu().numpy()
    rows = np.repeat(np.arange(len(values)), values.shape[1])
    matrix = sparse.csr_matrix((values.ravel(), (rows, indices.ravel())), shape=(len(values), code.m))
    matrix.sum_duplicates()   # Matching Pursuit may pick an atom twice: its entries add up
    return matrix


def accumulate_cross(acc: np.ndarray, a, b) -> None:
    """``acc += a^T b`` for sparse codes (arrays or CSR matrices), in place: the sparse product costs
    O(B k^2), not O(B m^2), and no ``m x m`` temporary is made (the product is added entry by entry)."""
    a = a if sparse.issparse(a) else sparse.csr_matrix(a).astype(np.float64)
    b = b if sparse.issparse(b) else sparse.csr_matrix(b).astype(np.float64)
    product = (a.T @ b).tocoo()
    product.sum_duplicates()
    acc[product.row, product.col] += product.data


@dataclass
class CoactivationStats:
    """Streaming first and second moments of paired codes: float64 sums, and the ``m x m`` cross
    moment in ``dtype`` (float64 for the alignment; float32 halves its memory where the evaluation only
    needs it to a few digits)."""

    n: int
    sum_image: np.ndarray
    sum_text: np.ndarray
    sumsq_image: np.ndarray
    sumsq_text: np.ndarray
    cross: np.ndarray

    @classmethod
    def empty(cls, m_image: int, m_text: int, dtype=np.float64) -> "CoactivationStats":
        z = np.zeros
        return cls(0, z(m_image), z(m_text), z(m_image), z(m_text), z((m_image, m_text), dtype=dtype))

    def update(self, z_image, z_text) -> None:
        """Add a batch of paired codes (dense arrays or CSR matrices)."""
        z_image = z_image if sparse.issparse(z_image) else sparse.csr_matrix(z_image).astype(np.float64)
        z_text = z_text if sparse.issparse(z_text) else sparse.csr_matrix(z_text).astype(np.float64)
        self.n += z_image.shape[0]
        self.sum_image += np.asarray(z_image.sum(0)).ravel()
        self.sum_text += np.asarray(z_text.sum(0)).ravel()
        self.sumsq_image += np.asarray(z_image.multiply(z_image).sum(0)).ravel()
        self.sumsq_text += np.asarray(z_text.multiply(z_text).sum(0)).ravel()
        accumulate_cross(self.cross, z_image, z_text)

    @property
    def live_image(self) -> np.ndarray:
        return self.sumsq_image > 0

    @property
    def live_text(self) -> np.ndarray:
        return self.sumsq_text > 0

    def correlation_(self, block: int = 1024) -> np.ndarray:
        """Pearson ``C`` computed in place of the cross moment (which is gone afterwards), in row blocks:
        one ``m x m`` array instead of two, and no ``m x m`` temporary."""
        n = self.n
        mean_i, mean_t = self.sum_image / n, self.sum_text / n
        std_i = np.sqrt(np.maximum(self.sumsq_image / n - mean_i ** 2, 0.0))
        std_t = np.sqrt(np.maximum(self.sumsq_text / n - mean_t ** 2, 0.0))
        inv_t = np.divide(1.0, std_t, out=np.zeros_like(std_t), where=std_t > 0)
        for start in range(0, len(self.cross), block):
            rows = slice(start, start + block)
            c = self.cross[rows]
            c /= n
            c -= np.outer(mean_i[rows], mean_t)
            c *= np.divide(1.0, std_i[rows], out=np.zeros_like(std_i[rows]), where=std_i[rows] > 0)[:, None]
            c *= inv_t[None, :]
        return self.cross

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
        stats.update(code_matrix(model.side("image").encode(torch.from_numpy(batch.image).to(dev))),
                     code_matrix(model.side("text").encode(torch.from_numpy(batch.text).to(dev))))
    return stats


MATCHINGS = ("signed", "absolute")


def hungarian_permutation(corr: np.ndarray, live_image: np.ndarray, live_text: np.ndarray,
                          matching: str = "signed") -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``tr(C P)`` over live latents (HET eq. 6; ``matching: absolute`` maximises ``sum |C|``, as the
    authors' code does); return ``perm`` and the matched mask.

    ``perm[i]`` is the text latent assigned to image latent ``i``. Live image latents are matched
    to live text latents by the Hungarian algorithm; the remaining (dead) indices are paired in
    increasing order so that ``perm`` is a full permutation of the text latents.
    """
    m_image, m_text = corr.shape
    if m_image != m_text:
        raise ValueError(f"alignment needs equal latent counts, got {m_image} image and {m_text} text")
    li, lt = np.flatnonzero(live_image), np.flatnonzero(live_text)
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    everything = len(li) == m_image and len(lt) == m_text
    cost = corr if everything else corr[np.ix_(li, lt)]   # a view when every latent is live, else one copy
    kept = cost.copy() if everything and matching == "absolute" else None  # |C| would lose the signs
    if matching == "absolute":
        np.abs(cost, out=cost)
    np.negative(cost, out=cost)                           # minimise -C in place: no second m x m array
    try:
        rows, cols = linear_sum_assignment(cost)
    finally:
        if kept is not None:
            cost[...] = kept
        elif everything:
            np.negative(cost, out=cost)                   # hand back the caller's C unchanged
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


def align_paired_sae(model: PairedSAE, train_store: EmbeddingStore, batch_size: int = 4096, progress: bool = True,
                     matching: str = "signed") -> Alignment:
    """Compute the one permutation of a modality-specific pair on its training data (and, for such a
    pair, the Fig. 2 histogram of all its live latent pairs, from the same correlation)."""
    stats = coactivation_stats(model, train_store, batch_size, progress)
    live_image, live_text = stats.live_image, stats.live_text
    pair_counts = np.zeros((0, 0))
    if model.spec.arrangement == "specific":  # row blocks of C, before C replaces the cross moment
        atoms = [model.side(side).W_dec.detach().float().cpu().numpy() for side in MODALITIES]
        pair_counts = pair_histogram(stats.correlation, live_image, live_text, *atoms)
    corr = stats.correlation_()
    perm, matched = hungarian_permutation(corr, live_image, live_text, matching)
    matched_corr = np.where(matched, corr[np.arange(len(perm)), perm], np.nan)
    return Alignment(perm, matched, matched_corr, live_image, live_text, pair_counts)
