"""Concept steering (HET Fig. 7), piece by piece, on hand-made cases."""

import numpy as np
import pytest
from scipy import sparse

from vlsae.metrics import steering


def test_mentions_match_whole_words_and_plurals():
    captions = ["Two dogs on a sofa", "a hotdog stand", "A DOG.", "traffic lights at night", "a bus"]
    assert steering.mentions(captions, "dog").tolist() == [True, False, True, False, False]
    assert steering.mentions(captions, "traffic light").tolist() == [False, False, False, True, False]
    assert steering.mentions(captions, "bus").tolist() == [False, False, False, False, True]


def test_concept_latent_is_the_largest_mean_difference():
    z = sparse.csr_matrix(np.array([[0, 2.0, 1], [0, 2.0, 0], [3.0, 0, 1], [3.0, 0, 0]]))
    # means: mentioned (rows 0, 1) = (0, 2, .5), others = (3, 0, .5): differences (-3, 2, 0)
    assert steering.concept_latent(z, np.array([True, True, False, False])) == 1
    assert steering.concept_latent(z, np.array([False, False, True, True])) == 0


def test_image_latent_follows_the_alignment():
    perm = np.array([2, 0, 1])  # image latent i is aligned to text latent perm[i]
    assert steering.image_latent(0, perm) == 1 and steering.image_latent(2, perm) == 0
    assert steering.image_latent(2, None) == 2


def test_average_precision_and_reciprocal_rank_by_hand():
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [np.nan, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    relevant = np.array([False, True, False, True])
    ap, rr = steering.ranking_scores(scores, relevant)
    # row 0: hits at ranks 2 and 4 -> AP = (1/2 + 2/4) / 2 = 1/2, RR = 1/2
    # row 1: candidate 0 excluded, ranking 1, 2, 3 -> hits at ranks 1 and 3 -> AP = (1 + 2/3) / 2, RR = 1
    # row 2: ties keep candidate order -> same as row 0
    assert ap == pytest.approx([0.5, 5 / 6, 0.5]) and rr == pytest.approx([0.5, 1.0, 0.5])
    ap, rr = steering.ranking_scores(scores[:1], np.zeros(4, bool))
    assert ap[0] == 0 and rr[0] == 0


def test_steering_scores_by_hand():
    images = np.eye(4)
    relevant = np.array([False, False, True, False])
    t_c = steering.concept_direction(np.array([[0, 0, 1.0, 0], [0, 0, 3.0, 0], [1.0, 0, 0, 0]]), np.array([True, True, False]))
    assert t_c == pytest.approx([0, 0, 1, 0])
    sources = np.array([0, 1])
    # a strong push towards e2: x' ~ e2, cosine to t_c rises from 0 to ~1, the concept image ranks first
    out = steering.steering_scores(images[sources] + 100 * images[2], images[sources], images, sources, relevant, t_c)
    assert out["delta_cos"] == pytest.approx(1.0, abs=1e-3) and (out["map"], out["mrr"]) == pytest.approx((1.0, 1.0))
    assert out["preserve"] == pytest.approx(0.01, abs=1e-3)
    # x' = (e0 + e2) / sqrt 2: delta_cos = 1/sqrt 2, preserve = 1/sqrt 2
    out = steering.steering_scores(images[[0]] + images[2], images[[0]], images, np.array([0]), relevant, t_c)
    assert (out["delta_cos"], out["preserve"]) == pytest.approx((2 ** -0.5, 2 ** -0.5))
    # steering towards a wrong direction: the source is left out, image 3 ranks first, then 1 and 2
    # tie at 0 and keep their order, so the concept image is third: AP = RR = 1/3
    out = steering.steering_scores(images[[0]] + 10 * images[3], images[[0]], images, np.array([0]), relevant, t_c)
    assert (out["map"], out["mrr"]) == pytest.approx((1 / 3, 1 / 3)) and out["delta_cos"] == pytest.approx(0.0)
