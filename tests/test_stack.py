"""Stacks: SAEs of one architecture and shape that share a pass over the data train as one module, and each
member ends exactly where it would alone (bit for bit), also after a kill and resume."""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from vlsae.sae import SAESpec, build_sae
from vlsae.sae.base import stack_saes, unstack_into
from vlsae.sae.train import TrainConfig, _groups, _Member, train_paired_saes
from vlsae.store import EmbeddingStore, StoreWriter

PARAMS = {  # every stackable architecture (BatchTopK trains alone: test_batchtopk_members_train_alone)
    "topk": {"k": 3},
    "mp": {"k": 3},
    "relu": {"l1": 0.01, "target_l0": 4.0, "l0_rate": 0.05},
    "jumprelu": {"l0": 1e-3, "target_l0": 4.0},
}
# members that differ in their auxiliary losses (weights, options, none) but not in shape; the two with masked
# pre-activations (which take the dense encoder path) form a stack of their own
AUX = [{}, {"iso_energy": {"weight": 0.3, "mask_top1": True}}, {"iso_energy": {"weight": 0.1}},
       {"group_sparse": {"weight": 0.05}}, {"group_sparse": {"weight": 0.02, "mask_p": 0.2}},
       {"group_sparse": {"weight": 0.05, "mask_p": 0.3}, "iso_energy": {"weight": 0.1}}]


def _store(root, n=450, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    with StoreWriter(root, d, shard_pairs=200) as w:
        w.add(np.arange(n), x, x + 0.5 * rng.normal(size=(n, d)).astype(np.float32))
    return EmbeddingStore(root)


def _specs(arch, arrangement):
    aux = [a for a in AUX if not (arch == "mp" and "mask_p" in a.get("group_sparse", {}))]  # MP has no pre-activations
    return [SAESpec(architecture=arch, latents=24, arrangement=arrangement, params=PARAMS[arch], aux=a) for a in aux]


def _assert_same_runs(specs, folders, stacked, alone):
    for spec, folder, a, b in zip(specs, folders, stacked, alone):
        for key, value in b.state_dict().items():
            torch.testing.assert_close(a.state_dict()[key], value, rtol=0, atol=0, msg=f"{spec.slug}: {key}")
        assert (folder[0] / "log.csv").read_bytes() == (folder[1] / "log.csv").read_bytes(), spec.slug


@pytest.mark.parametrize("arrangement", ["shared", "specific"])
@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_a_stack_trains_each_member_exactly_as_alone(arch, arrangement, tmp_path):
    """Members with different auxiliary losses (and masks from their own generators), one schedule, per-member
    gradient clipping, weight decay and target-L0 controllers: the same weights and the same log, bit for bit."""
    store = _store(tmp_path / "data")
    cfg = TrainConfig(lr=3e-3, batch_size=100, drop_last=False, epochs=2, grad_clip=0.5, weight_decay=1e-3,
                      schedule="onecycle", decoder_grad="full" if arch == "mp" else "tangent", log_every=2,
                      grad_clip_scope="model" if arrangement == "specific" else "sae")
    specs = _specs(arch, arrangement)
    together = [(s, tmp_path / f"stack{i}") for i, s in enumerate(specs)]
    stacked = train_paired_saes(together, store, cfg, seed=5, progress=False, stack=True)
    alone = [train_paired_saes([(s, tmp_path / f"alone{i}")], store, cfg, seed=5, progress=False)[0]
             for i, s in enumerate(specs)]
    _assert_same_runs(specs, [(tmp_path / f"stack{i}", tmp_path / f"alone{i}") for i in range(len(specs))], stacked, alone)
    assert not torch.equal(stacked[0].side("image").W_dec, stacked[1].side("image").W_dec)  # they did differ


def test_stack_and_unstack_round_trip_and_refuse_mixed_shapes():
    torch.manual_seed(0)
    saes = [build_sae("jumprelu", 8, 16, l0=0.1) for _ in range(3)]
    stack = stack_saes(saes)
    assert stack.stacked and stack.stack == 3 and stack.W_dec.shape == (3, 16, 8) and stack.penalty_weight.shape == (3,)
    x = torch.randn(5, 8)
    x_hat, code = stack(x)
    assert x_hat.shape == (3, 5, 8) and code.values.shape == (15, 16) and code.l0().shape == (3,)
    for s, sae in enumerate(saes):  # member s of the stack encodes and decodes as SAE s
        torch.testing.assert_close(x_hat[s], sae(x)[0], rtol=0, atol=0)
    with torch.no_grad():
        stack.W_dec.mul_(2.0)
    unstack_into(stack, saes)
    torch.testing.assert_close(saes[2].W_dec, stack.W_dec[2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="one architecture and shape"):
        stack_saes([build_sae("topk", 8, 16, k=2), build_sae("topk", 8, 32, k=2)])
    with pytest.raises(ValueError, match="one architecture and shape"):
        stack_saes([build_sae("topk", 8, 16, k=2), build_sae("mp", 8, 16, k=2)])


def test_members_of_other_shapes_train_in_their_own_stacks(tmp_path):
    store = _store(tmp_path / "data")
    cfg = TrainConfig(batch_size=100, epochs=1, log_every=2)
    specs = [SAESpec(latents=24, params={"k": 3}), SAESpec(latents=32, params={"k": 3}),
             SAESpec(latents=24, params={"k": 3}, aux={"iso_energy": {"weight": 0.1}}), SAESpec(latents=24, params={"k": 2})]
    members = [_Member(s, tmp_path / f"g{i}", 12, cfg, 0, torch.device("cpu")) for i, s in enumerate(specs)]
    assert [[members.index(m) for m in g.members] for g in _groups(members, cfg, 5, stack=True)] == [[0, 2], [1], [3]]
    stacked = train_paired_saes([(s, tmp_path / f"s{i}") for i, s in enumerate(specs)], store, cfg, progress=False)
    alone = [train_paired_saes([(s, tmp_path / f"a{i}")], store, cfg, progress=False)[0] for i, s in enumerate(specs)]
    _assert_same_runs(specs, [(tmp_path / f"s{i}", tmp_path / f"a{i}") for i in range(4)], stacked, alone)


def test_batchtopk_members_train_alone(tmp_path):
    """A BatchTopK code is as wide as its fullest row; stacked, each member would be padded to the widest, and sums over
    the padding zeros round differently. So BatchTopK members never stack, and end where they would alone."""
    store = _store(tmp_path / "data")
    cfg = TrainConfig(batch_size=100, epochs=1, log_every=2, grad_clip=0.5)
    specs = [SAESpec(architecture="batchtopk", latents=24, params={"k": 3}, aux=a) for a in AUX[:4]]
    members = [_Member(s, tmp_path / f"g{i}", 12, cfg, 0, torch.device("cpu")) for i, s in enumerate(specs)]
    assert [len(g.members) for g in _groups(members, cfg, 5, stack=True)] == [1, 1, 1, 1]
    stacked = train_paired_saes([(s, tmp_path / f"s{i}") for i, s in enumerate(specs)], store, cfg, progress=False)
    alone = [train_paired_saes([(s, tmp_path / f"a{i}")], store, cfg, progress=False)[0] for i, s in enumerate(specs)]
    _assert_same_runs(specs, [(tmp_path / f"s{i}", tmp_path / f"a{i}") for i in range(4)], stacked, alone)


def test_a_killed_stack_resumes_to_identical_weights(tmp_path):
    """Each member checkpoints in its own folder, in a lone run's format; the resumed stack ends as the uninterrupted one."""
    store = _store(tmp_path / "data", n=4000, d=32)
    cfg = dict(batch_size=64, epochs=12, checkpoint_every=20, log_every=10, grad_clip=1.0)
    specs = [dict(latents=256, params={"k": 8}), dict(latents=256, params={"k": 8}, aux={"iso_energy": {"weight": 0.1}}),
             dict(latents=256, params={"k": 8}, aux={"group_sparse": {"weight": 0.05, "mask_p": 0.2}})]
    runs = lambda root: [(SAESpec(**s), root / f"m{i}") for i, s in enumerate(specs)]  # noqa: E731
    reference = train_paired_saes(runs(tmp_path / "ref"), store, TrainConfig(**cfg), seed=7, progress=False)

    killed = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        from pathlib import Path
        from vlsae.sae import SAESpec
        from vlsae.sae.train import TrainConfig, _groups, _Member, train_paired_saes
        from vlsae.store import EmbeddingStore
        runs = [(SAESpec(**s), Path({str(killed)!r}) / f"m{{i}}") for i, s in enumerate({specs!r})]
        train_paired_saes(runs, EmbeddingStore({str(store.root)!r}), TrainConfig(**{cfg!r}), seed=7, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while not (killed / "m2" / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert all((killed / f"m{i}" / "checkpoint.pt").exists() for i in range(3)), "no checkpoint before the kill"
    assert not (killed / "m0" / "model.safetensors").exists(), "run finished before the kill"
    resumed = train_paired_saes(runs(killed), store, TrainConfig(**cfg), seed=7, progress=False)
    _assert_same_runs([SAESpec(**s) for s in specs], [(killed / f"m{i}", tmp_path / "ref" / f"m{i}") for i in range(3)],
                      resumed, reference)
