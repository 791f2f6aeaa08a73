"""Step time of every SAE architecture, and each fast path against its naive baseline.

    python benchmarks/sae_speed.py                   # issue-3 setting: d=512, m=8192, k=32, batch 1024
    python benchmarks/sae_speed.py --m 2048 --repeats 3 --out results/benchmarks/sae_speed.json

A training step is forward + loss (:meth:`~vlsae.sae.base.SparseAutoencoder.squared_errors`, as the trainer
reads it) + backward + AdamW step + decoder renormalisation, timed after
warm-up as the median over ``--repeats``. Naive baselines, measured in the same run:

* ``topk-dense-decode``: TopK decoding by scatter into the ``B x m`` code, then a dense matmul;
* ``topk-naive``: the same, plus the dense backward of ``pre.topk`` in the encoder;
* ``batchtopk-dense``: BatchTopK with the dense backward through the ``B x m`` pre-activations;
* ``mp-naive``: ISO Alg. 1 as written, recomputing ``r D^T`` at every one of the k steps and
  back-propagating through the unrolled loop;
* ``mp-decode``: the fast MP whose loss decodes ``x_hat`` (``B x d``) instead of reading ``||x - x_hat||^2`` off
  the ``k x k`` support system;
* ``mp-select-naive`` vs ``mp-select``: support selection alone (inference, fixed dictionary; the
  Gram matrix is cached as in eval mode);
* ``group-sparse-dense`` vs ``group-sparse``: the group-sparse loss (HET Prop. 3) of a paired batch
  with its backward, on the two ``B x m`` dense codes vs on the ``B x k`` TopK supports.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from vlsae.device import resolve_device
from vlsae.sae import BatchTopKSAE, MatchingPursuitSAE, TopKSAE, build_sae
from vlsae.sae.base import Code, SparseAutoencoder
from vlsae.sae.losses import GroupSparse

PARAMS = {"relu": {"l1": 1e-3}, "jumprelu": {"l0": 1e-3}, "topk": {}, "batchtopk": {}, "mp": {}}


class DenseDecodeTopK(TopKSAE):
    """TopK with the fused encoder but naive decoding: scatter into the ``B x m`` code, then ``z @ W_dec``."""

    def decode(self, code: Code) -> torch.Tensor:
        return code.dense() @ self.W_dec + self.b_dec


class NaiveTopK(DenseDecodeTopK):
    """TopK as usually written: ``pre.topk`` (dense ``B x m`` backward) and dense decoding."""

    def encode(self, x: torch.Tensor, keep=None) -> Code:
        return self.activate(self.pre_activation(x))


class DenseBatchTopK(BatchTopKSAE):
    """BatchTopK as usually written: select over ``ReLU(pre)`` with autograd through the dense ``B x m``."""

    def encode(self, x: torch.Tensor, keep=None) -> Code:
        return self.activate(self.pre_activation(x))


class DecodedMP(MatchingPursuitSAE):
    """The fast MP with the generic loss: decode ``x_hat``, then ``||x - x_hat||^2``."""

    squared_errors = SparseAutoencoder.squared_errors


class NaiveMP(DecodedMP):
    """ISO Alg. 1 verbatim: ``c = r D^T`` recomputed at every step, autograd through the loop, then decoded."""

    def encode(self, x: torch.Tensor, keep=None) -> Code:
        r = x - self.b_dec
        values, picks = [], []
        for _ in range(self.k):
            corr = r @ self.W_dec.T
            i = corr.detach().abs().argmax(1)
            z = corr.gather(1, i[:, None])
            r = r - z * self.W_dec[i]
            values.append(z[:, 0])
            picks.append(i)
        return Code(torch.stack(values, 1), torch.stack(picks, 1), self.m)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, dev, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(dev)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_step_time(sae, x: torch.Tensor, repeats: int) -> float:
    opt = torch.optim.AdamW(sae.parameters(), lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda")

    def step():
        with autocast:
            sse, code = sae.squared_errors(x)
            loss = sse.mean()
            if code.penalty is not None:
                loss = loss + code.penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_parallel_grad_()
        opt.step()
        sae.normalize_decoder_()

    return _median_time(step, x.device, repeats)


def group_sparse_time(sae: TopKSAE, x: torch.Tensor, y: torch.Tensor, dense: bool, repeats: int) -> float:
    """Encode a paired batch, then the group-sparse loss and its backward, on supports or densified codes."""
    loss = GroupSparse(weight=1.0)

    def step():
        codes = [sae.encode(v) for v in (x, y)]
        if dense:
            codes = [Code(code.dense(), None, code.m) for code in codes]
        loss(*codes).backward()

    return _median_time(step, x.device, repeats)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--m", type=int, default=8192)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="also write the results as JSON")
    a = p.parse_args(argv)
    dev = resolve_device(a.device)
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(a.batch, a.d, device=dev), dim=1)
    results = {"setting": {"d": a.d, "m": a.m, "k": a.k, "batch": a.batch, "device": str(dev),
                           "threads": torch.get_num_threads(), "torch": torch.__version__,
                           "cpu": platform.processor() or platform.machine()},
               "train_step_s": {}}
    for arch, params in PARAMS.items():
        if arch in ("topk", "batchtopk", "mp"):
            params = {"k": a.k}
        results["train_step_s"][arch] = train_step_time(build_sae(arch, a.d, a.m, **params).to(dev), x, a.repeats)
    results["train_step_s"]["topk-dense-decode"] = train_step_time(DenseDecodeTopK(a.d, a.m, a.k).to(dev), x, a.repeats)
    results["train_step_s"]["topk-naive"] = train_step_time(NaiveTopK(a.d, a.m, a.k).to(dev), x, a.repeats)
    results["train_step_s"]["batchtopk-dense"] = train_step_time(DenseBatchTopK(a.d, a.m, a.k).to(dev), x, a.repeats)
    results["train_step_s"]["mp-naive"] = train_step_time(NaiveMP(a.d, a.m, a.k).to(dev), x, a.repeats)
    results["train_step_s"]["mp-decode"] = train_step_time(DecodedMP(a.d, a.m, a.k).to(dev), x, a.repeats)

    topk, y = TopKSAE(a.d, a.m, a.k).to(dev), torch.nn.functional.normalize(torch.randn_like(x), dim=1)
    results["aux_loss_s"] = {name: group_sparse_time(topk, x, y, dense, a.repeats)
                             for name, dense in (("group-sparse", False), ("group-sparse-dense", True))}

    fast, naive = MatchingPursuitSAE(a.d, a.m, a.k).to(dev).eval(), NaiveMP(a.d, a.m, a.k).to(dev).eval()
    naive.load_state_dict(fast.state_dict())
    with torch.no_grad():
        results["encode_s"] = {"mp-select": _median_time(lambda: fast.encode(x), dev, a.repeats),
                               "mp-select-naive": _median_time(lambda: naive.encode(x), dev, a.repeats)}
    s, e, g = results["train_step_s"], results["encode_s"], results["aux_loss_s"]
    results["speedup"] = {
        "topk sparse vs dense decode (train step)": s["topk-dense-decode"] / s["topk"],
        "topk sparse vs naive dense (train step)": s["topk-naive"] / s["topk"],
        "batchtopk sparse vs dense backward (train step)": s["batchtopk-dense"] / s["batchtopk"],
        "mp Gram vs recompute (train step)": s["mp-naive"] / s["mp"],
        "mp support energy vs decoding (train step)": s["mp-decode"] / s["mp"],
        "mp Gram vs recompute (encode)": e["mp-select-naive"] / e["mp-select"],
        "group-sparse on supports vs dense (encode + loss + backward)": g["group-sparse-dense"] / g["group-sparse"],
    }
    print(json.dumps(results, indent=2))
    if a.out:
        from vlsae.atomic import write_json

        write_json(a.out, results)
    return results


if __name__ == "__main__":
    main()
