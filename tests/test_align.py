import numpy as np
import pytest
import torch

from vlsae.align import Alignment, CoactivationStats, align_paired_sae, hungarian_permutation
from vlsae.sae import PairedSAE, SAESpec
from vlsae.store import EmbeddingStore, StoreWriter


def test_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    zi, zt = rng.exponential(size=(500, 4)) * (rng.random((500, 4)) < 0.3), rng.normal(size=(500, 3))
    stats = CoactivationStats.empty(4, 3)
    stats.update(zi[:200], zt[:200])
    stats.update(zi[200:], zt[200:])
    expected = np.corrcoef(zi.T, zt.T)[:4, 4:]
    np.testing.assert_allclose(stats.correlation(), expected, atol=1e-10)
    np.testing.assert_allclose(stats.correlation(np.array([2, 0])), expected[[2, 0]], atol=1e-10)
    # in place, for the alignment: the same values in the cross moment's own buffer; a constant latent gives 0
    zi[:, 3] = 0.0
    stats = CoactivationStats.empty(4, 3)
    stats.update(zi, zt)
    full = stats.correlation()
    assert np.array_equal(full[3], np.zeros(3))
    buffer = stats.cross
    np.testing.assert_allclose(stats.correlation_(), full, atol=1e-12)
    assert stats.cross is buffer


def test_cross_moment_accumulates_sparsely_in_place():
    from vlsae.align.hungarian import accumulate_cross

    rng = np.random.default_rng(3)
    a, b = rng.exponential(size=(50, 6)) * (rng.random((50, 6)) < 0.3), rng.exponential(size=(50, 5)) * (rng.random((50, 5)) < 0.3)
    for dtype in (np.float64, np.float32):
        acc = np.ones((6, 5), dtype=dtype)
        accumulate_cross(acc, a, b)
        np.testing.assert_allclose(acc, 1 + a.T @ b, rtol=1e-6)


def test_hungarian_recovers_planted_permutation_and_skips_dead():
    rng = np.random.default_rng(1)
    m, n = 40, 5000
    planted = rng.permutation(m)
    zi = rng.exponential(size=(n, m)) * (rng.random((n, m)) < 0.1)
    zi[:, [3, 17]] = 0.0  # dead image latents
    zt = np.zeros_like(zi)
    zt[:, planted] = zi + 0.05 * rng.random((n, m))  # text latent planted[i] copies image latent i
    zt[:, planted[[3, 17]]] = 0.0
    stats = CoactivationStats.empty(m, m)
    stats.update(zi, zt)
    assert stats.live_image.sum() == m - 2 and not stats.live_image[[3, 17]].any()
    perm, matched = hungarian_permutation(stats.correlation(), stats.live_image, stats.live_text)
    live = stats.live_image
    np.testing.assert_array_equal(perm[live], planted[live])
    assert not matched[[3, 17]].any() and sorted(perm) == list(range(m))


def test_signed_correlation_prefers_positive_matches():
    corr = np.array([[-0.9, 0.2], [0.1, -0.8]])
    perm, _ = hungarian_permutation(corr, np.ones(2, bool), np.ones(2, bool))
    np.testing.assert_array_equal(perm, [1, 0])  # maximises 0.2 + 0.1, not |-0.9| + |-0.8|


def test_align_paired_sae_recovers_swapped_text_sae(tmp_path):
    """A 'specific' pair whose text SAE is the image SAE with permuted latents aligns back exactly."""
    d, m = 8, 16
    torch.manual_seed(0)
    model = PairedSAE(SAESpec(latents=2 * m, arrangement="specific", params={"k": 3}), d)
    planted = torch.randperm(m)
    img, txt = model.side("image"), model.side("text")
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc"):
            getattr(txt, name).copy_(getattr(img, name)[planted])
        txt.b_dec.copy_(img.b_dec)
    x = np.random.default_rng(0).normal(size=(3000, d)).astype(np.float32)
    with StoreWriter(tmp_path, d, shard_pairs=1000) as w:
        w.add(np.arange(3000), x, x)
    alignment = align_paired_sae(model, EmbeddingStore(tmp_path), batch_size=512, progress=False)
    live = alignment.live_image
    assert live.sum() >= m - 2
    inverse = torch.argsort(planted).numpy()
    np.testing.assert_array_equal(alignment.perm[live], inverse[live])
    np.testing.assert_allclose(alignment.matched_corr[live], 1.0, atol=1e-6)
    # Fig. 2's histogram covers every live image x live text pair; the matched pairs (correlation 1,
    # identical atoms) land in the top correlation bin at distance 0
    assert alignment.pair_counts.sum() == alignment.live_image.sum() * alignment.live_text.sum()
    assert alignment.pair_counts[-1, 0] >= live.sum()
    alignment.save(tmp_path / "alignment.npz")
    assert np.array_equal(Alignment.load(tmp_path / "alignment.npz").pair_counts, alignment.pair_counts)


def test_absolute_matching_is_the_authors_sum_of_abs_correlations():
    corr = np.array([[-0.9, 0.2], [0.1, -0.8]])
    kept = corr.copy()
    perm, _ = hungarian_permutation(corr, np.ones(2, bool), np.ones(2, bool), matching="absolute")
    np.testing.assert_array_equal(perm, [0, 1])  # |-0.9| + |-0.8| beats 0.2 + 0.1
    np.testing.assert_array_equal(corr, kept)      # the caller's C comes back signed
    with pytest.raises(ValueError, match="matching"):
        hungarian_permutation(corr, np.ones(2, bool), np.ones(2, bool), matching="best")
