"""Modality-gap removal (ISO App. I, L), checked by hand."""

import numpy as np
import pytest

from vlsae.metrics import gap


def test_each_method_is_its_formula():
    x = np.array([[1.0, 1.0, 0.0]])
    raw = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])             # mu_I = e1, mu_T = e2
    recon = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])           # mu_I^ = 2 e1, mu_T^ = 2 e3
    full, bimodal, r = np.array([[2.0, 1.0, 0.0]]), np.array([[0.0, 3.0, 0.0]]), np.array([0.0, 0.0, 1.0])
    out = gap.interventions(0, x, full, bimodal, raw, recon, r)
    s = 1 / np.sqrt(2)
    expected = {"reconstruction": [2 / np.sqrt(5), 1 / np.sqrt(5), 0], "center": [0, 1, 0], "bimodal": [0, 1, 0],
                "random": [0, s, s],                                   # (0, 1, 0) + e3
                "shift": np.array([1, 1, 1]) / np.sqrt(3),             # (0, 1, 0) + (mu_I^ + mu_T^) / 2
                "unchanged": [s, s, 0], "baseline_a": [0, 1, 0], "baseline_b": [0, 1, 0],
                "baseline_c": [s, s, 0]}                               # x . (e2 - e1) = 0: nothing removed
    for name, value in expected.items():
        assert out[name][0] == pytest.approx(np.asarray(value)), name
    assert set(out) == set(gap.METHODS)


def test_text_side_uses_the_text_means():
    x = np.array([[0.0, 2.0, 1.0]])
    raw = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = gap.interventions(1, x, x, x, raw, raw, np.array([1.0, 0.0, 0.0]))
    assert out["baseline_a"][0] == pytest.approx(np.array([0, 1, 1]) / np.sqrt(2))      # x - e2
    assert out["baseline_b"][0] == pytest.approx([0, 0, 1])                           # e2 projected out


def test_population_metrics_on_identical_and_separated_sets():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((40, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    same, _ = gap.population_metrics(points, points, k=3)
    assert (same["gap_wasserstein"], same["separability"]) == pytest.approx((0.0, 0.5), abs=1e-6)
    null, _ = gap.population_metrics(rng.standard_normal((1000, 3)), rng.standard_normal((1000, 3)), k=3)
    assert null["ood"] == pytest.approx(0.5, abs=0.04)                 # captions from the images' distribution
    image = np.tile([1.0, 0.0, 0.0], (20, 1)) + 0.01 * rng.standard_normal((20, 3))
    text = np.tile([0.0, 1.0, 0.0], (20, 1)) + 0.01 * rng.standard_normal((20, 3))
    far, histogram = gap.population_metrics(image, text, k=3)
    assert far["separability"] == 1.0 and far["ood"] == 1.0
    assert far["gap_wasserstein"] == pytest.approx(np.sqrt(2), abs=0.05)
    # ISO Fig. 25's data: every caption lies about sqrt(2) from the images, every image within ~0.05 of its 3rd neighbour
    from vlsae.metrics.arithmetic import KNN_BINS

    counts = {p: [r["value"] for r in histogram if r["population"] == p] for p in ("query", "target")}
    assert sum(counts["query"]) == sum(counts["target"]) == 20 and len(counts["query"]) == len(KNN_BINS) - 1
    near_sqrt2 = (KNN_BINS[:-1] >= 1.3) & (KNN_BINS[:-1] < 1.5)
    assert np.sum(np.array(counts["query"])[near_sqrt2]) == 20 and counts["target"][0] == 20


def test_random_direction_is_a_seeded_unit_vector():
    r = gap.random_direction(5, seed=3)
    assert np.linalg.norm(r) == pytest.approx(1) and np.array_equal(r, gap.random_direction(5, seed=3))


def test_rmg_and_schrodis_ablation_by_hand():
    """RMG: identical pairs give m = 1e-3 (the floor); orthogonal images (and texts) give a = b = 1/2. Opposite pairs:
    m = 1, and a = b = 1/2 again, so RMG = 1 / 1.5. Schrodi's method zeroes the coordinates of largest mean difference."""
    e = np.eye(3)
    assert gap.relative_modality_gap(e[:2], e[:2]) == pytest.approx(1e-3 / (1e-3 + 0.5))
    assert gap.relative_modality_gap(e[:2], -e[:2]) == pytest.approx(1 / 1.5)
    means = np.array([[0.5, 0.1, 0.0], [0.0, 0.2, 0.1]])                 # |differences| 0.5, 0.1, 0.1
    assert gap.gap_dimensions(means, 1).tolist() == [0] and gap.gap_dimensions(means, 2).tolist() == [0, 1]
    x = np.array([[3.0, 4.0, 0.0]])
    out = gap.interventions(0, x, x, x, means, means, np.zeros(3), schrodi_dims=1)
    assert out["schrodi"][0].tolist() == pytest.approx([0.0, 1.0, 0.0])     # coordinate 0 dropped, renormalised
