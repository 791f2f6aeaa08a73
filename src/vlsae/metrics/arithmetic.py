"""Semantic vector arithmetic (ISO App. H, Tables 7-8): the out-of-distribution score of queries.

``ood_score``: the distance of each query to its K-th nearest neighbour among the targets, and of
each target to its K-th nearest neighbour among the targets, then the accuracy of the best
threshold on that distance at telling queries from targets (ISO App. H, K = 10). A target counts
as its own first neighbour, so a query set identical to the targets is indistinguishable (0.5);
well separated sets score 1.
"""

from __future__ import annotations

import numpy as np
import torch

from .modality import stump_accuracy


@torch.no_grad()
def kth_neighbour_distance(points: np.ndarray, reference: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance from each row of ``points`` to its ``k``-th nearest row of ``reference``."""
    ref = torch.from_numpy(np.asarray(reference, dtype=np.float32))
    if k > len(ref):
        raise ValueError(f"K = {k} exceeds the {len(ref)} reference points")
    out = []
    for start in range(0, len(points), chunk):
        dist = torch.cdist(torch.from_numpy(np.asarray(points[start:start + chunk], dtype=np.float32)), ref)
        out.append(dist.kthvalue(k, dim=1).values)
    return torch.cat(out).double().numpy()


def ood_score(queries: np.ndarray, targets: np.ndarray, k: int = 10) -> float:
    """Accuracy of the best K-NN-distance threshold separating ``queries`` from ``targets`` (lower: more in distribution)."""
    distances = np.concatenate([kth_neighbour_distance(queries, targets, k), kth_neighbour_distance(targets, targets, k)])
    is_query = torch.cat([torch.ones(len(queries)), torch.zeros(len(targets))])
    return float(stump_accuracy(torch.from_numpy(distances)[:, None].float(), is_query)[0])
