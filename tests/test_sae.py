import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlsae.sae import PairedSAE, SAESpec, TopKSAE, load_paired_sae
from vlsae.sae.base import Code
from vlsae.sae.relu import ReLUSAE
from vlsae.sae.train import (TrainConfig, _Group, _Member, _param_groups, reconstruction_loss, train_paired_sae,
                             train_paired_saes)
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


def test_linear_encoder_init_is_pytorchs_default():
    """``encoder_init: linear`` (the HET authors' code): W_enc ~ U(-1/sqrt(d), 1/sqrt(d)), b_enc = 0, the
    decoder its unit-row copy; transpose (the default) ties W_enc to W_dec."""
    torch.manual_seed(0)
    d = 64
    spec = SAESpec(latents=4096, params={"k": 4}, encoder_init="linear")
    sae = PairedSAE(spec, d).side("image")
    w = sae.W_enc.detach()
    assert w.abs().max() <= d ** -0.5 and w.abs().max() > 0.99 * d ** -0.5
    assert w.var().item() == pytest.approx(1 / (3 * d), rel=0.05)       # variance of U(-b, b) is b^2 / 3
    torch.testing.assert_close(sae.W_dec.detach(), w / w.norm(dim=1, keepdim=True))
    assert (sae.b_enc == 0).all() and spec.slug == "topk-k4-m4096-shared-init_linear"
    default = PairedSAE(SAESpec(latents=64, params={"k": 4}), d).side("image")
    torch.testing.assert_close(default.W_enc, default.W_dec)
    with pytest.raises(ValueError, match="has no encoder"):
        SAESpec(architecture="mp", latents=64, params={"k": 4}, encoder_init="linear")


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


def test_tensorboard_events_hold_the_log_csv_terms(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")  # make test installs it
    import pandas as pd

    store = _store(tmp_path / "data", n=500)
    cfg = TrainConfig(batch_size=100, epochs=2, log_every=2)
    train_paired_saes([(SAESpec(latents=32, params={"k": 2}), tmp_path / "run")], store, cfg, progress=False, tensorboard=True)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    events = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(log.columns) - {"step"}
    for term in ("loss", "rec_image", "l0_text", "lr"):
        logged = events.Scalars(term)
        assert [e.step for e in logged] == list(log["step"])
        np.testing.assert_allclose([e.value for e in logged], log[term], rtol=1e-6)


def test_reconstruction_terms_closed_form():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    x_hat = torch.tensor([[1.0, 1.0], [3.0, 1.0]])             # squared error 1 per row
    assert reconstruction_loss(x, x_hat, "mse") == pytest.approx(1.0)
    assert reconstruction_loss(x, x_hat, "fvu") == pytest.approx(2.0 / 2.0)        # batch variance: (1 + 1) around mean 2
    assert reconstruction_loss(x, x_hat, "element_mean") == pytest.approx(1.0 / 4)  # 2 rows x 2 dims, half a [x; y] batch
    with pytest.raises(ValueError, match="reconstruction"):
        reconstruction_loss(x, x_hat, "l1")
    with pytest.raises(ValueError, match="training.reconstruction"):
        TrainConfig(reconstruction="sse")


def test_onecycle_is_pytorchs_schedule():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = TrainConfig(lr=1e-3, schedule="onecycle").scheduler(opt, total=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3 / 25) and max(lrs) == pytest.approx(1e-3, rel=1e-3)
    assert int(np.argmax(lrs)) == 29 and lrs[-1] < 1e-3 / 25 / 100


def _run(spec, out, d, cfg, seed=0, total=10, store_id=""):
    """One model's training group, as train_paired_saes builds it."""
    return _Group([_Member(spec, out, d, cfg, seed, torch.device("cpu"), store_id)], cfg, total)


def test_gradient_clip_scope_and_bias_decay(tmp_path):
    store = _store(tmp_path / "data", n=200, d=8)
    batch = next(store.iter_batches(100))
    inputs = {"image": torch.from_numpy(batch.image) * 100, "text": torch.from_numpy(batch.text) * 100}
    spec = SAESpec(latents=32, arrangement="specific", params={"k": 4})
    norms = {}
    for scope in ("sae", "model"):
        cfg = TrainConfig(lr=1e-12, grad_clip=1.0, grad_clip_scope=scope, weight_decay=0.1, weight_decay_biases=False)
        run = _run(spec, tmp_path / scope, 8, cfg)
        run.train_step(inputs, 0, torch.autocast("cpu", enabled=False))
        per_sae = [torch.cat([p.grad.flatten() for p in sae.parameters()]).norm() for sae in run.model.components()]
        norms[scope] = torch.stack(per_sae).norm()
        if scope == "sae":
            assert torch.allclose(torch.stack(per_sae), torch.ones(2), atol=1e-4)
        groups = run.opt.param_groups
        assert [g["weight_decay"] for g in groups] == [0.1, 0.0] and len(groups[1]["params"]) == 4   # b_enc, b_dec x 2
    assert norms["model"] == pytest.approx(1.0, abs=1e-4) and norms["sae"] == pytest.approx(2 ** 0.5, abs=1e-4)
    assert len(_param_groups(PairedSAE(spec, 8), TrainConfig())) == 1


def test_target_l0_controller_closed_form_and_reaches_target(tmp_path):
    sae = ReLUSAE(d=4, m=8, l1=0.01, target_l0=2.0, l0_rate=0.5)
    codes = Code(torch.tensor([[1.0, 1, 1, 1, 0, 0, 0, 0]] * 3), None, 8)      # L0 = 4 = 2 x target
    sae.after_step_([codes])
    assert float(sae.penalty_weight) == pytest.approx(0.01 * 2 ** 0.5)
    assert "penalty_weight" in sae.state_dict()
    ReLUSAE(d=4, m=8, l1=0.01).after_step_([codes])                       # no target: nothing to adapt
    # a planted 32 x 128 dictionary, 4 atoms per sample: the weight climbs from 1e-3 until L0 is 4
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(128, 32))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    support = np.argsort(rng.random((8000, 128)), axis=1)[:, :4]
    x = np.einsum("nk,nkd->nd", rng.uniform(0.5, 1.5, size=(8000, 4)), atoms[support]).astype(np.float32)
    with StoreWriter(tmp_path / "data", 32) as w:
        w.add(np.arange(8000), x, x)
    spec = SAESpec(architecture="relu", latents=128, params={"l1": 1e-3, "target_l0": 4.0, "l0_rate": 0.02})
    model = train_paired_sae(spec, EmbeddingStore(tmp_path / "data"), TrainConfig(batch_size=100, epochs=5, lr=3e-3,
                             log_every=40), tmp_path / "run", progress=False)
    import pandas as pd

    assert pd.read_csv(tmp_path / "run" / "log.csv")["l0_image"].iloc[-3:].mean() == pytest.approx(4.0, rel=0.2)
    assert float(model.side("image").penalty_weight) > 0.1                  # raised from 1e-3 to get there


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
    # the target-L0 controller's weight (a buffer) and the one-cycle schedule's state
    (dict(architecture="jumprelu", latents=256, arrangement="specific", params={"l0": 1e-3, "target_l0": 8.0}),
     dict(batch_size=64, epochs=15, schedule="onecycle", grad_clip=1.0, grad_clip_scope="model",
          weight_decay=1e-3, weight_decay_biases=False)),
], ids=["topk", "relu-group-sparse-auxk", "jumprelu-target-l0-onecycle"])
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
    # the training log too: the open logging window travels in the checkpoint
    assert (run / "log.csv").read_bytes() == (tmp_path / "ref" / "log.csv").read_bytes()


def test_a_stale_checkpoint_is_never_resumed(tmp_path, caplog):
    """A checkpoint made for another training config (or SAE, seed, store) is ignored with a warning."""
    store = _store(tmp_path / "data", n=1000, d=16)
    spec = SAESpec(latents=64, params={"k": 4})
    old = TrainConfig(batch_size=100, epochs=3, lr=1e-3, checkpoint_every=5)
    run = _run(spec, tmp_path / "run", 16, old, total=30, store_id="abc")
    batch = next(store.iter_batches(100))
    for _ in range(5):
        run.train_step({"image": torch.from_numpy(batch.image), "text": torch.from_numpy(batch.text)}, 0,
                       torch.autocast("cpu", enabled=False))
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    new = TrainConfig(batch_size=100, epochs=3, lr=3e-3, checkpoint_every=5)
    with caplog.at_level("WARNING"):
        fresh = _run(spec, tmp_path / "run", 16, new, total=30, store_id="abc")
    assert fresh.step == 0 and "made for a different training" in caplog.text
    same = _run(spec, tmp_path / "run", 16, old, total=30, store_id="abc")
    assert same.step == 5                                                       # the matching run resumes
    other_store = _run(spec, tmp_path / "run", 16, old, total=30, store_id="xyz")
    assert other_store.step == 0 and "different store" in caplog.text


class _Planted:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_planted_pickle_checkpoint_is_refused_unrun(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": _Planted(str(tmp_path / "pwned"))}, run / "checkpoint.pt")
    with pytest.raises(ValueError, match="not a vlsae checkpoint"):
        _Member(SAESpec(latents=64, params={"k": 4}), run, 16, TrainConfig(), 0, torch.device("cpu"))
    assert not (tmp_path / "pwned").exists()


def test_decoder_init_xavier_is_overcompletes_dictionary_start():
    """``decoder_init: xavier`` (the ISO authors' toy code): Xavier-uniform rows, U(-a, a) with
    a = sqrt(6 / (m + d)), made unit-norm; an encoder starting as the transpose follows; the slug says so,
    and the HET ``linear`` encoder start, which overwrites the decoder, is refused with it."""
    import math

    from vlsae.sae import SAESpec
    from vlsae.sae.paired import PairedSAE

    torch.manual_seed(0)
    torch.randn(4096, 64)  # the Gaussian start every SAE draws first
    raw = torch.empty(4096, 64)
    torch.nn.init.xavier_uniform_(raw)
    assert raw.abs().max() <= math.sqrt(6 / (4096 + 64))
    spec = SAESpec(architecture="topk", latents=4096, params={"k": 4}, decoder_init="xavier")
    torch.manual_seed(0)
    sae = PairedSAE(spec, 64).side("image")
    torch.testing.assert_close(sae.W_dec.detach(), raw / raw.norm(dim=1, keepdim=True))
    torch.testing.assert_close(sae.W_enc.detach(), sae.W_dec.detach())
    assert spec.slug.endswith("-dict_xavier")
    with pytest.raises(ValueError, match="decoder_init"):
        SAESpec(architecture="topk", latents=64, params={"k": 4}, decoder_init="xavier", encoder_init="linear")
