"""VLM encoder metrics (ISO App. E.1, Table 6): recall@k, zero-shot accuracy, modality gap.

Inputs are unit-norm embeddings; row ``i`` of ``image`` and of ``text`` form a matching pair.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _hits(similarity: np.ndarray, k: int) -> np.ndarray:
    """Per row, whether fewer than ``k`` entries beat the diagonal one (a tie counts as a hit)."""
    diagonal = np.diagonal(similarity)[:, None]
    return (similarity > diagonal).sum(1) < k


def query_recall_at_k(queries: np.ndarray, targets: np.ndarray, k: int, batch: int = 256) -> float:
    """One-way recall@k: the share of queries ``i`` whose own target ``i`` is among the ``k`` most
    similar targets of its batch of ``b = batch`` consecutive pairs (``Q_b T_b^T``)."""
    hits = [_hits(queries[s:s + batch] @ targets[s:s + batch].T, k) for s in range(0, len(queries), batch)]
    return float(np.concatenate(hits).mean())


def recall_at_k(image: np.ndarray, text: np.ndarray, k: int, batch: int = 256) -> float:
    """ISO App. E.1: ``recall@k = 1/(2b) sum_i (1[i in topk_i^img] + 1[i in topk_i^txt])`` on
    ``C = I T^T``, computed in consecutive batches of ``b = batch`` pairs and averaged over pairs
    (a last, smaller batch counts with its own size b)."""
    return (query_recall_at_k(image, text, k, batch) + query_recall_at_k(text, image, k, batch)) / 2


def zero_shot_accuracy(image: np.ndarray, labels: np.ndarray, class_embeddings: np.ndarray, class_labels: np.ndarray,
                       k: int = 1) -> float:
    """ISO App. E.1: the share of images whose class is among the ``k`` classes of highest cosine
    with the (ensembled, normalised) class embeddings."""
    scores = image @ class_embeddings.T
    own = scores[np.arange(len(image)), np.searchsorted(class_labels, labels)]
    return float(((scores > own[:, None]).sum(1) < k).mean())


def difference_in_means(mean_image: np.ndarray, mean_text: np.ndarray) -> float:
    """Modality gap as DiM: ``||mean(I) - mean(T)||_2``, from the two means (streamed over a store)."""
    return float(np.linalg.norm(np.asarray(mean_image) - np.asarray(mean_text)))


def wasserstein(image: np.ndarray, text: np.ndarray) -> float:
    """Modality gap as the 1-Wasserstein distance between the two empirical distributions
    (uniform weights, Euclidean cost). For equal-size sets optimal transport is an assignment,
    so it is exact: ``min_P (1/n) sum_i ||I_i - T_P(i)||``."""
    if len(image) != len(text):
        raise ValueError("wasserstein needs equally many image and text embeddings")
    cost = np.sqrt(np.maximum(2 - 2 * image @ text.T, 0)) if _unit(image) and _unit(text) else \
        np.linalg.norm(image[:, None] - text[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def _unit(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-4))


def cosine_samples(image: np.ndarray, text: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The cosine populations of ISO Figs. 9 and 11 from ``n`` unit pairs: ``II``, ``TT`` and ``IT`` over
    ``n`` random pairs of distinct indices, ``IT (aligned)`` over the matching pairs, and ``Random``
    between pairs of uniform directions on the sphere (white noise reference)."""
    x, y = np.asarray(image, dtype=np.float64), np.asarray(text, dtype=np.float64)
    n, rng = len(x), np.random.default_rng(seed)
    i, j = rng.integers(n, size=n), rng.integers(n, size=n)
    keep = i != j
    gauss = rng.normal(size=(2, n, x.shape[1]))
    gauss /= np.linalg.norm(gauss, axis=-1, keepdims=True)
    return {"II": (x[i] * x[j]).sum(1)[keep], "TT": (y[i] * y[j]).sum(1)[keep], "IT": (x[i] * y[j]).sum(1)[keep],
            "IT (aligned)": (x * y).sum(1), "Random": (gauss[0] * gauss[1]).sum(1)}


def linear_probe_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                          weight_decay: float = 1e-4, max_iter: int = 200) -> float:
    """ISO App. E.1 "Classifier accuracy": a multinomial logistic regression (L-BFGS, L2 penalty
    ``weight_decay``) fit on ``train`` embeddings, scored as top-1 accuracy on ``test``. Labels not
    seen in training count as errors."""
    classes, y = np.unique(train_labels, return_inverse=True)
    x = torch.from_numpy(np.asarray(train, dtype=np.float32))
    target = torch.from_numpy(y)
    layer = torch.nn.Linear(x.shape[1], len(classes))
    torch.nn.init.zeros_(layer.weight)  # the problem is convex: a fixed start makes the result deterministic
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), target) + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        predicted = classes[layer(torch.from_numpy(np.asarray(test, dtype=np.float32))).argmax(1).numpy()]
    return float((predicted == np.asarray(test_labels)).mean())
