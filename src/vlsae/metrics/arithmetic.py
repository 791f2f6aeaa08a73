"""Semantic vector arithmetic (ISO App. H, Tables 7-8): queries and their out-of-distribution score.

With SAE reconstructions ``X^ = Z D`` and bimodal reconstructions ``X~ = (Z * delta) D`` of the source
images ``I_src`` and of the relative captions ``Delta``, the queries are the baselines ``I^_src`` and
``Delta^``, the classical ``Q = I^_src + Delta^`` and ``Q_SAE = I~_src + Delta~``. They retrieve the
reconstructed targets ``T^`` by cosine; the paper scores ``(r@10 + r@50) / 2``.

``ood_score``: the distance of each query to its K-th nearest neighbour among the targets, and of
each target to its K-th nearest neighbour among the *other* targets, then the accuracy of the best
threshold on that distance at telling queries from targets (ISO App. H, K = 10). A query set drawn
from the targets' distribution is indistinguishable (about 0.5); well separated sets score 1.
"""

from __future__ import annotations

import numpy as np
import torch

from .modality import stump_accuracy


@torch.no_grad()
def kth_neighbour_distance(points: np.ndarray, reference: np.ndarray, k: int, chunk: int = 4096,
                           exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance from each row of ``points`` to its ``k``-th nearest row of ``reference``.

    ``exclude_self``: ``points`` *is* ``reference``, and row ``i`` is not its own neighbour (ISO App. H
    scores the targets against the other targets)."""
    ref = torch.from_numpy(np.asarray(reference, dtype=np.float32))
    if k > len(ref) - exclude_self:
        raise ValueError(f"K = {k} exceeds the {len(ref) - exclude_self} reference points")
    if exclude_self and len(points) != len(ref):
        raise ValueError("exclude_self needs points to be the reference set itself")
    out = []
    for start in range(0, len(points), chunk):
        dist = torch.cdist(torch.from_numpy(np.asarray(points[start:start + chunk], dtype=np.float32)), ref)
        if exclude_self:
            rows = torch.arange(len(dist))
            dist[rows, start + rows] = float("inf")
        out.append(dist.kthvalue(k, dim=1).values)
    return torch.cat(out).double().numpy()


def queries(source: tuple[np.ndarray, np.ndarray], delta: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """The four query sets from ``(full, bimodal)`` reconstructions of the sources and of Delta."""
    return {"baseline_delta": delta[0], "baseline_source": source[0], "Q": source[0] + delta[0],
            "Q_SAE": source[1] + delta[1]}


KNN_BINS = np.linspace(0.0, 2.5, 51)  # histogram edges of the K-NN distances (ISO Figs. 23, 25); larger ones fall in the last bin


def ood_distances(queries: np.ndarray, targets: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The K-th nearest-neighbour distance of each query among the targets, and of each target among the other targets."""
    return kth_neighbour_distance(queries, targets, k), kth_neighbour_distance(targets, targets, k, exclude_self=True)


def ood_score(queries: np.ndarray, targets: np.ndarray, k: int = 10, distances=None) -> float:
    """Accuracy of the best K-NN-distance threshold separating ``queries`` from ``targets`` (lower: more in distribution);
    ``distances``: those of :func:`ood_distances`, if already computed."""
    to_targets, among_targets = ood_distances(queries, targets, k) if distances is None else distances
    is_query = torch.cat([torch.ones(len(to_targets)), torch.zeros(len(among_targets))])
    both = np.concatenate([to_targets, among_targets])
    return float(stump_accuracy(torch.from_numpy(both)[:, None].float(), is_query)[0])


def knn_histogram_rows(distances: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    """Tidy ``knn_hist`` rows (``population`` query / target, ``bin`` of :data:`KNN_BINS`, count) of
    :func:`ood_distances`: the data of ISO Figs. 23 and 25."""
    rows = []
    for population, d in zip(("query", "target"), distances):
        counts, _ = np.histogram(np.clip(d, KNN_BINS[0], KNN_BINS[-1]), bins=KNN_BINS)
        rows += [{"metric": "knn_hist", "population": population, "bin": i, "value": float(c)} for i, c in enumerate(counts)]
    return rows
