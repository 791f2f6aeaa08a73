"""Encoder metrics on hand-made embeddings with values computed by hand."""

import numpy as np
import pytest

from vlsae.metrics.encoder import (cosine_samples, difference_in_means, linear_probe_accuracy, recall_at_k, wasserstein,
                                   zero_shot_accuracy)


def test_recall_on_a_known_similarity_matrix():
    # image i sits closest to text perm[i]; with identity texts the similarity is I itself
    image = np.eye(4)[[0, 2, 1, 3]]  # rows 1 and 2 swapped
    text = np.eye(4)
    # image->text: rows 0 and 3 hit at k=1; text->image: columns 0 and 3 hit -> 4 of 8
    assert recall_at_k(image, text, 1) == 0.5
    sims = np.array([[0.9, 0.8, 0.1], [0.95, 0.5, 0.2], [0.0, 0.1, 0.3]])
    u, s, vt = np.linalg.svd(sims)  # factor C = I T^T exactly
    image, text = u * s, vt.T
    # i2t ranks of the diagonal (rows): 1, 2, 1; t2i (columns): 2 (0.95 > 0.9), 2 (0.8 > 0.5), 1
    assert recall_at_k(image, text, 1) == pytest.approx(3 / 6)
    assert recall_at_k(image, text, 2) == 1.0


def test_recall_is_computed_in_batches_of_b():
    e0, e1, u = np.eye(3)[0], np.eye(3)[1], np.array([0.8, 0.6, 0.0])
    image, text = np.stack([e0, e1, e0, e1]), np.stack([u, e1, e0, e1])
    # in batches of 2, every pair is its batch's best match; in one batch of 4, image 0 prefers text 2
    # (1 > 0.8), text 1 ties with image 3 (a tie counts as a hit)
    assert recall_at_k(image, text, 1, batch=2) == 1.0
    assert recall_at_k(image, text, 1, batch=4) == pytest.approx(7 / 8)


def test_zero_shot_top1_and_top2():
    classes = np.eye(3)
    image = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8], [0.8, 0, 0.6]])
    labels = np.array(["a", "a", "c", "b"])
    # argmax classes: a, b, c, a -> hits: yes, no, yes, no; top-2 adds row 1 (a second) but not row 3 (b last)
    assert zero_shot_accuracy(image, labels, classes, np.array(["a", "b", "c"])) == 0.5
    assert zero_shot_accuracy(image, labels, classes, np.array(["a", "b", "c"]), k=2) == 0.75


def test_modality_gap_in_closed_form():
    image = np.array([[1.0, 0], [0, 1]])
    text = -image
    assert difference_in_means(image.mean(0), text.mean(0)) == pytest.approx(np.sqrt(2))
    assert wasserstein(image, text) == pytest.approx(np.sqrt(2))  # both assignments cost sqrt 2 per point
    assert wasserstein(image, image[::-1]) == 0
    shifted = image + np.array([3.0, 4.0])
    assert wasserstein(image, shifted) == pytest.approx(5.0) and difference_in_means(image.mean(0), shifted.mean(0)) == pytest.approx(5.0)


def test_linear_probe_separates_clusters_and_misses_unseen_labels():
    rng = np.random.default_rng(0)
    centres = 5 * np.eye(3)
    labels = np.repeat(np.array(["a", "b", "c"]), 20)
    x = centres[np.repeat(np.arange(3), 20)] + rng.normal(scale=0.3, size=(60, 3))
    assert linear_probe_accuracy(x[::2], labels[::2], x[1::2], labels[1::2]) == 1.0
    assert linear_probe_accuracy(x[::2], labels[::2], x[1::2], np.full(30, "z")) == 0.0


def test_cosine_samples_of_matching_pairs():
    image = np.eye(4)
    out = cosine_samples(image, image, seed=1)
    assert out["IT (aligned)"] == pytest.approx(np.ones(4))
    assert (out["II"] == 0).all() and (out["TT"] == 0).all()         # distinct basis vectors are orthogonal
    assert set(out) == {"II", "TT", "IT", "IT (aligned)", "Random"}
