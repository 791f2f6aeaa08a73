"""Concept steering (HET Fig. 7): pure pieces of the protocol.

For a concept (a COCO object category):

1. its text latent ``t* = argmax_j mean(z_j | captions mentioning it) - mean(z_j | the others)``
   (every other caption, rather than the authors' equal-size random sample: the estimate is then
   deterministic);
2. its image latent ``i*`` is the one aligned to ``t*`` (itself for a shared SAE or an unaligned pair);
3. each of ``n`` source images without the concept is steered, for every ``alpha`` of the sweep:

   * ``latent`` (default; the HET authors' protocol): encode the image, add ``alpha * sigma`` to
     latent ``i*`` of its code (``sigma``: that latent's standard deviation over the test images, "the
     concept latent's spread") and decode, ``x' = z' D + b_dec``;
   * ``atom``: ``x' = x + alpha d``, ``d`` the unit decoder column of ``i*`` (an earlier reading);

4. scores, averaged over the sources: the change in cosine to the concept's mean caption embedding
   ``t_c``, ``cos(x', t_c) - cos(x, t_c)`` (``delta_cos``); the cosine to the source itself
   (``preserve``) - in ``latent`` mode at ``alpha = 0``, ``x'`` is the SAE's reconstruction of ``x``, so both
   also show what the round trip through the SAE costs; and retrieval among all test images by cosine to ``x'`` (the source left out), a hit
   being an image that contains the concept: mean average precision (``map``) and mean reciprocal
   rank (``mrr``).
"""

from __future__ import annotations

import re

import numpy as np
from scipy import sparse


def mentions(captions: list[str], concept: str) -> np.ndarray:
    """Whether each caption names ``concept`` as whole words, case-insensitive, plural allowed."""
    pattern = re.compile(rf"\b{re.escape(concept)}(s|es)?\b", re.IGNORECASE)
    return np.array([bool(pattern.search(c)) for c in captions])


def concept_latent(text_codes, mentioned: np.ndarray) -> int:
    """Step 1: the latent with the largest difference of mean activation, mentioned minus not."""
    z = sparse.csr_matrix(text_codes)
    inside = np.asarray(z[mentioned].mean(0)).ravel()
    outside = np.asarray(z[~mentioned].mean(0)).ravel()
    return int(np.argmax(inside - outside))


def image_latent(text_latent: int, perm: np.ndarray | None) -> int:
    """Step 2: the image latent ``i`` aligned to ``text_latent``; the alignment pairs image latent
    ``i`` with text latent ``perm[i]`` (eq. 7)."""
    if perm is None:
        return text_latent
    (match,) = np.flatnonzero(perm == text_latent)
    return int(match)


def ranking_scores(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query row of ``scores`` (``q x n``, NaN for excluded candidates): average precision
    ``AP = sum_r P@r rel_r / sum_r rel_r`` and reciprocal rank ``1 / (rank of the first hit)``.
    Ties keep candidate order; a query with no relevant candidate gets 0 for both."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")
    valid = ~np.isnan(np.take_along_axis(scores, order, 1))
    hits = relevant[order] & valid
    ranks = np.arange(1, scores.shape[1] + 1)
    found = hits.sum(1)
    ap = np.divide((np.cumsum(hits, 1) / ranks * hits).sum(1), found, out=np.zeros(len(scores)), where=found > 0)
    rr = np.where(found > 0, 1.0 / (hits.argmax(1) + 1), 0.0)
    return ap, rr


STEERING_MODES = ("latent", "atom")


def concept_direction(text: np.ndarray, mentioned: np.ndarray) -> np.ndarray:
    """``t_c``: the unit mean embedding of the captions that mention the concept."""
    mean = np.asarray(text)[mentioned].mean(0)
    return mean / max(np.linalg.norm(mean), 1e-12)


def steering_scores(steered: np.ndarray, base: np.ndarray, images: np.ndarray, sources: np.ndarray,
                    relevant: np.ndarray, t_c: np.ndarray) -> dict[str, float]:
    """Step 4 for steered embeddings ``steered`` of the unit ``base`` embeddings of ``sources`` (row
    indices of the unit test ``images``): ``delta_cos``, ``preserve``, ``map`` and ``mrr``."""
    steered = steered / np.maximum(np.linalg.norm(steered, axis=1, keepdims=True), 1e-12)
    scores = steered @ images.T
    scores[np.arange(len(sources)), sources] = np.nan
    ap, rr = ranking_scores(scores, relevant)
    return {"delta_cos": float((steered @ t_c - base @ t_c).mean()), "preserve": float((steered * base).sum(1).mean()),
            "map": float(ap.mean()), "mrr": float(rr.mean())}
