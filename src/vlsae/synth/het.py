"""The heterogeneity DGP of HET App. E.2 (docs/methods.md, "HET DGP and metrics").

Concepts ``i in [n]`` are shared (``n_S``), image-only (``n_I``, ``psi_i = 0``) or text-only
(``n_T``, ``phi_i = 0``). A shared concept has unit directions with ``cos(phi_i, psi_i) = alpha``.
Within each modality, the pairwise interference ``|<phi_i, phi_j>|`` of the non-zero columns is
at most ``max_interference`` (0.30 in the paper). Codes are ``z_i = b_i e_i`` with
``b_i ~ Bernoulli(1 - s)`` (``s = 0.99``) and ``e_i ~ Exp(rate)``; the pair is
``x = Phi z + eps_I``, ``y = Psi z + eps_T`` with ``eps ~ N(0, sigma^2 I)`` (HET eq. 1), and the
reference code optionally l2-normalises ``x`` and ``y``.

Two options follow the HET authors' data generator instead of eq. 1 (``src/datasets/
synthetic_theory_feature.py``, ``shared_coeff_mode="independent"``, ``min_active=1``):
``shared_codes: independent`` draws the image and the text coefficient of an active shared concept
independently (the same support), and ``min_active: 1`` makes each pair show at least one shared,
one image-only and one text-only concept (a block drawn empty gets one concept switched on).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from . import write_splits

SHARED, IMAGE_ONLY, TEXT_ONLY = 0, 1, 2
SHARED_CODES = ("joint", "independent")
CONCEPT_TYPES = {SHARED: "shared", IMAGE_ONLY: "image_only", TEXT_ONLY: "text_only"}


@dataclass(frozen=True)
class HetDGP:
    """Parameters of the HET DGP; defaults are the paper's (HET E.2)."""

    d: int = 256
    n_shared: int = 1024
    n_image: int = 512
    n_text: int = 512
    alpha: float = 0.5
    max_interference: float = 0.30
    sparsity: float = 0.99
    exp_rate: float = 1.0
    noise_std: float = 0.05
    normalize: bool = True
    shared_codes: str = "joint"
    min_active: int = 0

    def __post_init__(self):
        if self.shared_codes not in SHARED_CODES:
            raise ValueError(f"shared_codes must be one of {SHARED_CODES}, got {self.shared_codes!r}")
        if self.min_active < 0:
            raise ValueError(f"min_active must be >= 0, got {self.min_active}")

    @property
    def n(self) -> int:
        return self.n_shared + self.n_image + self.n_text

    def concept_types(self) -> np.ndarray:
        return np.repeat([SHARED, IMAGE_ONLY, TEXT_ONLY], [self.n_shared, self.n_image, self.n_text])


@dataclass
class GroundTruth:
    """Feature matrices ``Phi, Psi`` (``d x n``, zero columns for absent concepts) and types."""

    phi: np.ndarray
    psi: np.ndarray
    types: np.ndarray
    alpha: float

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            np.savez(tmp, phi=self.phi, psi=self.psi, types=self.types, alpha=self.alpha)

    @classmethod
    def load(cls, path: str | Path) -> "GroundTruth":
        with np.load(path) as f:
            return cls(f["phi"], f["psi"], f["types"], float(f["alpha"]))

    @property
    def shared(self) -> np.ndarray:
        return np.flatnonzero(self.types == SHARED)


def _unit_columns(a: torch.Tensor) -> torch.Tensor:
    return a / a.norm(dim=0, keepdim=True)


def _max_interference(cols: torch.Tensor) -> float:
    g = cols.T @ cols
    g.fill_diagonal_(0)
    return float(g.abs().max()) if g.numel() else 0.0


def sample_features(dgp: HetDGP, seed: int, max_steps: int = 5000) -> GroundTruth:
    """Draw ``Phi, Psi`` with ``cos(phi_i, psi_i) = alpha`` exactly and bounded interference.

    Parametrisation: ``phi = A / |A|``; ``psi_i = alpha phi_i + sqrt(1 - alpha^2) u_i`` with
    ``u_i`` the unit part of ``U_i`` orthogonal to ``phi_i``; text-only columns ``T / |T|``.
    Every parameter value satisfies the alpha constraint, so Adam only has to push the
    squared hinge ``sum relu(|G_ij| - eps')^2`` of both Gram matrices to zero
    (``eps'`` a little below the bound). Random directions already satisfy the bound at the
    paper's size (d = 256); smaller ``d`` needs the optimisation.
    """
    if not 0.0 <= dgp.alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {dgp.alpha}")
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(dgp.d, dgp.n_shared + dgp.n_image, generator=gen, dtype=torch.float64)
    u = torch.randn(dgp.d, dgp.n_shared, generator=gen, dtype=torch.float64)
    t = torch.randn(dgp.d, dgp.n_text, generator=gen, dtype=torch.float64)
    params = [p.requires_grad_() for p in (a, u, t)]
    coef = math.sqrt(max(0.0, 1.0 - dgp.alpha**2))

    def build() -> tuple[torch.Tensor, torch.Tensor]:
        phi = _unit_columns(params[0])
        ps = phi[:, : dgp.n_shared]
        perp = params[1] - ps * (ps * params[1]).sum(0, keepdim=True)
        psi_shared = dgp.alpha * ps + coef * _unit_columns(perp)
        return phi, torch.cat([psi_shared, _unit_columns(params[2])], dim=1)

    target = dgp.max_interference * 0.95
    opt = torch.optim.Adam(params, lr=0.01)
    for _ in range(max_steps):
        phi, psi = build()
        if max(_max_interference(phi.detach()), _max_interference(psi.detach())) <= dgp.max_interference:
            break
        loss = sum(_hinge(c, target) for c in (phi, psi))
        opt.zero_grad()
        loss.backward()
        opt.step()
    else:
        raise ValueError(
            f"max_interference={dgp.max_interference} not reached for d={dgp.d} with "
            f"{dgp.n_shared + dgp.n_image} image / {dgp.n_shared + dgp.n_text} text directions; "
            "raise synthetic.het.max_interference or d"
        )
    phi, psi = (c.detach().numpy() for c in build())
    full_phi = np.zeros((dgp.d, dgp.n))
    full_psi = np.zeros((dgp.d, dgp.n))
    full_phi[:, : dgp.n_shared + dgp.n_image] = phi
    full_psi[:, : dgp.n_shared] = psi[:, : dgp.n_shared]
    full_psi[:, dgp.n_shared + dgp.n_image :] = psi[:, dgp.n_shared :]
    return GroundTruth(full_phi, full_psi, dgp.concept_types(), dgp.alpha)


def _hinge(cols: torch.Tensor, target: float) -> torch.Tensor:
    g = cols.T @ cols
    off = g - torch.diag(torch.diagonal(g))
    return torch.relu(off.abs() - target).pow(2).sum()


def sample_codes(n_samples: int, n: int, sparsity: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``z_i = Bernoulli(1 - sparsity) * Exp(rate)``, i.i.d. over samples and concepts."""
    active = rng.random((n_samples, n)) >= sparsity
    return (active * rng.exponential(1.0 / rate, size=(n_samples, n))).astype(np.float64)


def sample_pair_codes(dgp: HetDGP, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(z_I, z_T)``: the codes that make the image and the caption of each pair. HET eq. 1 (the default):
    one code ``z`` for both. With ``shared_codes: independent`` the shared concepts' coefficients of the two
    modalities are drawn apart on one support; with ``min_active`` each block (shared, image-only,
    text-only) has at least that many active concepts."""
    if dgp.shared_codes == "joint" and dgp.min_active == 0:
        z = sample_codes(n_samples, dgp.n, dgp.sparsity, dgp.exp_rate, rng)
        return z, z
    blocks = {t: np.flatnonzero(dgp.concept_types() == t) for t in (SHARED, IMAGE_ONLY, TEXT_ONLY)}
    active = rng.random((n_samples, dgp.n)) >= dgp.sparsity
    for columns in blocks.values():
        need = min(dgp.min_active, len(columns))
        short = np.flatnonzero(active[:, columns].sum(1) < need)
        if need and len(short):  # keep the active concepts, switch on uniformly drawn others up to `need`
            keys = rng.random((len(short), len(columns))) + active[np.ix_(short, columns)]
            chosen = np.argsort(-keys, axis=1)[:, :need]
            active[short[:, None], columns[chosen]] = True
    z_image = active * rng.exponential(1.0 / dgp.exp_rate, size=(n_samples, dgp.n))
    z_text = z_image.copy()
    if dgp.shared_codes == "independent":
        shared = blocks[SHARED]
        z_text[:, shared] = active[:, shared] * rng.exponential(1.0 / dgp.exp_rate, size=(n_samples, len(shared)))
    return z_image, z_text


def embed_pairs(z: np.ndarray | tuple[np.ndarray, np.ndarray], gt: GroundTruth, dgp: HetDGP,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x = Phi z_I + eps_I`` and ``y = Psi z_T + eps_T`` (HET eq. 1, where ``z_I = z_T = z``), optionally
    l2-normalised; ``z`` is one code or the pair ``(z_I, z_T)``."""
    z_image, z_text = z if isinstance(z, tuple) else (z, z)
    x = z_image @ gt.phi.T + rng.normal(0.0, dgp.noise_std, size=(len(z_image), dgp.d))
    y = z_text @ gt.psi.T + rng.normal(0.0, dgp.noise_std, size=(len(z_text), dgp.d))
    if dgp.normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
    return x.astype(np.float32), y.astype(np.float32)


def write_het_dataset(
    dgp: HetDGP,
    out_dir: str | Path,
    n_train: int,
    n_eval: int,
    seed: int,
    shard_pairs: int = 65536,
    chunk: int = 8192,
    progress=None,
) -> GroundTruth:
    """Write ``train/`` and ``eval/`` stores and ``ground_truth.npz`` under ``out_dir``.

    Samples are generated ``chunk`` pairs at a time, so memory does not grow with ``n_train``.
    Features, train and eval draw from independent streams of ``seed``.
    """
    gt = sample_features(dgp, seed)

    def draw(split, size, rng):
        return embed_pairs(sample_pair_codes(dgp, size, rng), gt, dgp, rng)

    write_splits(out_dir, dgp.d, {"train": n_train, "eval": n_eval}, draw, seed, {"source": "het", **asdict(dgp)},
                 shard_pairs, chunk, progress)
    gt.save(Path(out_dir) / "ground_truth.npz")
    return gt
