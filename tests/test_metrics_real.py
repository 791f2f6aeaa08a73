"""The store-level evaluators on a hand-built ImageNet-format store and an identity SAE."""

import numpy as np
import pytest
import torch

from vlsae.metrics.real import EvalOptions, EvalSet, SAERun, TrainReference, evaluate_encoder, evaluate_sae
from vlsae.sae import PairedSAE, SAESpec
from vlsae.store import EmbeddingStore, write_manifest, write_shard

LABELS = np.array(["c0", "c0", "c1", "c1", "c2", "c2", "c3", "c3"])


@pytest.fixture
def imagenet_store(tmp_path):
    """Each image equals its class embedding (a basis vector), which is also its text row."""
    emb = np.eye(4)[[0, 0, 1, 1, 2, 2, 3, 3]]
    entry = write_shard(tmp_path, 0, np.arange(8), {"image": (emb, [f"img{i}" for i in range(8)]), "text": (emb, LABELS)})
    write_manifest(tmp_path, 4, [entry], {"dataset": {"format": "imagenet"}})
    return EmbeddingStore(tmp_path)


def _values(rows, method=""):
    out = {}
    for row in rows:
        if row.get("method", "") == method:
            out.setdefault(row["metric"], []).append(row["value"])
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_encoder_metrics_on_a_perfect_encoder(imagenet_store):
    opts = EvalOptions(sample_pairs=8)
    m = _values(evaluate_encoder(EvalSet.read(imagenet_store, opts), opts, progress=False))
    assert m["zero_shot@1"] == 1.0 and m["linear_probe"] == 1.0      # probe: even rows train, odd rows test
    assert m["recall@1"] == 1.0                                      # tied duplicates count as hits
    assert m["gap_dim"] == 0.0 and m["gap_wasserstein"] == 0.0 and m["cosine_IT (aligned)"] == 1.0


def identity_sae(d: int = 4) -> PairedSAE:
    """A shared TopK SAE with k = m = d whose encoder and decoder are the identity: codes equal inputs."""
    model = PairedSAE(SAESpec(architecture="topk", latents=d, params={"k": d}), d=d)
    with torch.no_grad():
        for p in (model.side("image").W_enc, model.side("image").W_dec):
            p.copy_(torch.eye(d))
    return model


def test_sae_metrics_of_an_identity_dictionary(imagenet_store):
    model = identity_sae()
    opts = EvalOptions(sample_pairs=8)
    m = _values(evaluate_sae(model, EvalSet.read(imagenet_store, opts), None, opts, torch.device("cpu"), progress=False))
    # codes equal the embeddings: exact reconstruction, one unit latent per sample
    assert (m["mse"], m["r2"], m["l0"], m["l1"]) == pytest.approx((0, 1, 1, 1))
    assert m["zero_shot@1"] == 1.0
    # orthonormal atoms; Z^T Z is diagonal: 4 of 16 entries non-zero
    assert m["coherence"] == 0.0 and m["stable_rank_d"] == pytest.approx(4) and m["connectivity"] == 0.75
    # equal energy in both modalities: every latent is bimodal, no atom separates the modalities
    assert m["bimodal_share"] == 1.0 and m["p_acc"] == 1.0 and m["delta_r@1"] == 0.0
    # insertion of the one latent recovers everything: curve 0 -> 1, area 1/2; deletion 1 -> 0, area 1/2
    assert m["c_insertion"] == pytest.approx(0.5) and m["c_deletion"] == pytest.approx(0.5)


def test_reconstructions_are_z_d_without_the_decoder_bias(imagenet_store):
    """ISO App. E.2.2, H, I: A^ := Z D and A~ := (Z * delta) D. A large b_dec (compensated in b_enc so that the
    codes still equal the inputs) changes the SAE's own reconstruction, never these."""
    model = identity_sae()
    bias = torch.full((4,), 10.0)
    with torch.no_grad():
        model.side("image").b_dec.copy_(bias)
        model.side("image").b_enc.copy_(bias)   # pre = (x - b) + b = x: codes unchanged
    run = SAERun(model, torch.device("cpu"))
    x = np.eye(4, dtype=np.float32)[[0, 1, 3]]
    full, none = run.reconstruct("image", x, np.zeros(4))
    assert np.array_equal(full, x) and not none.any()
    assert np.allclose(run("image", x)[0], x + 10.0)   # the SAE's own reconstruction keeps its bias
    ref = TrainReference.read(run, imagenet_store, EvalOptions(), progress=False)
    assert ref.recon == pytest.approx(ref.raw)
    opts = EvalOptions(sample_pairs=8)
    m = _values(evaluate_sae(model, EvalSet.read(imagenet_store, opts), None, opts, torch.device("cpu"), progress=False))
    assert m["delta_r@1"] == 0.0 and m["mse"] == pytest.approx(4 * 100.0)
