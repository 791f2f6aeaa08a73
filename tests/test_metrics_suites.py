"""The intervention analyses over whole stores (gap removal, arithmetic, steering, MS) with an
identity SAE, whose reconstructions equal the inputs, so every value is known in advance."""

import numpy as np
import pytest
import torch

from test_metrics_real import LABELS, identity_sae

from vlsae.metrics import gap
from vlsae.metrics.real import EvalOptions, EvalSet, SAERun, TrainReference
from vlsae.metrics.suites import (ConceptSet, evaluate_arithmetic, evaluate_gap, evaluate_monosemanticity,
                                  evaluate_steering)
from vlsae.store import EmbeddingStore, write_manifest, write_shard

CPU = torch.device("cpu")


def _store(root, sides: dict, fmt: str = "coco") -> EmbeddingStore:
    n = len(next(iter(sides.values()))[0])
    write_manifest(root, 4, [write_shard(root, 0, np.arange(n), sides)], {"dataset": {"format": fmt}})
    return EmbeddingStore(root)


@pytest.fixture
def imagenet(tmp_path):
    emb = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]
    return _store(tmp_path, {"image": (emb, [f"img{i}" for i in range(8)]), "text": (emb, LABELS)}, "imagenet")


def _by(rows, key):
    return {(r[key], r["metric"]): r["value"] for r in rows}


def test_gap_removal_on_a_gapless_store(imagenet):
    """Image and text rows coincide: every method keeps them equal (DiM, W 0; sep 0.5) and
    zero-shot stays perfect where the classes stay apart. (OOD is not 0.5 here: each caption has its
    own image among the reference points, which an image, scored against the other images, has not.)"""
    opts, run = EvalOptions(sample_pairs=8, ood_k=2), SAERun(identity_sae(), CPU)
    ref = TrainReference.read(run, imagenet, opts, progress=False)
    assert ref.bimodal.all() and np.allclose(ref.raw, 0.125 * 2) and np.allclose(ref.recon, ref.raw)
    m = _by(evaluate_gap(run, EvalSet.read(imagenet, opts), ref, opts, seed=0, progress=False), "method")
    for method in gap.METHODS:
        # W: sqrt(2 - 2 cos) of float32 unit vectors amplifies rounding to ~1e-4
        assert m[method, "gap_dim"] == pytest.approx(0, abs=1e-6) and m[method, "gap_wasserstein"] == pytest.approx(0, abs=1e-3)
        assert m[method, "separability"] == 0.5
    for method in ("reconstruction", "bimodal", "unchanged", "center", "baseline_a", "baseline_b", "baseline_c"):
        assert m[method, "zero_shot@1"] == 1.0, method


def test_vector_arithmetic_on_planted_triplets(imagenet, tmp_path):
    """Source e_a, caption e_b, target (e_a + e_b) / sqrt 2: Q hits its target exactly. Trained on
    the gapless store, every latent is bimodal, so Q_SAE = Q."""
    a, b = np.array([0, 1, 0, 1, 0, 1]), np.array([2, 2, 3, 3, 2, 3])
    source, caption = np.eye(4)[a], np.eye(4)[b]
    target = (source + caption) / np.sqrt(2)
    ids = [str(i) for i in range(6)]
    store = _store(tmp_path / "fiq", {"image": (source, ids), "text": (caption, ids), "target": (target, ids)}, "fashioniq")
    opts, run = EvalOptions(ood_k=1, recall_batch=6), SAERun(identity_sae(), CPU)
    m = _by(evaluate_arithmetic(run, store, TrainReference.read(run, imagenet, opts, progress=False), opts), "method")
    # Q and Q_SAE (all latents bimodal) coincide with the targets: every query is at 0 from its nearest
    # target. A target's nearest *other* target is at 0 for the duplicated targets (rows 0 = 4, 3 = 5)
    # and at 1 for rows 1 and 2: a threshold just above 0 tells those 2 of the 12 rows apart.
    assert m["Q", "ood"] == pytest.approx(8 / 12) and m["Q_SAE", "ood"] == pytest.approx(8 / 12)
    # baselines sit at distance 2 sin(pi/8) = 0.77 from the nearest target; the targets' distances (0, 1, 1,
    # 0, 0, 0 above) fall below it but for rows 1 and 2: 10 of 12 rows on the right side of one threshold
    assert m["baseline_source", "ood"] == pytest.approx(10 / 12) and m["baseline_delta", "ood"] == pytest.approx(10 / 12)
    assert m["Q", "r@10"] == 1.0 and m["Q", "recall"] == 1.0


def test_steering_with_planted_concepts(tmp_path):
    """Four images, one basis direction each, captions equal to their image; concept 'cat' is
    image 2 and its captions. The cat latent is 2 and its atom e2; its code spread over the four test
    images is std(0, 0, 1, 0) = sqrt(3)/4. Steering a source adds alpha x that to latent 2 and decodes."""
    emb = np.eye(4)[[0, 1, 2, 3, 2]]
    store = _store(tmp_path, {"image": (emb, ["10", "11", "12", "13", "12"]), "text": (emb, ["0", "1", "2", "3", "4"])})
    captions = {"0": "a dog", "1": "a car", "2": "a cat", "3": "a tree", "4": "two cats"}
    concepts = ConceptSet(store, ["cat", "dog"], {"12": {"cat"}, "10": {"dog"}}, captions, EvalOptions())
    assert concepts.images.shape == (4, 4) and concepts.has.sum(0).tolist() == [1, 1]
    opts = EvalOptions(steering_alphas=(0.0, 100.0))
    by = {(r["concept"], r["alpha"], r["metric"]): r["value"] for r in
          evaluate_steering(SAERun(identity_sae(), CPU), None, concepts, opts, seed=0)}
    # alpha 0 leaves the sources as they are: no gain, the concept image ties with the others
    assert by["cat", 0.0, "delta_cos"] == 0.0 and by["cat", 0.0, "preserve"] == pytest.approx(1.0)
    # alpha 100: the sources point to e2 almost entirely (100 sqrt(3)/4 = 43 against 1)
    assert by["cat", 100.0, "map"] == 1.0 and by["cat", 100.0, "mrr"] == 1.0 and by["dog", 100.0, "map"] == 1.0
    shift = 100 * np.sqrt(3) / 4
    assert by["cat", 100.0, "delta_cos"] == pytest.approx(shift / np.hypot(1, shift), rel=1e-5)
    # aligned the wrong way round (image latent i <- text latent perm[i]), the cat latent becomes 3
    rows = evaluate_steering(SAERun(identity_sae(), CPU), np.array([0, 1, 3, 2]), concepts, opts, seed=0)
    assert {(r["concept"], r["alpha"], r["metric"]): r["value"] for r in rows}["cat", 100.0, "mrr"] < 1.0
    # the unit-atom reading: x + alpha d with d = e2
    rows = evaluate_steering(SAERun(identity_sae(), CPU), None, concepts, EvalOptions(steering="atom", steering_alphas=(1.0,)), seed=0)
    by = {(r["concept"], r["metric"]): r["value"] for r in rows}
    assert by["cat", "delta_cos"] == pytest.approx(2 ** -0.5) and by["cat", "preserve"] == pytest.approx(2 ** -0.5)
    with pytest.raises(ValueError, match="steering"):
        evaluate_steering(SAERun(identity_sae(), CPU), None, concepts, EvalOptions(steering="typo"), seed=0)


def test_monosemanticity_of_a_one_concept_per_latent_store(imagenet, tmp_path):
    """Each latent fires on the two identical rows of one class: MS = 1 for every latent; with an
    external encoder that maps the two rows of a class to orthogonal vectors, MS = 0."""
    opts, run = EvalOptions(batch_size=3), SAERun(identity_sae(), CPU)
    rows = evaluate_monosemanticity(run, imagenet, imagenet, opts)
    assert [r["value"] for r in rows] == pytest.approx([1.0] * 8)
    spread = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]]
    other = _store(tmp_path / "external", {"image": (spread, [f"img{i}" for i in range(8)]), "text": (spread, LABELS)}, "imagenet")
    assert [r["value"] for r in evaluate_monosemanticity(run, imagenet, other, opts)] == pytest.approx([0.0] * 8)


def test_monosemanticity_refuses_a_store_of_another_dataset(imagenet, tmp_path):
    emb = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]
    other = _store(tmp_path / "other", {"image": (emb, [f"x{i}" for i in range(8)]), "text": (emb, LABELS)}, "imagenet")
    with pytest.raises(ValueError, match="same image rows"):
        evaluate_monosemanticity(SAERun(identity_sae(), CPU), imagenet, other, EvalOptions())
