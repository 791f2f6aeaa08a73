"""Numerical checks of HET Props. 3 and 4 and Corollary 1 with the library's own losses.

Setting of the propositions: concepts with unit directions phi_i, psi_i, rho = phi_i . psi_i = 0.5,
one concept active per sample (the sparse limit s -> 1), codes z >= 0 drawn from Exp(1), and an SAE
with tied weights and unit-norm columns whose code of ``x`` is ``sigma(W^T x)`` on the column it
selects. The closed forms (zero reconstruction when phi and psi own separate columns, amplitude
``w . phi`` on a shared column) are exactly those of the library's TopK activation with k = 1 on
a tied dictionary, which is what we minimise here. For each lambda the objective is minimised by
projected Adam from several starting points (random ones and the candidate solutions), and the
best minimiser is classified as *separate* ([phi psi]), *shared* ((phi+psi)/|phi+psi|) or *dead*.
Bisection on lambda then locates each phase switch; it must match the closed form within 5%.
"""

import math

import numpy as np
import pytest
import torch

from vlsae.sae.losses import GroupSparse, IsoEnergy
from vlsae.sae.topk import TopKSAE
from vlsae.sae.train import reconstruction_loss

RHO, D = 0.5, 3
PHI = torch.tensor([[1.0, 0.0, 0.0]])
PSI = torch.tensor([[RHO, math.sqrt(1 - RHO**2), 0.0]])
Z = torch.from_numpy(-np.log1p(-(np.arange(32) + 0.5) / 32)).float()  # Exp(1) quantiles
LAMBDA_DAG = float((Z**2).mean() / Z.mean())  # E[z^2] / E[z], HET Prop. 3


def _objective(W: torch.Tensor, loss, lam: float, phi=PHI, psi=PSI) -> torch.Tensor:
    """Mean over the dictionaries ``W`` (``P x d x m``) of ``L_rec(Phi) + L_rec(Psi) + lam * loss``."""
    top1 = TopKSAE(D, W.shape[2], k=1)
    x, y = (Z[:, None, None] * phi).flatten(0, 1), (Z[:, None, None] * psi).flatten(0, 1)
    u, v = top1.activate((x @ W).flatten(0, 1)), top1.activate((y @ W).flatten(0, 1))
    decode = lambda code: (code.dense().view(W.shape[0], -1, W.shape[2]) @ W.transpose(1, 2)).flatten(0, 1)
    rec = reconstruction_loss(x.repeat(W.shape[0], 1), decode(u)) + reconstruction_loss(y.repeat(W.shape[0], 1), decode(v))
    return rec + lam * loss(u, v)


def _minimise(loss, lam: float, phi=PHI, psi=PSI, steps: int = 200) -> torch.Tensor:
    """Best of projected-Adam runs from random starts and the separate/shared/dead solutions."""
    m = 2 * phi.shape[0]
    shared = (phi + psi) / (phi + psi).norm(dim=1, keepdim=True)
    candidates = [torch.cat([phi, psi]).T, torch.cat([shared, -shared]).T, -torch.cat([shared, shared]).T]
    raw = torch.cat([torch.randn(6, D, m, generator=torch.Generator().manual_seed(0)), torch.stack(candidates)])
    raw.requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        _objective(raw / raw.norm(dim=1, keepdim=True), loss, lam, phi, psi).backward()
        opt.step()
    with torch.no_grad():
        W = raw / raw.norm(dim=1, keepdim=True)
        return W[torch.stack([_objective(w[None], loss, lam, phi, psi) for w in W]).argmin()]


def _phase(w: torch.Tensor) -> str:
    top1 = TopKSAE(D, w.shape[1], k=1)
    u, v = top1.activate(PHI @ w), top1.activate(PSI @ w)
    if u.values.max() < 1e-3 and v.values.max() < 1e-3:
        return "dead"
    col_u, col_v = w[:, u.indices[0, 0]], w[:, v.indices[0, 0]]
    shared = ((PHI + PSI) / (PHI + PSI).norm())[0]
    if u.indices[0, 0] == v.indices[0, 0] and col_u @ shared > 0.995:
        return "shared"
    if col_u @ PHI[0] > 0.995 and col_v @ PSI[0] > 0.995:
        return "separate"
    return "other"


def _switch(loss, lo: float, hi: float, below: str, iters: int = 9) -> float:
    """Bisection for the lambda at which the minimiser leaves phase ``below``."""
    assert _phase(_minimise(loss, lo)) == below
    assert _phase(_minimise(loss, hi)) != below
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _phase(_minimise(loss, mid)) == below else (lo, mid)
    return 0.5 * (lo + hi)


def test_corollary1_reconstruction_alone_splits_every_concept():
    """Cor. 1 (m = 2n, lambda = 0): the minimiser is [Phi Psi] up to permutation, with zero loss."""
    g = torch.Generator().manual_seed(1)
    phi = torch.nn.functional.normalize(torch.randn(2, D, generator=g), dim=1)
    ortho = torch.randn(2, D, generator=g)
    ortho = torch.nn.functional.normalize(ortho - (ortho * phi).sum(1, keepdim=True) * phi, dim=1)
    psi = RHO * phi + math.sqrt(1 - RHO**2) * ortho
    w = _minimise(IsoEnergy(weight=1.0), 0.0, phi, psi, steps=600)
    assert float(_objective(w[None], IsoEnergy(weight=1.0), 0.0, phi, psi)) < 1e-4
    cos = torch.cat([phi, psi]) @ w  # 2n x m: each direction owns one column
    assert (cos.max(1).values > 0.999).all() and len(set(cos.argmax(1).tolist())) == 4


def test_prop4_iso_energy_threshold():
    """Iso-Energy (inner-product form): separate -> shared at lambda* = 2(1-rho)/(1+rho) (HET Prop. 4)."""
    iso = IsoEnergy(weight=1.0, normalize=False)
    expected = 2 * (1 - RHO) / (1 + RHO)
    assert _switch(iso, 0.1, 3.0, "separate") == pytest.approx(expected, rel=0.05)
    assert _phase(_minimise(iso, 3 * expected)) == "shared"  # never dead


def test_prop3_group_sparse_three_phases():
    """Group-sparse: separate -> shared at (1-rho) l_dag / (2 - sqrt(1+rho)), dead above sqrt(1+rho) l_dag."""
    gs = GroupSparse(weight=1.0)
    lam_star = (1 - RHO) * LAMBDA_DAG / (2 - math.sqrt(1 + RHO))
    lam_dead = math.sqrt(1 + RHO) * LAMBDA_DAG
    assert _switch(gs, 0.1, 0.99 * lam_dead, "separate") == pytest.approx(lam_star, rel=0.05)
    assert _phase(_minimise(gs, 0.5 * (lam_star + lam_dead))) == "shared"
    assert _switch(gs, 1.1 * lam_star, 3 * lam_dead, "shared") == pytest.approx(lam_dead, rel=0.05)
