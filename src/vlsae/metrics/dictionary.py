"""Dictionary and code recovery against a ground truth (ISO App. C.2, Table 5).

Both metrics pair each of the ``K`` true atoms with a distinct learned atom (Hungarian
algorithm); a learned dictionary may have more atoms than the truth (``m >= K``), and its
unmatched atoms are ignored. With ``m = K`` this is the paper's permutation ``Pi``.

* ``W(D, W)``: the 1-Wasserstein distance between the true atoms and the best ``K``-subset of
  learned atoms, each an empirical distribution with uniform weights on the unit sphere and
  Euclidean ground cost. Between equal-size uniform sets optimal transport is an assignment:
  ``W = min_P (1/K) sum_i ||w_i - d_P(i)||``. ``sign_invariant`` uses ``min(||d - w||, ||d + w||)``
  for dictionaries with signed codes (Matching Pursuit), where ``-w`` is the same atom.
* ``mma(Z, C)``: mean matching accuracy. Each latent's activation pattern is its column of the
  ``N x K`` code over the same N samples; the Hungarian algorithm pairs true and learned columns
  to maximise the summed cosine, and mma is the mean cosine over the ``K`` matched pairs.

For signed codes (Matching Pursuit) the pattern is the magnitude ``|z|``: where and how strongly
an atom fires, whatever the sign it fires with (our choice, consistent with ``sign_invariant``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..sae import PairedSAE
from ..store import EmbeddingStore


def _unit_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def _check_at_least(learned: int, truth: int, what: str) -> None:
    if learned < truth:
        raise ValueError(f"need at least as many learned as true {what}, got {learned} < {truth}")


def wasserstein_atoms(learned: np.ndarray, truth: np.ndarray, sign_invariant: bool = False) -> float:
    """``W(D, W)`` between ``m x d`` learned and ``K x d`` true atoms (rows, any norm; ``m >= K``)."""
    if learned.shape[1] != truth.shape[1]:
        raise ValueError(f"atoms differ in dimension: {learned.shape[1]} and {truth.shape[1]}")
    _check_at_least(len(learned), len(truth), "atoms")
    cos = _unit_rows(learned) @ _unit_rows(truth).T
    if sign_invariant:
        cos = np.abs(cos)
    cost = np.sqrt(np.clip(2.0 - 2.0 * cos, 0.0, None))  # ||a - b|| for unit a, b
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def mean_matching_accuracy(codes: np.ndarray, truth: np.ndarray) -> float:
    """``mma(Z, C)`` for ``N x m`` learned and ``N x K`` true codes over the same samples (``m >= K``)."""
    if codes.shape[0] != truth.shape[0]:
        raise ValueError(f"codes cover {codes.shape[0]} samples, the truth {truth.shape[0]}")
    _check_at_least(codes.shape[1], truth.shape[1], "latents")
    cos = _unit_rows(np.asarray(codes).T) @ _unit_rows(np.asarray(truth).T).T
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


@torch.no_grad()
def evaluate_recovery(model: PairedSAE, eval_store: EmbeddingStore, atoms: np.ndarray, truth_codes: np.ndarray,
                      batch_size: int = 4096) -> dict[str, float]:
    """Table 5 metrics of a shared SAE on the evaluation store (images, then texts).

    ``atoms`` (``K x d``) and ``truth_codes`` (``2N x K``, images then texts) are the ground truth;
    also reports ``r2`` (``1 - SSE / SST`` over both modalities, around their joint mean) and ``l0``.
    """
    if model.spec.arrangement != "shared":
        raise ValueError("dictionary recovery compares one shared dictionary with the truth")
    sae = model.side("image").cpu().eval()
    codes, sse, total, n, mean = [], 0.0, 0.0, 0, 0.0
    for side in ("image", "text"):
        for batch in eval_store.iter_batches(batch_size):
            x = torch.from_numpy(getattr(batch, side))
            x_hat, code = sae(x)
            codes.append(code.dense().abs().numpy())
            sse += float((x - x_hat).pow(2).sum())
            total += float(x.pow(2).sum())
            mean = mean + x.sum(0).numpy()
            n += len(x)
    z = np.concatenate(codes)
    sst = total - float((mean**2).sum()) / n
    return {
        "W": wasserstein_atoms(sae.W_dec.numpy(), atoms, sign_invariant=sae.signed_codes),
        "mma": mean_matching_accuracy(z, truth_codes),
        "r2": 1.0 - sse / sst,
        "l0": float((z > 0).sum(1).mean()),
    }
