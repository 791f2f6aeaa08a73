"""Concept steering (HET Fig. 7): pure pieces of the protocol.

For a concept (a COCO object category):

1. its text latent ``t* = argmax_j mean(z_j | captions mentioning it) - mean(z_j | the others)``
   (every other caption, rather than a random sample: the estimate is then deterministic);
2. its image latent is the one aligned to ``t*`` (itself for a shared SAE or an unaligned pair);
   the steering vector is that latent's image decoder column ``d``;
3. each of ``n`` source images without the concept becomes ``x + s d`` (``s``: ``steering_strength``;
   the paper does not state it, atoms are unit norm);
4. all test images are ranked by cosine to the steered embedding (the source itself left out), a
   hit is an image that contains the concept, and we report mean average precision and mean
   reciprocal rank.
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


def steer(images: np.ndarray, sources: np.ndarray, vector: np.ndarray, strength: float,
          relevant: np.ndarray) -> tuple[float, float]:
    """Steps 3-4 on unit ``images`` (``n x d``): mAP and MRR of the steered ``sources`` (row indices)."""
    steered = images[sources] + strength * vector
    steered /= np.linalg.norm(steered, axis=1, keepdims=True)
    scores = steered @ images.T
    scores[np.arange(len(sources)), sources] = np.nan
    ap, rr = ranking_scores(scores, relevant)
    return float(ap.mean()), float(rr.mean())
