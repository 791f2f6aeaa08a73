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
=================  ==========================================  =======

Every result is L2-normalised before it is measured: Table 9 reports a non-zero DiM for centering
on its own training set, which only renormalisation explains. Table 12's RMG and the method of
Schrodi et al. are left out: the paper does not define their directions or formula.
"""

from __future__ import annotations

import numpy as np

from . import encoder
from .arithmetic import ood_score
from .heterogeneity import normalised

METHODS = ("reconstruction", "center", "bimodal", "random", "shift", "unchanged", "baseline_a", "baseline_b", "baseline_c")


def _project_out(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``x - (x . u) u`` with ``u`` the unit ``direction``; a zero direction removes nothing."""
    norm = np.linalg.norm(direction)
    return x if norm == 0 else x - (x @ (direction / norm))[:, None] * (direction / norm)


def random_direction(dim: int, seed: int) -> np.ndarray:
    """``r``, uniform on the unit sphere (a normalised Gaussian)."""
    r = np.random.default_rng(seed).standard_normal(dim)
    return r / np.linalg.norm(r)


def interventions(side: int, x: np.ndarray, full: np.ndarray, bimodal: np.ndarray, raw_means: np.ndarray,
                  recon_means: np.ndarray, direction: np.ndarray) -> dict[str, np.ndarray]:
    """Every method of the module table on side ``side`` (0 image, 1 text), each row L2-normalised.
    ``raw_means`` and ``recon_means`` are ``2 x d`` (image, text) training means."""
    centred = full - recon_means[side]
    out = {"reconstruction": full, "center": centred, "bimodal": bimodal, "random": centred + direction,
           "shift": centred + recon_means.mean(0), "unchanged": x, "baseline_a": x - raw_means[side],
           "baseline_b": _project_out(x, raw_means[side]), "baseline_c": _project_out(x, raw_means[1] - raw_means[0])}
    return {name: normalised(v) for name, v in out.items()}


def separability(image: np.ndarray, text: np.ndarray) -> float:
    """``sep`` (ISO App. L): test accuracy of a logistic-regression probe telling image from text
    embeddings, fit on the even rows of each and scored on the odd rows."""
    x = np.concatenate([image, text])
    y = np.concatenate([np.zeros(len(image), int), np.ones(len(text), int)])
    train = np.concatenate([np.arange(0, len(image), 2), len(image) + np.arange(0, len(text), 2)])
    test = np.setdiff1d(np.arange(len(x)), train)
    return encoder.linear_probe_accuracy(x[train], y[train], x[test], y[test])


def population_metrics(image: np.ndarray, text: np.ndarray, k: int) -> dict[str, float]:
    """The gap measures that need whole populations: W (exact), sep, and the OOD score of text
    against the image distribution (ISO Fig. 25: images are the reference, captions the "OOD" set)."""
    return {"gap_wasserstein": encoder.wasserstein(image, text), "separability": separability(image, text),
            "ood": ood_score(text, image, k)}
