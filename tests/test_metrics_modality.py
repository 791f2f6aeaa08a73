"""Modality metrics (ISO E.2.2) on a 3-atom dictionary, worked out by hand."""

import numpy as np
import pytest

from vlsae.metrics import modality

from vlsae.metrics.modality import (bimodal_mask, energy, fda, functional_alignment, modality_score, probe_accuracy,
                                    probing_score, transport_plan)

# atoms e1, (1/2, sqrt3/2, 0), e3: D D^T has one off-diagonal entry 1/2 (atoms 1 and 2)
ATOMS = np.array([[1.0, 0, 0], [0.5, np.sqrt(3) / 2, 0], [0, 0, 1]])
Z_IMAGE = np.array([[1.0, 0, 1], [1, 0, 0]])
Z_TEXT = np.array([[0.0, 1, 2], [0, 1, 0]])


def _three_atom_case():
    e_image, e_text = energy(Z_IMAGE), energy(Z_TEXT)
    return e_image, e_text, bimodal_mask(modality_score(e_image, e_text))


def test_energy_modality_score_and_mask():
    e_image, e_text, bimodal = _three_atom_case()
    assert e_image == pytest.approx([1, 0, 0.5]) and e_text == pytest.approx([0, 1, 2])
    assert modality_score(e_image, e_text) == pytest.approx([1, 0, 0.2])
    assert bimodal.tolist() == [False, False, True]
    assert np.isnan(modality_score(np.zeros(1), np.zeros(1))[0]) and not bimodal_mask(np.array([np.nan]))[0]
    assert bimodal_mask(np.array([0.04, 0.05, 0.95, 0.96])).tolist() == [False, True, True, False]


def test_rho_on_three_atoms():
    _, _, bimodal = _three_atom_case()
    sigma = Z_IMAGE.T @ Z_TEXT / len(Z_IMAGE)  # rows (0, 1, 1), 0, (0, 1/2, 1)
    # B_Sigma: (0,1) = 1 * 1/2 (unimodal pair), (2,2) = 1 * 1 (bimodal); (0,2), (2,1) meet orthogonal atoms
    assert functional_alignment(sigma, ATOMS, bimodal) == pytest.approx(1.0 / 0.5)


def test_fda_on_three_atoms():
    e_image, e_text, bimodal = _three_atom_case()
    plan = transport_plan(e_image, e_text, ATOMS)
    # a = (2/3, 0, 1/3), b = (0, 1/3, 2/3): atom 3 stays (cost 0); atom 1 sends 1/3 to atom 2 (cost 1/2) and
    # 1/3 to atom 3 (cost 1): total cost 1/2; the other plan costs 1
    assert plan.dense(3) == pytest.approx(np.array([[0, 1 / 3, 1 / 3], [0, 0, 0], [0, 0, 1 / 3]]), abs=1e-12)
    assert plan.rows.tolist() == [0, 2] and plan.cols.tolist() == [1, 2]   # atoms without energy on a side dropped
    # B_Gamma: (0,1) = 1/6 (unimodal), (2,2) = 1/3 (bimodal): alpha = 1/3; E = (1/2, 1/2, 5/4): eps = 5/9
    total = (e_image + e_text) / 2
    assert fda(plan, ATOMS, bimodal, total) == pytest.approx((3 / 5) * (4 / 9) / (4 / 9 - 1 / 3))  # 2.4
    assert fda(plan, ATOMS, bimodal, total, denominator="mass") == pytest.approx((3 / 5) / ((1 / 6) / (4 / 9)))  # 1.6
    sinkhorn = transport_plan(e_image, e_text, ATOMS, solver="sinkhorn", reg=1e-3)
    assert sinkhorn.dense(3) == pytest.approx(plan.dense(3), abs=1e-3)
    with pytest.raises(ValueError, match="denominator"):
        fda(plan, ATOMS, bimodal, total, denominator="typo")


def test_sign_probe_follows_e3():
    # centred A: the mean of the four rows (0.5, 0.25, 0) is removed before the sign is read
    image = np.array([[2.0, 0, 0], [1, 1, 0]])
    text = np.array([[-1.0, 0, 0], [0, 0, 0]])
    atoms = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1, 0]])
    # projections of centred rows on e1: 1.5, 0.5, -1.5, -0.5 -> preds 1, 1, 0, 0
    # image-only e1: labels l_img -> 1; text-only -e1 (mu < tau): preds 0, 0, 1, 1 vs 1 - l_img = 0, 0, 1, 1 -> 1;
    # e2 bimodal: centred projections -0.25, 0.75, -0.25, -0.25 -> preds 0, 1, 0, 0 vs l_img 1, 1, 0, 0 -> 3/4
    acc = probe_accuracy(atoms, image, text, mu=np.array([1.0, 0.0, 0.5]), tau=0.05, chunk=2)
    assert acc == pytest.approx([1.0, 1.0, 0.75])


def test_image_only_atom_that_fires_on_texts_scores_below_half():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(50, 4)) + [0, 0, 0, 3.0]
    text = rng.normal(size=(50, 4)) + [0, 0, 0, -3.0]
    towards_text = np.array([[0, 0, 0, -1.0]])
    # the atom is image-only by its energy (mu = 0.99) but points to the text cone: E.3 scores it against l_img
    assert probe_accuracy(towards_text, image, text, mu=np.array([0.99]))[0] < 0.5
    # the stump reading takes the better orientation and hides the failure
    assert probe_accuracy(towards_text, image, text, mu=np.array([0.99]), probe="stump")[0] > 0.9
    with pytest.raises(ValueError, match="probe"):
        probe_accuracy(towards_text, image, text, mu=np.array([0.99]), probe="typo")


def test_stump_probe_and_p_acc():
    image = np.array([[2.0, 0, 0], [3, 1, 0]])
    text = np.array([[-1.0, 0, 0], [0, 1, 0]])
    # atom e1 separates (2, 3) from (-1, 0): 1; atom e2 sees (0, 1) in both: no threshold beats 1/2
    # (ties cannot be split); atom -e1 separates as well, in the other orientation
    acc = probe_accuracy(np.array([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0]]), image, text, mu=np.ones(3), probe="stump",
                         chunk=2)
    assert acc == pytest.approx([1.0, 0.5, 1.0])
    # s = (1, 1 - 2 (0.5 - 0.5), 1 - 2 (0.75 - 0.5)) weighted by E = (1, 1, 2)
    assert probing_score(np.array([1.0, 0.5, 0.75]), np.array([False, True, True]), np.array([1.0, 1, 2])) == 0.75


def test_degenerate_latents_and_their_energy_share():
    """Four latents over 3 images and 3 texts: latent 0 fires on all 6 samples (degenerate), latent 1 on 5, latent 2 on
    the images only, latent 3 never. Energies by hand, (E_img + E_txt) / 2: (4 + 4) / 2, (2/3 + 1) / 2, (9 + 0) / 2, 0;
    the degenerate share is 4 / (4 + 5/6 + 4.5)."""
    z_img = np.array([[2.0, 1, 3, 0], [2, 1, 3, 0], [2, 0, 3, 0]])
    z_txt = np.array([[2.0, 1, 0, 0], [2, 1, 0, 0], [2, 1, 0, 0]])
    fired = (z_img != 0).sum(0) + (z_txt != 0).sum(0)
    mask = modality.degenerate_mask(fired, samples=6)
    assert mask.tolist() == [True, False, False, False]
    total = (modality.energy(z_img) + modality.energy(z_txt)) / 2
    np.testing.assert_allclose(total, [4.0, (2 / 3 + 1) / 2, 4.5, 0.0])
    assert modality.energy_share(total, mask) == pytest.approx(4.0 / (4.0 + 5 / 6 + 4.5))
    assert modality.energy_share(np.zeros(3), np.ones(3, bool)) == 0.0
