import numpy as np
import pytest

from scipy.integrate import quad

from vlsae.metrics.synthetic import (alignment_error, collapse_rate, feature_recovery_error, reconstruction_error, row_cosine,
                                     true_code_alignment_error)
from vlsae.synth.het import HetDGP


def test_reconstruction_error_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    x_hat = np.array([[0.0, 0.0], [0.0, 1.0]])  # squared errors 1 and 1 -> mean 1
    y = np.array([[3.0, 0.0], [0.0, 0.0]])
    y_hat = np.array([[1.0, 0.0], [0.0, 0.0]])  # squared errors 4 and 0 -> mean 2
    assert reconstruction_error(x, x_hat, y, y_hat) == pytest.approx(0.5 * (1 + 2))


def test_feature_recovery_error_by_hand():
    phi = np.eye(2)
    phi_hat = np.array([[0.5, 0.0], [0.0, 1.0]])  # 0.25, 0
    psi = np.eye(2)
    psi_hat = np.zeros((2, 2))  # 1, 1
    # 1/(2 n_S) * (0.25 + 0 + 1 + 1) with n_S = 2
    assert feature_recovery_error(phi, phi_hat, psi, psi_hat) == pytest.approx(2.25 / 4)


def test_alignment_error_by_hand():
    z_img = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    z_txt = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # cosines 1, 1/sqrt(2), and 0 for the all-zero code
    np.testing.assert_allclose(row_cosine(z_img, z_txt), [1.0, 2**-0.5, 0.0])
    assert alignment_error(z_img, z_txt) == pytest.approx(1 - (1 + 2**-0.5) / 3)


def test_collapse_rate_by_hand():
    atoms = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    phi = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.9]])
    psi = np.array([[0.8, 0.3, 0.0], [0.0, 0.9, 0.1]])
    # concept 0: both nearest to atom 0 (collapsed); concept 1: atom 2 vs atom 1 (split)
    assert collapse_rate(atoms, atoms, phi, psi) == 0.5
    # a text dictionary with permuted rows splits concept 0 as well
    assert collapse_rate(atoms, atoms[[1, 0, 2]], phi, psi) == 0.0


def test_true_code_alignment_error_closed_forms():
    # No unimodal concepts: image and caption codes are equal, so the error is the probability that
    # no concept is active (a zero code counts as misaligned): s^n = 0.5^4.
    dgp = HetDGP(n_shared=4, n_image=0, n_text=0, sparsity=0.5)
    assert true_code_alignment_error(dgp) == pytest.approx(0.5**4, abs=4e-3)
    # No shared concepts: the codes never overlap.
    assert true_code_alignment_error(HetDGP(n_shared=0)) == pytest.approx(1.0)
    # One shared and one image-only concept, always active, z ~ Exp(1) i.i.d.: cos = z1 / |(z1, z2)|.
    # With t = z2 / z1 (density 1 / (1 + t)^2), E[cos] = int_0^inf dt / ((1 + t)^2 sqrt(1 + t^2)).
    expected = 1.0 - quad(lambda t: 1.0 / ((1 + t) ** 2 * np.sqrt(1 + t * t)), 0, np.inf)[0]
    dgp = HetDGP(n_shared=1, n_image=1, n_text=0, sparsity=0.0)
    assert true_code_alignment_error(dgp, n_samples=400_000) == pytest.approx(expected, abs=2e-3)


def test_fvu_by_hand():
    from vlsae.metrics.synthetic import fvu

    x = np.array([[1.0, 0.0], [-1.0, 0.0]])      # mean 0, total variance 2
    assert fvu(x, np.zeros_like(x)) == pytest.approx(1.0)
    assert fvu(x, 0.5 * x) == pytest.approx(0.25)
    assert fvu(x + 5.0, x + 5.0) == pytest.approx(0.0)  # the mean is not explained for free


def test_authors_top1_feature_recovery_by_hand():
    """``compute_gre_top1``: the largest ReLU pre-activation alone decodes the feature (b_dec not subtracted)."""
    import torch

    from vlsae.metrics.synthetic import top1_reconstruction
    from vlsae.sae import PairedSAE, SAESpec

    model = PairedSAE(SAESpec(architecture="topk", latents=3, params={"k": 2}), 2)
    sae = model.side("image")
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0.0, -1.5]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
        sae.b_dec.copy_(torch.tensor([0.1, 0.0]))
    g = np.array([[2.0, 1.0], [0.0, 0.5]])
    # row 0: pre = (2, 1, 1.5) -> latent 0 at 2 -> (2.1, 0); row 1: pre = (0, 0.5, 0) -> latent 1 -> (0.1, 0.5)
    np.testing.assert_allclose(top1_reconstruction(model, "image", g), [[2.1, 0.0], [0.1, 0.5]], atol=1e-6)


def test_het_metric_options_are_checked():
    from vlsae.metrics.synthetic import HetMetrics

    with pytest.raises(ValueError, match="feature_recovery"):
        HetMetrics(feature_recovery="top2")


def test_evaluate_het_reports_both_definitions_and_uses_the_chosen_one(tmp_path):
    from vlsae.metrics.synthetic import DEFINITIONS, HetMetrics, evaluate_het, fvu
    from vlsae.sae import PairedSAE, SAESpec
    from vlsae.store import EmbeddingStore
    from vlsae.synth.het import GroundTruth, write_het_dataset

    dgp = HetDGP(d=16, n_shared=16, n_image=8, n_text=8, alpha=0.5)
    write_het_dataset(dgp, tmp_path, n_train=10, n_eval=600, seed=0)
    gt, store = GroundTruth.load(tmp_path / "ground_truth.npz"), EmbeddingStore(tmp_path / "eval")
    model = PairedSAE(SAESpec(latents=64, params={"k": 2}), 16).eval()
    paper = evaluate_het(model, gt, store)
    authors = evaluate_het(model, gt, store, metrics=HetMetrics("fvu", "top1"))
    assert all(paper[k] == authors[k] for k in DEFINITIONS)
    assert paper["reconstruction_error"] == paper["reconstruction_error_mse"]
    assert authors["reconstruction_error"] == authors["reconstruction_error_fvu"]
    assert authors["feature_recovery_error"] == authors["feature_recovery_error_top1"]
    # FVU by hand: batches of 256, 256 and 88 pairs, per modality, averaged
    batches = list(store.iter_batches(600))[0]
    import torch
    with torch.no_grad():
        x_hat = {s: model.side(s)(torch.from_numpy(getattr(batches, s)))[0].numpy() for s in ("image", "text")}
    edges = [(0, 256), (256, 512), (512, 600)]
    by_hand = np.mean([0.5 * (fvu(batches.image[a:b], x_hat["image"][a:b]) + fvu(batches.text[a:b], x_hat["text"][a:b]))
                       for a, b in edges])
    assert authors["reconstruction_error_fvu"] == pytest.approx(by_hand, rel=1e-5)
