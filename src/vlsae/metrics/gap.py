"""Removing the modality gap (ISO App. I, Tables 9-11, and App. L, Table 12).

Every method maps one side's embeddings ``X`` (with SAE reconstructions ``X^ = Z D`` and bimodal
reconstructions ``X~ = (Z * delta) D``) to new vectors. Means come from the SAE's training store
(``TrainReference``), on every evaluation set, as in ISO App. I. ``i`` is the side's index:

=================  ==========================================  =======
method             image side (text side alike)                 table
=================  ==========================================  =======
``reconstruction`` ``I^``                                       9-11
``center``         ``I^ - mu_I^``                               9-11
``bimodal``        ``I~`` (unimodal atoms dropped; ours)        9-12
``random``         ``I^ - mu_I^ + r``, r uniform on the sphere  9-11
``shift``          ``I^ - mu_I^ + (mu_I^ + mu_T^) / 2``         9-11
``unchanged``      ``I``                                        12
``baseline_a``     ``I - mu_I``                                 12
``baseline_b``     ``I - (I . u) u``, ``u = mu_I / ||mu_I||``   12
``baseline_c``     ``I - (I . u) u``, ``u = Delta / ||Delta||``, ``Delta = mu_T - mu_I``  12
``schrodi``        ``I`` with the ``k`` coordinates of largest    12
                   ``|mu_I - mu_T|`` set to 0 (Schrodi et al.)
=================  ==========================================  =======

Every result is L2-normalised before it is measured: Table 9 reports a non-zero DiM for centering
on its own training set, which only renormalisation explains.

App. L names two things without defining them; both come from Schrodi et al. (2025, "Two effects, one
trigger", ICLR), as their public code (``lmb-freiburg/two-effects-one-trigger``, ``gap_ablate_dims.py``,
``gap_precompute.py``) computes them:

* their method ablates the embedding *dimensions* (coordinate axes ``e_1 .. e_k``) with the largest absolute
  difference of the modality means, then renormalises: the projection onto the complement of ``Span(e_1..e_k)``
  App. L describes. ISO does not say how many; their ablation plots go up to 20, our default
  (``evaluation.schrodi_dims``). The means are the training store's, as for the other baselines.
* RMG (:func:`relative_modality_gap`), the "relative modality gap": with ``m = (1 - mean_i cos(I_i, T_i)) / 2``
  (at least 1e-3) over matching pairs and ``a``, ``b`` the same for distinct image pairs and distinct text
  pairs, ``RMG = m / (m + (a + b) / 2)``.
"""

from __future__ import annotations

import numpy as np

from . import encoder
from .arithmetic import knn_histogram_rows, ood_distances, ood_score
from .heterogeneity import normalised

METHODS = ("reconstruction", "center", "bimodal", "random", "shift", "unchanged", "baseline_a", "baseline_b", "baseline_c",
           "schrodi")


def _project_out(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``x - (x . u) u`` with ``u`` the unit ``direction``; a zero direction removes nothing."""
    norm = np.linalg.norm(direction)
    return x if norm == 0 else x - (x @ (direction / norm))[:, None] * (direction / norm)


def random_direction(dim: int, seed: int) -> np.ndarray:
    """``r``, uniform on the unit sphere (a normalised Gaussian)."""
    r = np.random.default_rng(seed).standard_normal(dim)
    return r / np.linalg.norm(r)


def gap_dimensions(raw_means: np.ndarray, k: int) -> np.ndarray:
    """Schrodi et al.'s ``k`` coordinates with the largest ``|mu_I - mu_T|`` (``raw_means``: ``2 x d``, image then text)."""
    return np.argsort(-np.abs(raw_means[0] - raw_means[1]), kind="stable")[:k]


def interventions(side: int, x: np.ndarray, full: np.ndarray, bimodal: np.ndarray, raw_means: np.ndarray,
                  recon_means: np.ndarray, direction: np.ndarray, schrodi_dims: int = 20) -> dict[str, np.ndarray]:
    """Every method of the module table on side ``side`` (0 image, 1 text), each row L2-normalised.
    ``raw_means`` and ``recon_means`` are ``2 x d`` (image, text) training means."""
    centred = full - recon_means[side]
    ablated = x.copy()
    ablated[:, gap_dimensions(raw_means, schrodi_dims)] = 0.0
    out = {"reconstruction": full, "center": centred, "bimodal": bimodal, "random": centred + direction,
           "shift": centred + recon_means.mean(0), "unchanged": x, "baseline_a": x - raw_means[side],
           "baseline_b": _project_out(x, raw_means[side]), "baseline_c": _project_out(x, raw_means[1] - raw_means[0]),
           "schrodi": ablated}
    return {name: normalised(v) for name, v in out.items()}


def relative_modality_gap(image: np.ndarray, text: np.ndarray) -> float:
    """RMG of paired rows (Schrodi et al.): ``m / (m + (a + b) / 2)`` with ``m = (1 - mean_i cos(I_i, T_i)) / 2``
    (floored at 1e-3) and ``a``, ``b`` the same over distinct image pairs and distinct text pairs (each mean
    from the sum of the unit rows, O(N d))."""
    image, text = normalised(np.asarray(image, dtype=np.float64)), normalised(np.asarray(text, dtype=np.float64))
    n = len(image)
    m = max((1 - float((image * text).sum(1).mean())) / 2, 1e-3)

    def spread(x):
        total = x.sum(0)
        return (1 - (float(total @ total) - float((x * x).sum())) / (n * (n - 1))) / 2

    return m / (m + (spread(image) + spread(text)) / 2)


def separability(image: np.ndarray, text: np.ndarray) -> float:
    """``sep`` (ISO App. L): test accuracy of a logistic-regression probe telling image from text
    embeddings, fit on the even rows of each and scored on the odd rows."""
    x = np.concatenate([image, text])
    y = np.concatenate([np.zeros(len(image), int), np.ones(len(text), int)])
    train = np.concatenate([np.arange(0, len(image), 2), len(image) + np.arange(0, len(text), 2)])
    test = np.setdiff1d(np.arange(len(x)), train)
    return encoder.linear_probe_accuracy(x[train], y[train], x[test], y[test])


def population_metrics(image: np.ndarray, text: np.ndarray, k: int) -> tuple[dict[str, float], list[dict]]:
    """The gap measures that need whole populations: W (exact), sep, RMG, and the OOD score of text
    against the image distribution (ISO Fig. 25: images are the reference, captions the "OOD" set); and the
    histogram rows of those K-NN distances (:func:`~vlsae.metrics.arithmetic.knn_histogram_rows`)."""
    distances = ood_distances(text, image, k)
    return ({"gap_wasserstein": encoder.wasserstein(image, text), "separability": separability(image, text),
             "rmg": relative_modality_gap(image, text), "ood": ood_score(text, image, k, distances)},
            knn_histogram_rows(distances))
