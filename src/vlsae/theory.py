"""HET theory (Props. 3 and 4, Corollary 1): closed-form phase thresholds and numerical minimisers.

Setting: one concept (n = 1) with unit directions phi, psi and rho = phi . psi; codes z >= 0 from
Exp(1) (deterministic quantiles); one concept active per sample (the sparse limit s -> 1); an SAE
with tied weights, unit-norm columns and code ``sigma(W^T x)`` on the column it selects. The
propositions' closed forms (zero reconstruction when phi and psi own separate columns, amplitude
``w . phi`` on a shared column) are exactly those of a TopK activation with k = 1 on a tied
dictionary, which is what :meth:`Toy.minimise` optimises, with the library's own loss functions.

Phases of the global minimiser ``W`` (``d x m``):

* ``separate``: ``[phi psi]`` up to permutation (Cor. 1: reconstruction alone splits the concept);
* ``shared``: one column ``(phi + psi) / |phi + psi|`` serves both modalities;
* ``dead``: neither direction activates any column (group-sparse only).

Closed forms: Iso-Energy (inner-product form) switches separate -> shared at
``lambda* = 2(1 - rho)/(1 + rho)`` (Prop. 4); group-sparse switches at
``lambda* = (1 - rho) l_dag / (2 - sqrt(1 + rho))`` and dies above ``sqrt(1 + rho) l_dag`` with
``l_dag = E[z^2]/E[z]`` (Prop. 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .sae.losses import GroupSparse, IsoEnergy
from .sae.topk import TopKSAE
from .sae.train import reconstruction_loss

D = 3


def exp_quantiles(n: int = 32) -> torch.Tensor:
    """``n`` mid-quantiles of Exp(1): a deterministic stand-in for the code distribution."""
    return torch.from_numpy(-np.log1p(-(np.arange(n) + 0.5) / n)).float()


def lambda_dag(z: torch.Tensor) -> float:
    """``l_dag = E[z^2] / E[z]`` (HET Prop. 3)."""
    return float((z**2).mean() / z.mean())


def iso_threshold(rho: float) -> float:
    """Prop. 4: ``lambda* = 2 (1 - rho) / (1 + rho)``."""
    return 2 * (1 - rho) / (1 + rho)


def group_sparse_thresholds(rho: float, l_dag: float) -> tuple[float, float]:
    """Prop. 3: ``(lambda*, lambda_dead) = ((1-rho) l_dag / (2 - sqrt(1+rho)), sqrt(1+rho) l_dag)``."""
    return (1 - rho) * l_dag / (2 - math.sqrt(1 + rho)), math.sqrt(1 + rho) * l_dag


def directions(rho: float, n: int = 1, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n x d`` unit directions phi_i, psi_i with phi_i . psi_i = rho (``seed=None``: phi = e1, psi in span(e1, e2))."""
    if seed is None:
        if n != 1:
            raise ValueError("several concepts need a seed")
        phi, ortho = torch.eye(D)[:1], torch.eye(D)[1:2]
    else:
        g = torch.Generator().manual_seed(seed)
        phi = torch.nn.functional.normalize(torch.randn(n, D, generator=g), dim=1)
        ortho = torch.randn(n, D, generator=g)
    ortho = torch.nn.functional.normalize(ortho - (ortho * phi).sum(1, keepdim=True) * phi, dim=1)
    return phi, rho * phi + math.sqrt(1 - rho**2) * ortho


@dataclass
class Toy:
    """One instance of the propositions' setting: directions, code quantiles and an auxiliary loss."""

    phi: torch.Tensor
    psi: torch.Tensor
    loss: IsoEnergy | GroupSparse
    z: torch.Tensor

    def __post_init__(self):
        self.top1 = TopKSAE(D, 2 * self.phi.shape[0], k=1)  # only its activation is used

    def objective(self, W: torch.Tensor, lam: float) -> torch.Tensor:
        """Mean over dictionaries ``W`` (``P x d x m``) of ``L_rec(Phi) + L_rec(Psi) + lam * loss``."""
        x = (self.z[:, None, None] * self.phi).flatten(0, 1)
        y = (self.z[:, None, None] * self.psi).flatten(0, 1)
        u, v = self.top1.activate((x @ W).flatten(0, 1)), self.top1.activate((y @ W).flatten(0, 1))

        def decode(code):
            return (code.dense().view(W.shape[0], -1, W.shape[2]) @ W.transpose(1, 2)).flatten(0, 1)

        p = W.shape[0]
        rec = reconstruction_loss(x.repeat(p, 1), decode(u)) + reconstruction_loss(y.repeat(p, 1), decode(v))
        return rec + lam * self.loss(u, v)

    def minimise(self, lam: float, steps: int = 200, n_random: int = 6) -> torch.Tensor:
        """Best ``d x m`` minimiser of projected-Adam runs from random starts and the three candidates."""
        phi, psi = self.phi, self.psi
        m = 2 * phi.shape[0]
        shared = torch.nn.functional.normalize(phi + psi, dim=1)
        candidates = [torch.cat([phi, psi]).T, torch.cat([shared, -shared]).T, -torch.cat([shared, shared]).T]
        raw = torch.cat([torch.randn(n_random, D, m, generator=torch.Generator().manual_seed(0)),
                         torch.stack(candidates)]).requires_grad_(True)
        opt = torch.optim.Adam([raw], lr=0.02)
        for _ in range(steps):
            opt.zero_grad()
            self.objective(raw / raw.norm(dim=1, keepdim=True), lam).backward()
            opt.step()
        with torch.no_grad():
            W = raw / raw.norm(dim=1, keepdim=True)
            return W[torch.stack([self.objective(w[None], lam) for w in W]).argmin()]

    def phase(self, w: torch.Tensor) -> str:
        """``separate``, ``shared``, ``dead`` or ``other`` for a single concept (n = 1)."""
        phi, psi = self.phi[0], self.psi[0]
        u, v = self.top1.activate((phi @ w)[None]), self.top1.activate((psi @ w)[None])
        if u.values.max() < 1e-3 and v.values.max() < 1e-3:
            return "dead"
        col_u, col_v = w[:, u.indices[0, 0]], w[:, v.indices[0, 0]]
        shared = (phi + psi) / (phi + psi).norm()
        if u.indices[0, 0] == v.indices[0, 0] and col_u @ shared > 0.995:
            return "shared"
        if col_u @ phi > 0.995 and col_v @ psi > 0.995:
            return "separate"
        return "other"

    def switch(self, lo: float, hi: float, below: str, iters: int = 9) -> float:
        """Bisection for the lambda at which the minimiser leaves phase ``below`` (checked at both ends)."""
        for lam, expect_below in ((lo, True), (hi, False)):
            if (self.phase(self.minimise(lam)) == below) != expect_below:
                raise ValueError(f"lambda={lam} does not bracket the end of phase {below!r}")
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.phase(self.minimise(mid)) == below else (lo, mid)
        return 0.5 * (lo + hi)


def phase_boundaries(rho: float, n_z: int = 32) -> list[dict]:
    """Numerical and closed-form thresholds at ``rho`` for both losses (one row per boundary)."""
    z = exp_quantiles(n_z)
    phi, psi = directions(rho)
    iso = Toy(phi, psi, IsoEnergy(weight=1.0, normalize=False), z)
    gs = Toy(phi, psi, GroupSparse(weight=1.0), z)
    iso_star = iso_threshold(rho)
    gs_star, gs_dead = group_sparse_thresholds(rho, lambda_dag(z))
    found = [
        ("iso_energy", "separate->shared", iso.switch(0.1 * iso_star, 3 * iso_star, "separate"), iso_star),
        ("group_sparse", "separate->shared", gs.switch(0.1 * gs_star, 0.99 * gs_dead, "separate"), gs_star),
        ("group_sparse", "shared->dead", gs.switch(0.5 * (gs_star + gs_dead), 3 * gs_dead, "shared"), gs_dead),
    ]
    return [{"loss": loss, "boundary": b, "rho": rho, "lambda_found": f, "lambda_closed_form": c,
             "relative_error": abs(f - c) / c} for loss, b, f, c in found]
