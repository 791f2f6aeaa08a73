"""Per-latent statistics of one trained SAE on one store: what the latent browser and the galleries show.

For each modality's codes ``z`` (``N x m``, streamed) of latent ``j``:

* energy ``E_j = mean_n z_nj^2`` (ISO eq. 5, :func:`vlsae.metrics.modality.energy`), frequency
  ``f_j = mean_n 1[z_nj != 0]``, and the modality score ``mu_j = E_img / (E_img + E_txt)`` with its class:
  bimodal when ``tau <= mu <= 1 - tau``, image-only above, text-only below, dead without energy;
* the ``top`` most activating samples (largest ``z_nj > 0``; largest ``|z_nj|`` for Matching Pursuit, whose
  signed codes use ``w`` and ``-w`` alike; pair rows of the store) and a histogram of the non-zero activations
  over their own ``[min, max]`` (a second pass);
* nearest latents by decoder cosine (``|cos|`` for Matching Pursuit, whose signed codes make ``w`` and ``-w``
  one atom).

For a modality-specific pair, latent ``j`` is image latent ``j`` with its Hungarian partner ``perm[j]``:
the text statistics are those of the partner, and the pair carries the coactivation correlation
``c_{j, perm(j)}`` (HET eq. 5) and the cosine of the two decoder atoms (HET Fig. 2's quantity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import modality
from ..metrics.real import SAERun
from ..store import MODALITIES, EmbeddingStore

CLASSES = ("bimodal", "image-only", "text-only", "dead")


@dataclass
class SideStats:
    """One modality's statistics over one dictionary (``m`` latents)."""

    energy: np.ndarray        # m
    frequency: np.ndarray     # m
    top_values: np.ndarray    # top x m, by descending activation (|activation| for signed codes); 0 where fewer fire
    top_rows: np.ndarray      # top x m, store pair rows (-1 where none)
    lo: np.ndarray            # m, smallest non-zero activation (0 for a latent that never fires)
    hi: np.ndarray            # m, largest non-zero activation
    hist: np.ndarray          # m x bins, counts of the non-zero activations over [lo, hi]


def side_stats(run: SAERun, store: EmbeddingStore, side: str, top: int = 12, bins: int = 20,
               batch_size: int = 1024) -> SideStats:
    """Two streaming passes over ``store``'s ``side`` rows: moments, extremes and the top samples, then the histogram."""
    sae = run.model.side(side)
    m = sae.m
    sq, fired, n = np.zeros(m), np.zeros(m), 0
    lo, hi = np.full(m, np.inf), np.full(m, -np.inf)
    best, best_score = torch.zeros(0, m), torch.zeros(0, m)
    best_rows = torch.zeros(0, m, dtype=torch.long)
    for batch in store.iter_batches(batch_size):
        z = run(side, getattr(batch, side))[1].astype(np.float64)
        sq += (z ** 2).sum(0)
        on = z != 0
        fired += on.sum(0)
        lo, hi = np.minimum(lo, np.where(on, z, np.inf).min(0)), np.maximum(hi, np.where(on, z, -np.inf).max(0))
        rows = torch.arange(n, n + len(z))[:, None].expand(len(z), m)
        values = torch.cat([best, torch.from_numpy(z).float()])
        scores = torch.cat([best_score, torch.from_numpy(np.abs(z) if sae.signed_codes else z).float()])
        pick = scores.topk(min(top, len(scores)), dim=0).indices
        best, best_score = values.gather(0, pick), scores.gather(0, pick)
        best_rows = torch.cat([best_rows, rows]).gather(0, pick)
        n += len(z)
    positive = best_score > 0
    never = fired == 0
    lo[never], hi[never] = 0.0, 0.0
    hist = np.zeros((m, bins))
    span = np.where(hi > lo, hi - lo, 1.0)
    for batch in store.iter_batches(batch_size):
        z = run(side, getattr(batch, side))[1]
        rows, cols = np.nonzero(z)
        b = np.clip(((z[rows, cols] - lo[cols]) / span[cols] * bins).astype(int), 0, bins - 1)
        hist += np.bincount(cols * bins + b, minlength=m * bins).reshape(m, bins)
    return SideStats(sq / max(n, 1), fired / max(n, 1), torch.where(positive, best, 0).numpy(),
                     torch.where(positive, best_rows, -1).numpy(), lo, hi, hist)


def classes(mu: np.ndarray, tau: float) -> np.ndarray:
    """Class of each latent from its modality score (``dead`` where ``mu`` is NaN)."""
    out = np.full(mu.shape, "dead", dtype=object)
    with np.errstate(invalid="ignore"):
        out[mu > 1 - tau], out[mu < tau] = "image-only", "text-only"
    out[modality.bimodal_mask(mu, tau)] = "bimodal"
    return out


def nearest_latents(atoms: np.ndarray, n: int, signed_codes: bool, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, cosines)``, each ``m x n``: every atom's ``n`` nearest other atoms by decoder cosine, in row blocks."""
    unit = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-12)
    n = min(n, len(unit) - 1)
    ids, cos = np.zeros((len(unit), n), dtype=int), np.zeros((len(unit), n))
    for start in range(0, len(unit), block):
        c = unit[start:start + block] @ unit.T
        score = np.abs(c) if signed_codes else c.copy()
        score[np.arange(len(c)), start + np.arange(len(c))] = -np.inf
        part = np.argsort(-score, axis=1, kind="stable")[:, :n]
        ids[start:start + block], cos[start:start + block] = part, np.take_along_axis(c, part, 1)
    return ids, cos


def latent_records(run: SAERun, store: EmbeddingStore, alignment=None, ms: dict[str, np.ndarray] | None = None,
                   tau: float = 0.05, top: int = 12, bins: int = 20, near: int = 5) -> list[dict]:
    """One JSON-ready record per latent (per aligned pair for a modality-specific SAE), in latent order."""
    model = run.model
    pair = model.spec.arrangement == "specific"
    stats = {side: side_stats(run, store, side, top, bins) for side in MODALITIES}
    perm = alignment.perm if pair and alignment is not None else np.arange(model.side("image").m)
    if pair:  # the text side of entry j is the partner perm[j]
        t = stats["text"]
        stats["text"] = SideStats(t.energy[perm], t.frequency[perm], t.top_values[:, perm], t.top_rows[:, perm],
                                  t.lo[perm], t.hi[perm], t.hist[perm])
    mu = modality.modality_score(stats["image"].energy, stats["text"].energy)
    kind = classes(mu, tau)
    atoms = {side: run.atoms(side) for side in MODALITIES}
    near_ids, near_cos = nearest_latents(atoms["image"], near, model.side("image").signed_codes)
    records = []
    for j in range(len(mu)):
        rec = {"id": j, "class": kind[j], "mu": None if np.isnan(mu[j]) else float(mu[j]),
               "near": [[int(i), round(float(c), 4)] for i, c in zip(near_ids[j], near_cos[j])]}
        for side in MODALITIES:
            s = stats[side]
            keep = s.top_rows[:, j] >= 0
            rec[side] = {"energy": float(s.energy[j]), "frequency": float(s.frequency[j]),
                         "top": [[int(r), round(float(v), 5)] for r, v in zip(s.top_rows[keep, j], s.top_values[keep, j])],
                         "hist": {"lo": float(s.lo[j]), "hi": float(s.hi[j]), "counts": s.hist[j].astype(int).tolist()}}
            score = None if ms is None or side not in ms else ms[side][perm[j] if side == "text" else j]
            rec[side]["ms"] = None if score is None or np.isnan(score) else round(float(score), 4)
        rec["energy"] = (rec["image"]["energy"] + rec["text"]["energy"]) / 2
        if pair:
            partner = int(perm[j])
            cos = float(atoms["image"][j] @ atoms["text"][partner]
                        / max(np.linalg.norm(atoms["image"][j]) * np.linalg.norm(atoms["text"][partner]), 1e-12))
            corr = None if alignment is None or np.isnan(alignment.matched_corr[j]) else float(alignment.matched_corr[j])
            rec["partner"] = {"id": partner, "corr": corr, "cosine": round(cos, 4)}
        elif alignment is not None:  # a shared SAE's Hungarian matching: collapsed when perm(j) = j (HET Fig. 10)
            corr = alignment.matched_corr[j]
            rec["match"] = {"id": int(alignment.perm[j]), "corr": None if np.isnan(corr) else float(corr),
                            "collapsed": bool(alignment.perm[j] == j and alignment.matched[j])}
        records.append(rec)
    return records
