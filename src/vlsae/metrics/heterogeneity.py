"""Real-data analyses of cross-modal heterogeneity (HET §6.2, Table 1, Fig. 2, App. F.2).

* :func:`retrieval_recall`: image-to-text and text-to-image R@k over a caption set where one
  image has several captions (the COCO Karpathy protocol), ranking by cosine. HET applies it to
  latent codes; on embeddings it gives the encoder's own retrieval.
* :func:`pair_histogram`: cosine distances between the decoder columns of *every* live image latent
  and *every* live text latent, binned by their coactivation correlation (Fig. 2, App. E.1: "all m^2
  index pairs", dead latents excluded); :func:`direction_histogram` does the same over the
  Hungarian-matched pairs only (the authors' code).
* :func:`self_match_rate`: the real-data collapse rate of a shared SAE, the share of live latents
  that the Hungarian alignment of its image codes to its text codes matches to themselves (F.2).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from . import unit_rows


def normalised(m):
    """Unit rows (float32) of a dense array or a scipy sparse matrix (zero rows stay zero)."""
    if not sparse.issparse(m):
        return unit_rows(m).astype(np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    return sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ sparse.csr_matrix(m)


def _similarity(texts, images) -> np.ndarray:
    sim = texts @ images.T
    return sim.toarray() if sparse.issparse(sim) else sim


def retrieval_recall(image: np.ndarray, text: np.ndarray, image_ids: np.ndarray, ks=(1, 5, 10),
                     chunk: int = 4096) -> dict[str, float]:
    """Pairs ``(image[i], text[i])`` (dense or scipy sparse rows) where ``image_ids[i]`` names the image.

    Images are deduplicated. ``i2t R@k``: share of images with at least one of their captions among
    the ``k`` captions of highest cosine; ``t2i R@k``: share of captions whose image is among the
    ``k`` images of highest cosine. Ties count as hits. Zero vectors (an empty code) have cosine 0
    with everything.
    """
    ids, first, owner = np.unique(np.asarray(image_ids), return_index=True, return_inverse=True)
    images, texts = normalised(image[first]), normalised(text)
    out = {}
    best_own_caption = np.full(len(ids), -np.inf, dtype=np.float32)  # per image: its best caption's rank score
    i2t_rank = np.zeros(len(ids), dtype=np.int64)
    n_texts = texts.shape[0]
    t2i_rank = np.empty(n_texts, dtype=np.int64)
    for start in range(0, n_texts, chunk):
        sim = _similarity(texts[start:start + chunk], images)                  # captions x images
        rows = np.arange(len(sim))
        own = sim[rows, owner[start:start + chunk]]
        t2i_rank[start:start + chunk] = (sim > own[:, None]).sum(1)
        np.maximum.at(best_own_caption, owner[start:start + chunk], own)
    for start in range(0, n_texts, chunk):
        sim = _similarity(texts[start:start + chunk], images)
        i2t_rank += (sim > best_own_caption[None, :]).sum(0)                       # captions beating the best own one
    for k in ks:
        out[f"i2t_r@{k}"] = float((i2t_rank < k).mean())
        out[f"t2i_r@{k}"] = float((t2i_rank < k).mean())
    return out


CORR_BINS = np.array([-1.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0])   # Fig. 2's correlation groups
DISTANCE_BINS = np.linspace(0.0, 2.0, 41)                      # cosine distance 1 - cos in [0, 2]


def direction_histogram(atoms_image: np.ndarray, atoms_text: np.ndarray, correlation: np.ndarray,
                        corr_bins: np.ndarray = CORR_BINS, distance_bins: np.ndarray = DISTANCE_BINS) -> np.ndarray:
    """Counts of ``1 - cos(V_i, W_i)`` over aligned latent pairs ``i`` (rows of the two ``K x d``
    dictionaries, text already permuted), in a ``len(corr_bins)-1 x len(distance_bins)-1`` grid of
    correlation bins by distance bins. Pairs with NaN correlation (unmatched) are skipped."""
    distance = 1.0 - (unit_rows(atoms_image) * unit_rows(atoms_text)).sum(1)
    keep = ~np.isnan(correlation)
    return _binned(correlation[keep], distance[keep], corr_bins, distance_bins)


def _binned(correlation: np.ndarray, distance: np.ndarray, corr_bins: np.ndarray, distance_bins: np.ndarray) -> np.ndarray:
    """2-D counts; rounding can put a correlation a hair above 1 or a distance below 0, so both are
    clipped to their ranges ([-1, 1], [0, 2]) first and every pair is counted."""
    return np.histogram2d(np.clip(correlation, -1.0, 1.0), np.clip(distance, 0.0, 2.0),
                          bins=(corr_bins, distance_bins))[0]


def pair_histogram(correlation_rows, live_image: np.ndarray, live_text: np.ndarray, atoms_image: np.ndarray,
                   atoms_text: np.ndarray, corr_bins: np.ndarray = CORR_BINS, distance_bins: np.ndarray = DISTANCE_BINS,
                   block: int = 512) -> np.ndarray:
    """HET Fig. 2 (App. E.1): counts of ``1 - cos(V_i, W_j)`` over all pairs of a live image latent ``i``
    and a live text latent ``j``, binned by their coactivation correlation ``C_ij``.

    ``correlation_rows(rows)`` returns the rows of ``C`` for those image latents; ``block`` image latents
    are binned at a time, so memory is ``O(block x m)`` whatever ``m``: the ``m^2`` pairs are never held.
    """
    rows, cols = np.flatnonzero(live_image), np.flatnonzero(live_text)
    image, text = unit_rows(atoms_image[rows]), unit_rows(atoms_text[cols])
    counts = np.zeros((len(corr_bins) - 1, len(distance_bins) - 1))
    for start in range(0, len(rows), block):
        corr = correlation_rows(rows[start:start + block])[:, cols]
        distance = 1.0 - image[start:start + block] @ text.T
        counts += _binned(corr.ravel(), distance.ravel(), corr_bins, distance_bins)
    return counts


def self_match_rate(perm: np.ndarray, matched: np.ndarray) -> float:
    """Share of matched latents with ``perm[i] = i`` (a concept kept in one shared latent)."""
    return float((perm[matched] == np.flatnonzero(matched)).mean()) if matched.any() else 0.0
