"""Modality metrics of one dictionary (ISO App. E.2.2, eqs. 5-9).

``psi`` is the VLM followed by the SAE; image codes ``Z_img`` and text codes ``Z_txt`` of paired
samples are ``N x K``, ``D`` is the ``K x d`` dictionary (unit rows).

* energy ``E^(d) = E[psi^(d)(X)^2]`` per latent (eq. 5), ``E = mean_d E^(d)``;
* modality score ``mu_i = E_img,i / (E_img,i + E_txt,i)``; bimodal mask ``delta_i = mu_i in [tau, 1 - tau]``;
* degenerate latents (App. B, Fig. 8): constant features that fire on every image and every text,
  frequency 1; their share of the energy ``sum_{f_i = 1} E_i / sum_i E_i``;
* probing accuracy ``p_acc = sum_i E_i s_i / sum_i E_i`` (each atom a sign probe on the centred
  embeddings, App. E.3);
* bridge ``B_W = W ⊙ (D D^T)``; ``rho`` from ``B_Sigma`` with the paired cross-moment (eq. 6); bridge
  masses are summed in row blocks, never holding an ``m x m`` product;
* ``FDA`` from ``B_Gamma``, ``Gamma`` the exact OT plan between the image- and text-energy
  distributions over atoms with cost ``1 - D D^T`` (eqs. 7-9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FDA_DENOMINATORS = ("printed", "mass")


def energy(codes: np.ndarray) -> np.ndarray:
    """``E_i = mean_n z_{n,i}^2`` over one modality's codes (eq. 5)."""
    return (np.asarray(codes, dtype=np.float64) ** 2).mean(0)


def modality_score(energy_image: np.ndarray, energy_text: np.ndarray) -> np.ndarray:
    """``mu_i = E_img / (E_img + E_txt)``; NaN for dead latents (no energy in either modality)."""
    total = energy_image + energy_text
    return np.divide(energy_image, total, out=np.full(total.shape, np.nan), where=total > 0)


def bimodal_mask(mu: np.ndarray, tau: float = 0.05) -> np.ndarray:
    """``delta_i = tau <= mu_i <= 1 - tau`` (dead latents are not bimodal)."""
    with np.errstate(invalid="ignore"):
        return (mu >= tau) & (mu <= 1 - tau)


def degenerate_mask(fired: np.ndarray, samples: int) -> np.ndarray:
    """``f_i = 1``: latents non-zero on all ``samples`` (``fired``: per latent, the samples, images and texts
    together, on which it is non-zero). ISO App. B calls them the degenerate solutions of a strong alignment
    loss: a constant code has cosine 1 across modalities."""
    return np.asarray(fired) >= samples


def energy_share(total_energy: np.ndarray, mask: np.ndarray) -> float:
    """``sum_{i in mask} E_i / sum_i E_i`` (0 for a dictionary without energy)."""
    total = float(np.sum(total_energy))
    return float(np.sum(total_energy[mask]) / total) if total > 0 else 0.0


@torch.no_grad()
def stump_accuracy(values: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Per column of ``values`` (``N x c``), the accuracy of the best threshold separating the rows
    where ``positive`` is 1 from the others, in either orientation (so in [0.5, 1]). A threshold can
    only fall between distinct values: tied rows are never split."""
    n, n_positive = len(values), float(positive.sum())
    sorted_values, order = values.sort(0)
    labels = positive[order]
    below = torch.cat([torch.zeros(1, labels.shape[1]), labels.cumsum(0)])      # positives among the first p rows
    negatives_below = torch.arange(n + 1)[:, None] - below
    acc = (negatives_below + (n_positive - below)) / n                            # "positive" above the split
    edge = torch.ones(1, labels.shape[1], dtype=torch.bool)
    valid = torch.cat([edge, sorted_values[1:] > sorted_values[:-1], edge])
    return torch.where(valid, torch.maximum(acc, 1 - acc), 0.5).max(0).values


PROBES = ("sign", "stump")


@torch.no_grad()
def probe_accuracy(atoms: np.ndarray, image: np.ndarray, text: np.ndarray, mu: np.ndarray, tau: float = 0.05,
                   probe: str = "sign", chunk: int = 512) -> np.ndarray:
    """Accuracy of each atom ``D_i`` as a linear probe for the modality of an embedding (ISO App. E.3).

    ``sign`` (E.3 as written): ``A`` is the image and text embeddings together, centred by their joint
    mean; ``preds = 1[A . D_i > 0]`` is scored against ``l_img`` (1 for images) for image-only
    (``mu > 1 - tau``) and bimodal atoms, and against ``1 - l_img`` for text-only atoms (``mu < tau``).
    A unimodal atom that points to the other modality therefore scores below 0.5.

    ``stump``: the best threshold on the (uncentred) projection in either orientation, so the
    accuracy lies in [0.5, 1] whatever the atom's class (an earlier reading, kept as an option).
    """
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    x = torch.from_numpy(np.concatenate([image, text]).astype(np.float32))
    is_image = torch.cat([torch.ones(len(image)), torch.zeros(len(text))])
    if probe == "sign":
        x = x - x.mean(0)
        label = torch.from_numpy(np.where(np.asarray(mu) < tau, 0.0, 1.0)).float()  # 1: image (l_img), 0: 1 - l_img
    out = []
    for start in range(0, len(atoms), chunk):
        scores = x @ torch.from_numpy(np.asarray(atoms[start:start + chunk], dtype=np.float32)).T
        if probe == "stump":
            out.append(stump_accuracy(scores, is_image))
        else:
            agree = ((scores > 0).float() == is_image[:, None]).float().mean(0)  # accuracy against l_img
            out.append(torch.where(label[start:start + chunk] == 1, agree, 1 - agree))
    return torch.cat(out).double().numpy()


def probing_score(accuracy: np.ndarray, bimodal: np.ndarray, total_energy: np.ndarray) -> float:
    """``p_acc = sum E_i s_i / sum E_i``, ``s_i = acc_i`` (unimodal) or ``1 - 2 (max(acc, 1-acc) - 0.5)`` (bimodal)."""
    s = np.where(bimodal, 1 - 2 * (np.maximum(accuracy, 1 - accuracy) - 0.5), accuracy)
    return float((total_energy * s).sum() / total_energy.sum())


def bridge_sums(weights: np.ndarray, atoms_a: np.ndarray, atoms_b: np.ndarray, bimodal_a: np.ndarray,
                bimodal_b: np.ndarray, block: int = 1024) -> tuple[float, float]:
    """Mass of the bridge ``B_W = W * (D_a D_b^T)`` on pairs ``(i, j)`` adjacent to a bimodal atom
    (``delta_i or delta_j``) and on the other (unimodal) pairs, summed in blocks of ``block`` rows, so
    neither ``B_W`` nor ``D D^T`` is ever held whole."""
    adjacent = unimodal = 0.0
    for start in range(0, len(atoms_a), block):
        rows = slice(start, start + block)
        b = np.asarray(weights[rows], dtype=np.float64) * (np.asarray(atoms_a[rows], dtype=np.float64) @ atoms_b.T)
        near = bimodal_a[rows, None] | bimodal_b[None, :]
        adjacent += b[near].sum()
        unimodal += b[~near].sum()
    return adjacent, unimodal


def functional_alignment(cross_moment: np.ndarray, atoms: np.ndarray, bimodal: np.ndarray) -> float:
    """``rho``: bridge score of ``B_Sigma`` on pairs adjacent to a bimodal latent over the score on pairs
    of two unimodal latents, with ``Sigma = E[psi_img(X)^T psi_txt(X')]`` over paired samples (eq. 6)."""
    atoms = np.asarray(atoms, dtype=np.float64)
    adjacent, unimodal = bridge_sums(cross_moment, atoms, atoms, bimodal, bimodal)
    return float(adjacent / unimodal) if unimodal != 0 else float("inf")


@dataclass
class TransportPlan:
    """``Gamma`` of eq. 7 on the atoms that carry mass: ``mass[i, j]`` moves from image atom
    ``rows[i]`` to text atom ``cols[j]`` (atoms without energy in a modality are not stored)."""

    rows: np.ndarray
    cols: np.ndarray
    mass: np.ndarray

    def dense(self, k: int) -> np.ndarray:
        """The full ``k x k`` plan (for inspection; the metrics use the compact one)."""
        plan = np.zeros((k, k))
        plan[np.ix_(self.rows, self.cols)] = self.mass
        return plan


def transport_plan(energy_image: np.ndarray, energy_text: np.ndarray, atoms: np.ndarray,
                   solver: str = "emd", max_iter: int = 10_000_000, reg: float = 0.01) -> TransportPlan:
    """``Gamma`` of eq. 7: OT between ``a = E_img / ||E_img||_1`` and ``b = E_txt / ||E_txt||_1`` with cost
    ``1 - D D^T``. ``emd`` is the exact network-simplex plan (POT ``ot.emd``); ``sinkhorn`` an
    entropic approximation with regularisation ``reg`` (log-domain, faster, blurred plan). Atoms without energy
    in a modality carry no mass and are dropped from that side before solving."""
    import ot  # POT imports scipy.stats and its backends: loaded only where a plan is solved

    a, b = energy_image / energy_image.sum(), energy_text / energy_text.sum()
    rows, cols = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
    cost = np.asarray(atoms[rows], dtype=np.float64) @ np.asarray(atoms[cols], dtype=np.float64).T
    np.subtract(1.0, cost, out=cost)
    if solver == "emd":
        mass = ot.emd(a[rows], b[cols], cost, numItermax=max_iter)
    elif solver == "sinkhorn":
        mass = ot.sinkhorn(a[rows], b[cols], cost, reg, method="sinkhorn_log", numItermax=max_iter)
    else:
        raise ValueError(f"OT solver must be 'emd' or 'sinkhorn', got {solver!r}")
    del cost
    return TransportPlan(rows, cols, mass)


def fda(plan: TransportPlan, atoms: np.ndarray, bimodal: np.ndarray, total_energy: np.ndarray,
        denominator: str = "printed") -> float:
    """Functional and Distributional Agreement (eq. 9) with ``B_Gamma = Gamma * (D D^T)``:
    ``alpha = sum_{delta_i or delta_j} B_Gamma,ij`` and ``eps = sum_i delta_i E_i / sum_i E_i``.

    ``printed``: ``FDA = (alpha / eps) (1 - eps) / ((1 - eps) - alpha)``, eq. 9 as printed.
    ``mass``: ``(alpha / eps) / (beta / (1 - eps))`` with ``beta`` the bridge mass on unimodal pairs,
    the ratio of bridge mass per unit of energy that eq. 9 describes in words (the printed
    denominator turns negative once ``alpha > 1 - eps``).
    """
    atoms = np.asarray(atoms, dtype=np.float64)
    alpha, beta = bridge_sums(plan.mass, atoms[plan.rows], atoms[plan.cols], bimodal[plan.rows], bimodal[plan.cols])
    eps = (bimodal * total_energy).sum() / total_energy.sum()
    if denominator == "printed":
        return float(alpha / eps * (1 - eps) / ((1 - eps) - alpha))
    if denominator == "mass":
        return float((alpha / eps) / (beta / (1 - eps)))
    raise ValueError(f"FDA denominator must be one of {FDA_DENOMINATORS}, got {denominator!r}")
