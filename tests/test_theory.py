"""Numerical checks of HET Props. 3 and 4 and Corollary 1 (setting and method: ``vlsae.theory``).

For each lambda the objective built from the library's own losses is minimised by projected Adam
from several starts; bisection on lambda locates each phase switch, which must match the closed
form within 5%.
"""

import pytest
import torch

from vlsae.sae.losses import GroupSparse, IsoEnergy
from vlsae.theory import Toy, directions, exp_quantiles, group_sparse_thresholds, lambda_dag, phase_boundaries

RHO = 0.5


def test_corollary1_reconstruction_alone_splits_every_concept():
    """Cor. 1 (m = 2n, lambda = 0): the minimiser is [Phi Psi] up to permutation, with zero loss."""
    phi, psi = directions(RHO, n=2, seed=1)
    toy = Toy(phi, psi, IsoEnergy(weight=1.0), exp_quantiles())
    w = toy.minimise(0.0, steps=600)
    assert float(toy.objective(w[None], 0.0)) < 1e-4
    cos = torch.cat([phi, psi]) @ w  # 2n x m: each direction owns one column
    assert (cos.max(1).values > 0.999).all() and len(set(cos.argmax(1).tolist())) == 4


def test_props_3_and_4_thresholds_within_5_percent():
    """Iso-Energy: separate -> shared at 2(1-rho)/(1+rho) (Prop. 4). Group-sparse: separate -> shared at
    (1-rho) l_dag / (2 - sqrt(1+rho)), dead above sqrt(1+rho) l_dag (Prop. 3)."""
    rows = phase_boundaries(RHO)
    assert len(rows) == 3
    for row in rows:
        assert row["relative_error"] < 0.05, row


def test_phases_between_and_beyond_the_thresholds():
    z = exp_quantiles()
    phi, psi = directions(RHO)
    iso = Toy(phi, psi, IsoEnergy(weight=1.0, normalize=False), z)
    assert iso.phase(iso.minimise(3.0)) == "shared"  # Iso-Energy is never dead
    gs = Toy(phi, psi, GroupSparse(weight=1.0), z)
    star, dead = group_sparse_thresholds(RHO, lambda_dag(z))
    assert [gs.phase(gs.minimise(lam)) for lam in (0.5 * star, 0.5 * (star + dead), 1.5 * dead)] == ["separate", "shared", "dead"]


def test_cosine_form_of_iso_energy_has_another_threshold():
    """The normalised (ISO eq. 4) loss is not Prop. 4's inner product: its switch is elsewhere."""
    phi, psi = directions(RHO)
    found = Toy(phi, psi, IsoEnergy(weight=1.0), exp_quantiles()).switch(0.05, 3.0, "separate")
    assert found == pytest.approx(0.94, abs=0.03) and abs(found - 2 * (1 - RHO) / (1 + RHO)) > 0.2
