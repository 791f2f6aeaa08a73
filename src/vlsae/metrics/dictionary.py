"""Dictionary and code recovery against a ground truth (ISO App. C.2, Table 5).

**As the authors compute them** (the default; ``Parabrele/MultimodalGeometry``, ``0_DGP.ipynb``):
both metrics are exact optimal transport (POT ``ot.emd``) weighted by energy, with cost ``1 - cos``.

* ``W``: between the learned atoms, weighted by their energy ``E_j = mean_n z_nj^2`` over all image
  and text samples (normalised to sum 1), and the true atoms, weighted by the truth's energy.
* ``mma``: ``1 -`` the same transport cost between activation patterns: the code columns over the
  same samples, images then texts, in the same row order, with the same weights.

Learned atoms of signed codes (Matching Pursuit) are first oriented so that each latent's codes sum
to a non-negative value (``-w`` with codes ``-z`` is the same atom). Two evident bugs of the notebook
are options (:func:`evaluate_recovery`): ``as_coded`` truth energies (the image code of ``D1``'s ``B``
atoms added unsquared, :meth:`~vlsae.synth.iso.IsoGroundTruth.truth_energy`) and learned codes read in
a shuffled order against the truth in generation order (the notebook collects them through a
shuffled loader).

**Hungarian versions** (kept as extra columns): each of the ``K`` true atoms of the identifiable truth
(:func:`~vlsae.synth.iso.truth_columns`) is paired with a distinct learned atom; unmatched learned
atoms are ignored. With ``m = K`` this is the paper's permutation ``Pi``.

* ``W_hungarian``: ``min_P (1/K) sum_i ||w_i - d_P(i)||`` between unit atoms (sign invariant for
  signed codes);
* ``mma_hungarian``: the mean cosine over the ``K`` matched pairs of activation patterns (``|z|`` for
  signed codes).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..sae import PairedSAE
from ..store import MODALITIES, EmbeddingStore
from ..synth.iso import TRUTHS, IsoGroundTruth
from . import unit_rows


def _check_at_least(learned: int, truth: int, what: str) -> None:
    if learned < truth:
        raise ValueError(f"need at least as many learned as true {what}, got {learned} < {truth}")


def wasserstein_atoms(learned: np.ndarray, truth: np.ndarray, sign_invariant: bool = False) -> float:
    """``W(D, W)`` between ``m x d`` learned and ``K x d`` true atoms (rows, any norm; ``m >= K``)."""
    if learned.shape[1] != truth.shape[1]:
        raise ValueError(f"atoms differ in dimension: {learned.shape[1]} and {truth.shape[1]}")
    _check_at_least(len(learned), len(truth), "atoms")
    cos = unit_rows(learned) @ unit_rows(truth).T
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
    cos = unit_rows(np.asarray(codes).T) @ unit_rows(np.asarray(truth).T).T
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


def energy(codes: np.ndarray) -> np.ndarray:
    """``E_j = mean_n z_nj^2``: each latent's energy over the rows of ``codes`` (all image and text samples)."""
    return (np.asarray(codes, dtype=np.float64) ** 2).mean(0)


def transport_cost(x: np.ndarray, y: np.ndarray, mass_x: np.ndarray, mass_y: np.ndarray) -> float:
    """Exact OT (POT ``ot.emd``) between the rows of ``x`` and of ``y`` with masses ``mass_x``, ``mass_y``
    (each normalised to 1; rows without mass dropped) and cost ``1 - cos``; the total cost."""
    import ot  # POT imports scipy.stats and its backends: loaded only where a plan is solved

    keep_x, keep_y = mass_x > 0, mass_y > 0
    cost = 1.0 - unit_rows(x[keep_x]) @ unit_rows(y[keep_y]).T
    plan = ot.emd(mass_x[keep_x] / mass_x[keep_x].sum(), mass_y[keep_y] / mass_y[keep_y].sum(), cost)
    return float((plan * cost).sum())


def oriented(atoms: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atoms and codes with each latent's sign flipped where its codes sum below zero."""
    sign = np.where(np.asarray(codes).sum(0) < 0, -1.0, 1.0)
    return atoms * sign[:, None], codes * sign


def energy_wasserstein(atoms: np.ndarray, codes: np.ndarray, true_atoms: np.ndarray, true_energy: np.ndarray) -> float:
    """``W``: transport cost between the learned atoms weighted by their energy and the true atoms weighted
    by ``true_energy``."""
    return transport_cost(atoms, true_atoms, energy(codes), true_energy)


def energy_mma(codes: np.ndarray, true_codes: np.ndarray, true_energy: np.ndarray) -> float:
    """``mma = 1 -`` the transport cost between the learned and the true activation patterns (code
    columns over the same rows), weighted like ``W``."""
    if codes.shape[0] != true_codes.shape[0]:
        raise ValueError(f"codes cover {codes.shape[0]} samples, the truth {true_codes.shape[0]}")
    return 1.0 - transport_cost(codes.T, true_codes.T, energy(codes), true_energy)


def shuffled_rows(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """The notebook's row order: images and texts each permuted by the same random permutation (what a
    shuffled loader yields), while the truth stays in generation order."""
    n = len(codes) // 2
    order = np.random.default_rng(seed).permutation(n)
    return np.concatenate([codes[:n][order], codes[n:][order]])


@torch.no_grad()
def encode_store(model: PairedSAE, eval_store: EmbeddingStore, batch_size: int = 4096) -> tuple[np.ndarray, float, float]:
    """Dense codes of a shared SAE on the evaluation store (images, then texts), its ``r2`` (``1 - SSE /
    SST`` over both modalities around their joint mean) and ``l0``."""
    if model.spec.arrangement != "shared":
        raise ValueError("dictionary recovery compares one shared dictionary with the truth")
    sae = model.side("image").cpu().eval()
    codes, sse, total, n, mean = [], 0.0, 0.0, 0, 0.0
    for side in MODALITIES:
        for batch in eval_store.iter_batches(batch_size):
            x = torch.from_numpy(getattr(batch, side))
            x_hat, code = sae(x)
            codes.append(code.dense().numpy())
            sse += float((x - x_hat).pow(2).sum())
            total += float(x.pow(2).sum())
            mean = mean + x.sum(0).numpy()
            n += len(x)
    z = np.concatenate(codes)
    return z, 1.0 - sse / (total - float((mean ** 2).sum()) / n), float((z != 0).sum(1).mean())


def evaluate_recovery(model: PairedSAE, eval_store: EmbeddingStore, gt: IsoGroundTruth) -> list[dict]:
    """Table 5 metrics of a shared SAE against both truths, as tidy rows ``{truth, metric, value}``:
    ``W``, ``mma`` (the authors' energy-weighted OT), ``W_as_coded``, ``mma_as_coded`` (the notebook's two
    bugs), ``W_hungarian``, ``mma_hungarian`` (NaN where the SAE has fewer atoms than the identifiable truth);
    and, with ``truth = ""``, ``r2`` and ``l0``."""
    z, r2, l0 = encode_store(model, eval_store)
    sae = model.side("image")
    atoms = sae.W_dec.detach().float().numpy()
    if sae.signed_codes:
        atoms, z = oriented(atoms, z)
    rows = [{"truth": "", "metric": "r2", "value": r2}, {"truth": "", "metric": "l0", "value": l0}]
    for truth in TRUTHS:
        true_atoms, true_codes = gt.dicts.full(truth), gt.full_codes(truth)
        weights, as_coded = gt.truth_energy(truth), gt.truth_energy(truth, as_coded=True)
        values = {"W": energy_wasserstein(atoms, z, true_atoms, weights),
                  "mma": energy_mma(z, true_codes, weights),
                  "W_as_coded": energy_wasserstein(atoms, z, true_atoms, as_coded),
                  "mma_as_coded": energy_mma(shuffled_rows(z), true_codes, as_coded),
                  "W_hungarian": np.nan, "mma_hungarian": np.nan}
        if len(atoms) >= len(gt.dicts.truth(truth)):  # else one-to-one matching is undefined
            values["W_hungarian"] = wasserstein_atoms(atoms, gt.dicts.truth(truth), sign_invariant=sae.signed_codes)
            values["mma_hungarian"] = mean_matching_accuracy(np.abs(z), gt.codes(truth))
        rows += [{"truth": truth, "metric": k, "value": v} for k, v in values.items()]
    return rows
