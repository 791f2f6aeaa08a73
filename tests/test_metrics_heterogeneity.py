"""HET real-data analyses and the monosemanticity score, checked by hand or against definitions."""

import numpy as np
import pytest
from scipy import sparse

from vlsae.metrics.heterogeneity import direction_histogram, pair_histogram, retrieval_recall, self_match_rate
from vlsae.metrics.monosemanticity import MonosemanticityAccumulator, code_range


def test_retrieval_with_several_captions_per_image():
    e1, e2 = np.eye(2)
    image = np.stack([e1, e1, e2])                                   # images a, a, b
    text = np.stack([e2, [0.8, 0.6], e1])                            # captions of a, a, b
    out = retrieval_recall(image, text, np.array(["a", "a", "b"]), ks=(1, 2, 5), chunk=2)
    # t2i: caption 0 prefers b (miss), caption 1 finds a, caption 2 prefers a (miss at 1, hit at 2)
    assert (out["t2i_r@1"], out["t2i_r@2"]) == pytest.approx((1 / 3, 1.0))
    # i2t: a's best caption (0.8) is beaten by caption 2 (1.0); b's own caption (0) by captions 0 and 1
    assert (out["i2t_r@1"], out["i2t_r@2"], out["i2t_r@5"]) == pytest.approx((0.0, 0.5, 1.0))
    # sparse codes (a zero row has cosine 0 with everything) give the same ranking
    assert retrieval_recall(sparse.csr_matrix(image), sparse.csr_matrix(text), np.array(["a", "a", "b"]),
                            ks=(1, 2, 5)) == out


def test_direction_histogram_bins_distance_by_correlation():
    image = np.array([[1.0, 0], [1, 0], [0, 1]])
    text = np.array([[1.0, 0], [0, 1], [0, -1]])                     # distances 0, 1, 2
    counts = direction_histogram(image, text, np.array([0.9, 0.2, np.nan]), np.array([0, 0.5, 1]),
                                 np.array([0, 0.5, 1.5, 2.0]))
    assert counts.tolist() == [[0, 1, 0], [1, 0, 0]]                 # the unmatched pair is left out


def test_pair_histogram_bins_every_live_pair():
    """Fig. 2 over all m^2 pairs (App. E.1): two live image latents x two live text latents, one dead each."""
    image = np.array([[1.0, 0], [0, 1], [5, 5]])                     # latent 2 is dead
    text = np.array([[1.0, 0], [0, -1], [7, 7]])                     # latent 2 is dead
    corr = np.array([[0.9, 0.1, 0.0], [0.3, 0.7, 0.0], [0.0, 0.0, 0.0]])
    live = np.array([True, True, False])
    counts = pair_histogram(lambda rows: corr[rows], live, live, image, text, np.array([0, 0.5, 1]),
                            np.array([0, 0.5, 1.5, 2.0]), block=1)
    # distances: (0,0) 0, (0,1) 1, (1,0) 1, (1,1) 2; correlations 0.9, 0.1, 0.3, 0.7
    assert counts.tolist() == [[0, 2, 0], [1, 0, 1]]
    rng = np.random.default_rng(0)
    big_i, big_t = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    c = rng.uniform(-1, 1, size=(40, 30))
    li, lt = rng.random(40) > 0.2, rng.random(30) > 0.2
    unit_i = big_i / np.linalg.norm(big_i, axis=1, keepdims=True)
    unit_t = big_t / np.linalg.norm(big_t, axis=1, keepdims=True)
    expected = np.histogram2d(c[np.ix_(li, lt)].ravel(), (1 - unit_i[li] @ unit_t[lt].T).ravel(),
                              bins=(np.linspace(-1, 1, 6), np.linspace(0, 2, 9)))[0]
    got = pair_histogram(lambda rows: c[rows], li, lt, big_i, big_t, np.linspace(-1, 1, 6), np.linspace(0, 2, 9), block=7)
    assert np.array_equal(got, expected) and got.sum() == li.sum() * lt.sum()


def test_self_match_rate():
    assert self_match_rate(np.array([0, 2, 1, 3]), np.array([True, True, True, False])) == pytest.approx(1 / 3)


def _pairwise_ms(codes, embeddings):
    """The O(N^2) definition: sum_{n<m} a_n a_m s_nm / sum_{n<m} a_n a_m per latent."""
    lo, hi = codes.min(0), codes.max(0)
    a = (codes - lo) / np.where(hi > lo, hi - lo, 1)
    s = embeddings @ embeddings.T
    upper = np.triu(np.ones_like(s, dtype=bool), 1)
    weights = [np.outer(a[:, j], a[:, j])[upper] for j in range(codes.shape[1])]
    return np.array([(w * s[upper]).sum() / w.sum() if h > l else np.nan for w, h, l in zip(weights, hi, lo)])


def test_monosemanticity_closed_form_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    codes = np.maximum(rng.normal(size=(60, 5)), 0)
    codes[:, 1] = rng.normal(size=60)                                # a signed latent (min < 0)
    codes[:, 4] = 0.3                                                # a constant latent
    emb = rng.normal(size=(60, 7))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    lo, hi = code_range([codes[:25], codes[25:]])
    acc = MonosemanticityAccumulator(lo, hi, dim=7)
    for part in (slice(0, 25), slice(25, 60)):
        acc.update(codes[part], emb[part])
    np.testing.assert_allclose(acc.result(), _pairwise_ms(codes, emb), rtol=1e-10)
    assert np.isnan(acc.result()[4])
    same = np.tile(emb[:1], (60, 1))                                 # identical embeddings: MS = 1
    acc = MonosemanticityAccumulator(lo, hi, dim=7)
    acc.update(codes, same)
    assert acc.result()[:4] == pytest.approx(np.ones(4))
    lone = np.zeros((60, 1))
    lone[7] = 2.0                                                    # active once: no pair to score
    acc = MonosemanticityAccumulator(*code_range([lone]), dim=7)
    acc.update(lone, emb)
    assert np.isnan(acc.result()[0])
