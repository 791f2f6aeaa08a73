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
    same = gap.population_metrics(points, points, k=3)
    assert (same["gap_wasserstein"], same["separability"]) == pytest.approx((0.0, 0.5), abs=1e-6)
    null = gap.population_metrics(rng.standard_normal((1000, 3)), rng.standard_normal((1000, 3)), k=3)
    assert null["ood"] == pytest.approx(0.5, abs=0.04)                 # captions from the images' distribution
    image = np.tile([1.0, 0.0, 0.0], (20, 1)) + 0.01 * rng.standard_normal((20, 3))
    text = np.tile([0.0, 1.0, 0.0], (20, 1)) + 0.01 * rng.standard_normal((20, 3))
    far = gap.population_metrics(image, text, k=3)
    assert far["separability"] == 1.0 and far["ood"] == 1.0
    assert far["gap_wasserstein"] == pytest.approx(np.sqrt(2), abs=0.05)


def test_random_direction_is_a_seeded_unit_vector():
    r = gap.random_direction(5, seed=3)
    assert np.linalg.norm(r) == pytest.approx(1) and np.array_equal(r, gap.random_direction(5, seed=3))
