"""General SAE metrics (ISO App. E.2.1, the rows of Tables 3 and 4).

* Sparse reconstruction: MSE, R^2, L0, L1 (accumulated by :class:`ReconstructionStats`).
* Consistency: C-insertion and C-deletion (:func:`insertion_deletion`), stability across seeds
  (:func:`stability`).
* Structure in D: stable rank, effective rank and coherence of the dictionary, and the ranks of
  the energy-weighted dictionary (:func:`weighted_dictionary`).
* Structure in Z: connectivity, stable and effective rank of ``Z^T Z`` with unit-norm columns, and
  negative interference (:func:`coactivation_structure`).

Dead latents (zero on every evaluation input) have no direction in ``Z`` and no energy; they are
left out of every structure metric (our choice: a dead atom keeps its random initialisation, which
says nothing about what the SAE learned).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.optimize import linear_sum_assignment

from . import unit_rows


def stable_rank(m: np.ndarray) -> float:
    """``||M||_F^2 / ||M||_2^2 = sum sigma_i^2 / sigma_max^2``."""
    return _ranks(_singular_values(m))[0]


def effective_rank(m: np.ndarray) -> float:
    """``exp(H(p))`` with ``p_i = sigma_i / sum_j sigma_j`` (Roy and Vetterli)."""
    return _ranks(_singular_values(m))[1]


def _singular_values(m: np.ndarray) -> np.ndarray:
    return np.linalg.svd(np.asarray(m, dtype=np.float64), compute_uv=False)


def _ranks(spectrum: np.ndarray) -> tuple[float, float]:
    """Stable and effective rank from singular values (or the eigenvalues of a symmetric PSD matrix)."""
    s = np.sort(np.clip(spectrum, 0, None))[::-1]
    if not len(s) or s[0] <= 0:
        return 0.0, 0.0
    p = s[s > 0] / s.sum()
    return float((s ** 2).sum() / s[0] ** 2), float(np.exp(-(p * np.log(p)).sum()))


def coherence(atoms: np.ndarray, block: int = 1024) -> float:
    """``max_{i != j} D_i^T D_j`` over unit-normalised atoms (rows), signed as in ISO E.2.1; ``D D^T`` in
    row blocks, never whole."""
    unit = unit_rows(atoms)
    best = -np.inf
    for start in range(0, len(unit), block):
        gram = unit[start:start + block] @ unit.T
        gram[np.arange(len(gram)), start + np.arange(len(gram))] = -np.inf
        best = max(best, float(gram.max()))
    return best


def weighted_dictionary(atoms: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Rows ``sqrt(E_i) D_i``: then ``D_w^T D_w = sum_i E_i D_i D_i^T``, the energy-weighted second
    moment of the dictionary. ISO reports the ranks of "D (w)" without a formula; this weighting is
    our choice (cosines, hence coherence, are unchanged by any row weighting)."""
    return np.sqrt(np.clip(energy, 0, None))[:, None] * np.asarray(atoms, dtype=np.float64)


def dictionary_structure(atoms: np.ndarray, energy: np.ndarray) -> dict[str, float]:
    """Structure in D (ISO E.2.1) over live atoms: ranks of ``D`` and of the weighted ``D``, and coherence."""
    live = energy > 0
    d = atoms[live]
    (stable, effective), (stable_w, effective_w) = (_ranks(_singular_values(m))
                                                    for m in (d, weighted_dictionary(d, energy[live])))
    return {"stable_rank_d": stable, "effective_rank_d": effective, "stable_rank_dw": stable_w,
            "effective_rank_dw": effective_w, "coherence": coherence(d)}


def coactivation_structure(gram: np.ndarray, atoms: np.ndarray) -> dict[str, float]:
    """Structure in Z (ISO E.2.1) from ``G = Z^T Z`` (``K x K``, over all evaluation codes).

    Columns of Z are normalised first (``G_ij / sqrt(G_ii G_jj)``) and dead latents dropped, so ``K``
    counts live latents. ``gram`` is consumed (normalised in place) when every latent is live and it is
    float32: the caller's ``m x m`` buffer is reused rather than copied.

    * connectivity ``= 1 - ||Z^T Z||_0 / K^2``, exactly as printed (the text calls higher values
      "more combinations", which this formula rewards the other way; we keep the formula);
    * stable and effective rank of ``Z^T Z``;
    * negative interference ``= ||ReLU[-(Z^T Z) ⊙ (D D^T)]||_2`` (spectral norm), with unit atoms.
    """
    diag = np.diagonal(gram).astype(np.float64)
    live = diag > 0
    k = int(live.sum())
    if not k:
        return {"connectivity": 1.0, "stable_rank_z": 0.0, "effective_rank_z": 0.0, "negative_interference": 0.0}
    scale = (1.0 / np.sqrt(diag[live])).astype(np.float32)
    g = np.array(gram[np.ix_(live, live)], dtype=np.float32) if k < len(diag) else np.asarray(gram, dtype=np.float32)
    g *= scale[:, None]
    g *= scale[None, :]
    connectivity = 1.0 - np.count_nonzero(g) / k ** 2
    # ReLU(-(Z^T Z) * (D D^T)) into a second buffer (D D^T in row blocks), then the spectrum of Z^T Z in place
    interference = np.empty_like(g)
    unit = unit_rows(atoms[live]).astype(np.float32)
    for start in range(0, k, 1024):
        rows = slice(start, start + 1024)
        np.multiply(g[rows], -(unit[rows] @ unit.T), out=interference[rows])
        np.maximum(interference[rows], 0.0, out=interference[rows])
    eigenvalues = scipy.linalg.eigh(g, eigvals_only=True, overwrite_a=True, check_finite=False, driver="evd")
    del g
    stable, effective = _ranks(eigenvalues.astype(np.float64))
    return {"connectivity": connectivity, "stable_rank_z": stable, "effective_rank_z": effective,
            "negative_interference": spectral_norm_nonnegative(interference)}


def spectral_norm_nonnegative(m: np.ndarray, tol: float = 1e-6, max_iter: int = 1000) -> float:
    """``||M||_2`` of a symmetric matrix with non-negative entries: its largest eigenvalue (Perron-Frobenius),
    by power iteration from the all-ones vector, in ``O(m^2)`` per step (a full eigendecomposition of an
    ``m x m`` matrix is ``O(m^3)``)."""
    if not m.any():
        return 0.0
    v = np.ones(len(m), dtype=np.float64) / np.sqrt(len(m))
    value = 0.0
    for _ in range(max_iter):
        w = m @ v
        new = float(np.linalg.norm(w))
        if new == 0.0:
            return 0.0
        v = w / new
        if abs(new - value) <= tol * new:
            return new
        value = new
    return value


def insertion_deletion(x: np.ndarray, values: np.ndarray, atoms: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample C-insertion and C-deletion (Fel et al. 2023) for sparse codes.

    Sample ``x`` has active latents with values ``z_j`` (a row of ``values``, zeros pad) and unit atoms
    ``D_j`` (the matching rows of ``atoms``, ``B x k x d``). Latents are sorted by attribution to the
    reconstruction, ``|z_j|`` (ISO E.2.1: activation is the attribution proxy). With
    ``score(S) = 1 - ||x - b - sum_{j in S} z_j D_j||^2 / ||x - b||^2``, insertion adds the top
    latents one by one and deletion removes them from the full set; each metric is the area under
    its score curve over the fraction ``t/n`` of latents moved (trapezoid rule on ``t = 0..n``).
    Samples without active latents score 0 on both.
    """
    order = np.argsort(-np.abs(values), axis=1, kind="stable")
    z = np.take_along_axis(values, order, 1)
    d = np.take_along_axis(atoms, order[..., None], 1)
    target = x - bias
    total = (target ** 2).sum(1)
    contrib = z[..., None] * d                                             # B x k x d
    partial = np.concatenate([np.zeros_like(contrib[:, :1]), np.cumsum(contrib, 1)], 1)  # B x (k+1) x d
    full = partial[:, -1:]
    n = (values != 0).sum(1)

    def score(recon):
        return 1.0 - ((target[:, None] - recon) ** 2).sum(-1) / np.maximum(total, 1e-12)[:, None]

    ins, dele = score(partial), score(full - partial)                      # curves at t = 0..k
    steps = np.arange(ins.shape[1])[None, :]
    mask = steps <= n[:, None]
    ins, dele = np.where(mask, ins, 0.0), np.where(mask, dele, 0.0)

    def area(curve):
        inner = curve.sum(1) - 0.5 * (curve[:, 0] + curve[np.arange(len(curve)), n])
        return np.divide(inner, n, out=np.zeros(len(n)), where=n > 0)

    return area(ins), area(dele)


def stability(dictionaries: list[np.ndarray], sign_invariant: bool = False) -> float:
    """Mean over seed pairs of ``1 - mean matched |cos|`` between two dictionaries, matching atoms one
    to one with the Hungarian algorithm (ISO E.2.1 "Stability", lower is more stable). ``sign_invariant``
    treats ``-w`` as ``w`` (Matching Pursuit)."""
    if len(dictionaries) < 2:
        raise ValueError("stability needs the dictionaries of at least two seeds")
    distances = []
    for i in range(len(dictionaries)):
        for j in range(i + 1, len(dictionaries)):
            cos = unit_rows(dictionaries[i]) @ unit_rows(dictionaries[j]).T
            cos = np.abs(cos) if sign_invariant else cos
            rows, cols = linear_sum_assignment(cos, maximize=True)
            distances.append(1.0 - cos[rows, cols].mean())
    return float(np.mean(distances))


@dataclass
class ReconstructionStats:
    """Streaming MSE, R^2, L0 and L1 (ISO E.2.1) over batches of one modality.

    ``MSE = E_i ||A_i - Â_i||^2``; ``R^2 = E_i [1 - ||A_i - Â_i||^2 / ||A_i - Ā||^2]`` per instance,
    with ``Ā`` the mean of the modality's embeddings (the printed formula swaps the terms; this is the
    explained-variance reading the text describes). ``L0 = E ||z||_0`` and ``L1 = E ||z||_1``.
    """

    mean: np.ndarray
    n: int = 0
    sums: dict = field(default_factory=lambda: dict.fromkeys(("mse", "r2", "l0", "l1"), 0.0))

    def update(self, x: np.ndarray, x_hat: np.ndarray, codes: np.ndarray) -> None:
        err = ((x - x_hat) ** 2).sum(1)
        spread = np.maximum(((x - self.mean) ** 2).sum(1), 1e-12)
        self.n += len(x)
        for key, value in (("mse", err), ("r2", 1 - err / spread), ("l0", (codes != 0).sum(1)), ("l1", np.abs(codes).sum(1))):
            self.sums[key] += float(value.sum())

    def result(self) -> dict[str, float]:
        return {key: value / max(self.n, 1) for key, value in self.sums.items()}
