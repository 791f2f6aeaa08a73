import numpy as np
import pytest

from vlsae.store import EmbeddingStore
from vlsae.synth.het import IMAGE_ONLY, SHARED, TEXT_ONLY, GroundTruth, HetDGP, sample_codes, sample_features, write_het_dataset

SMALL = dict(d=32, n_shared=64, n_image=32, n_text=32)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0])
def test_feature_geometry(alpha):
    dgp = HetDGP(**SMALL, alpha=alpha)
    gt = sample_features(dgp, seed=1)
    s, i, t = (np.flatnonzero(gt.types == c) for c in (SHARED, IMAGE_ONLY, TEXT_ONLY))
    assert (len(s), len(i), len(t)) == (64, 32, 32)
    np.testing.assert_allclose((gt.phi[:, s] * gt.psi[:, s]).sum(0), alpha, atol=1e-9)
    assert np.all(gt.psi[:, i] == 0) and np.all(gt.phi[:, t] == 0)
    for mat, live in ((gt.phi, np.r_[s, i]), (gt.psi, np.r_[s, t])):
        cols = mat[:, live]
        np.testing.assert_allclose(np.linalg.norm(cols, axis=0), 1.0, atol=1e-9)
        g = cols.T @ cols - np.eye(len(live))
        assert np.abs(g).max() <= 0.30 + 1e-9


def test_random_directions_would_violate_bound():
    """The bound is active at this size: plain Gaussian directions exceed 0.30."""
    cols = np.random.default_rng(0).normal(size=(32, 96))
    cols /= np.linalg.norm(cols, axis=0)
    assert np.abs(cols.T @ cols - np.eye(96)).max() > 0.30


def test_infeasible_bound_names_the_key():
    with pytest.raises(ValueError, match="max_interference"):
        sample_features(HetDGP(d=4, n_shared=64, n_image=0, n_text=0, max_interference=0.05), seed=0, max_steps=50)


def test_codes_are_bernoulli_exponential():
    z = sample_codes(200_000, 20, sparsity=0.99, rate=2.0, rng=np.random.default_rng(0))
    active = z > 0
    assert active.mean() == pytest.approx(0.01, rel=0.03)
    assert z[active].mean() == pytest.approx(0.5, rel=0.03)  # Exp(rate 2) has mean 1/2
    assert z[active].std() == pytest.approx(0.5, rel=0.05)


def test_dataset_files(tmp_path):
    dgp = HetDGP(**SMALL, alpha=0.5, normalize=True)
    write_het_dataset(dgp, tmp_path, n_train=900, n_eval=100, seed=0, shard_pairs=400, chunk=256)
    gt = GroundTruth.load(tmp_path / "ground_truth.npz")
    assert gt.alpha == 0.5 and gt.phi.shape == (32, 128)
    train, ev = EmbeddingStore(tmp_path / "train"), EmbeddingStore(tmp_path / "eval")
    assert (train.n_pairs, ev.n_pairs, len(train.manifest["shards"])) == (900, 100, 3)
    batch = next(train.iter_shards())
    np.testing.assert_allclose(np.linalg.norm(batch.image, axis=1), 1.0, atol=1e-5)
    assert train.metadata["alpha"] == 0.5 and train.metadata["split"] == "train"
    assert set(next(ev.iter_shards()).pair_id) == set(range(900, 1000))


def test_unnormalised_pairs_follow_the_model():
    """Without noise or normalisation, x = Phi z exactly, so x is in the span of the image features."""
    dgp = HetDGP(**SMALL, alpha=0.5, noise_std=0.0, normalize=False)
    gt = sample_features(dgp, seed=0)
    from vlsae.synth.het import embed_pairs

    z = sample_codes(50, dgp.n, 0.9, 1.0, np.random.default_rng(1))
    x, y = embed_pairs(z, gt, dgp, np.random.default_rng(2))
    np.testing.assert_allclose(x, z @ gt.phi.T, atol=1e-5)
    np.testing.assert_allclose(y, z @ gt.psi.T, atol=1e-5)


def test_eq1_draws_one_code_for_both_modalities():
    from vlsae.synth.het import sample_pair_codes

    z_image, z_text = sample_pair_codes(HetDGP(**SMALL), 500, np.random.default_rng(0))
    assert z_image is z_text


def test_authors_data_draw_independent_shared_coefficients_and_min_active():
    """``shared_codes: independent``: one support, two coefficients for a shared concept; unimodal blocks
    identical. ``min_active: 1``: every pair shows a shared, an image-only and a text-only concept."""
    from vlsae.synth.het import sample_pair_codes

    dgp = HetDGP(**SMALL, sparsity=0.99, shared_codes="independent", min_active=1)
    z_image, z_text = sample_pair_codes(dgp, 20_000, np.random.default_rng(0))
    types = dgp.concept_types()
    shared = types == SHARED
    np.testing.assert_array_equal(z_image[:, shared] > 0, z_text[:, shared] > 0)
    np.testing.assert_array_equal(z_image[:, ~shared], z_text[:, ~shared])
    on = z_image[:, shared] > 0
    assert np.corrcoef(z_image[:, shared][on], z_text[:, shared][on])[0, 1] == pytest.approx(0.0, abs=0.05)
    for t in (SHARED, IMAGE_ONLY, TEXT_ONLY):
        assert ((z_image[:, types == t] > 0).sum(1) >= 1).all()
    # at s = 0.99 a 32-concept block is empty with probability 0.99^32 = 0.72 and then gets exactly one
    assert ((z_image[:, types == IMAGE_ONLY] > 0).sum(1) == 1).mean() == pytest.approx(
        0.99**32 + 32 * 0.01 * 0.99**31, abs=0.02)
    with pytest.raises(ValueError, match="shared_codes"):
        HetDGP(shared_codes="both")
