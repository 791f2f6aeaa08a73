import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlsae.sae import PairedSAE, SAESpec, TopKSAE, load_paired_sae
from vlsae.sae.train import TrainConfig, train_paired_sae
from vlsae.store import EmbeddingStore, StoreWriter


def test_topk_code_has_exactly_k_and_sparse_decode_matches_dense():
    torch.manual_seed(0)
    sae = TopKSAE(d=16, m=64, k=5)
    with torch.no_grad():
        sae.b_enc.fill_(10.0)  # every pre-activation positive -> exactly k non-zeros
    x = torch.randn(32, 16)
    code = sae.encode(x)
    assert code.indices.shape == (32, 5)
    assert torch.all((code.dense() != 0).sum(1) == 5)
    pre = sae.pre_activation(x)
    np.testing.assert_allclose(code.dense().sum(1).detach(), pre.topk(5).values.sum(1).detach(), rtol=1e-5)
    dense = code.dense() @ sae.W_dec + sae.b_dec
    torch.testing.assert_close(sae.decode(code), dense)


def test_sparse_decode_gradients_match_dense():
    torch.manual_seed(1)
    sae = TopKSAE(d=8, m=32, k=4)
    x = torch.randn(10, 8)
    sae(x)[0].pow(2).sum().backward()
    sparse_grads = [p.grad.clone() for p in sae.parameters()]
    sae.zero_grad()
    code = sae.encode(x)
    (code.dense() @ sae.W_dec + sae.b_dec).pow(2).sum().backward()
    for g_sparse, p in zip(sparse_grads, sae.parameters()):
        torch.testing.assert_close(g_sparse, p.grad)


def test_k_out_of_range():
    with pytest.raises(ValueError, match="k must lie in"):
        TopKSAE(4, 8, 9)


def test_specific_arrangement_splits_latents_and_slug():
    spec = SAESpec(latents=64, arrangement="specific", params={"k": 4})
    model = PairedSAE(spec, 8)
    assert model.side("image") is not model.side("text")
    assert model.side("image").m == model.side("text").m == 32
    assert spec.slug == "topk-k4-m64-specific"
    shared = PairedSAE(SAESpec(latents=64, params={"k": 4}), 8)
    assert shared.side("image") is shared.side("text") and shared.side("image").m == 64
    # matched parameter count
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in shared.parameters()) + 8
    with pytest.raises(ValueError, match="unknown SAE spec key"):
        SAESpec.from_dict({"latent": 4})


def _store(root, n=2000, d=16, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    with StoreWriter(root, d, shard_pairs=700) as w:
        w.add(np.arange(n), x, np.roll(x, 1, axis=1))
    return EmbeddingStore(root)


def test_training_lowers_loss_keeps_unit_atoms_and_saves(tmp_path):
    store = _store(tmp_path / "data")
    spec = SAESpec(latents=64, arrangement="specific", params={"k": 4})
    cfg = TrainConfig(batch_size=100, epochs=3, log_every=5, lr=3e-3, schedule="cosine", warmup_fraction=0.1, grad_clip=1.0)
    model = train_paired_sae(spec, store, cfg, tmp_path / "run", seed=0, progress=False)
    for sae in model.components():
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))
    import pandas as pd

    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert list(log["step"]) == list(range(5, 61, 5))
    assert log["loss"].iloc[-1] < 0.8 * log["loss"].iloc[0]
    assert np.allclose(log["l0_image"], 4) and {"dead_image", "dead_text"} <= set(log.columns)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    loaded = load_paired_sae(tmp_path / "run")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_lr_schedule():
    cfg = TrainConfig(warmup_fraction=0.1, schedule="cosine")
    assert cfg.lr_factor(0, 100) == pytest.approx(0.1)
    assert cfg.lr_factor(9, 100) == pytest.approx(1.0)
    assert cfg.lr_factor(10, 100) == pytest.approx(1.0)
    assert cfg.lr_factor(55, 100) == pytest.approx(0.5)
    assert TrainConfig().lr_factor(70, 100) == 1.0


@pytest.mark.parametrize("spec, cfg", [
    (dict(latents=512, arrangement="shared", params={"k": 8}), dict(batch_size=64, epochs=15)),
    # random shared masks (their generator state is checkpointed) and AuxK clocks
    (dict(architecture="relu", latents=512, arrangement="specific", params={"l1": 0.01},
          aux={"group_sparse": {"weight": 0.05, "mask_p": 0.2}}),
     dict(batch_size=64, epochs=15, auxk_coeff=1 / 32, auxk_k=16, dead_after=640)),
], ids=["topk", "relu-group-sparse-auxk"])
def test_killed_run_resumes_to_identical_weights(tmp_path, spec, cfg):
    store = _store(tmp_path / "data", n=4000, d=32)
    cfg = dict(cfg, checkpoint_every=20, log_every=10)
    reference = train_paired_sae(SAESpec(**spec), store, TrainConfig(**cfg), tmp_path / "ref", seed=7, progress=False)

    run = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        from vlsae.sae import SAESpec
        from vlsae.sae.train import TrainConfig, train_paired_sae
        from vlsae.store import EmbeddingStore
        train_paired_sae(SAESpec(**{spec!r}), EmbeddingStore({str(store.root)!r}), TrainConfig(**{cfg!r}),
                         {str(run)!r}, seed=7, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert (run / "checkpoint.pt").exists() and not (run / "model.safetensors").exists(), "run finished before the kill"
    resumed = train_paired_sae(SAESpec(**spec), store, TrainConfig(**cfg), run, seed=7, progress=False)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)
    assert load_file(str(run / "model.safetensors")).keys() == reference.state_dict().keys()
