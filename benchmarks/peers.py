"""Training-step speed of vlsae against the SAE libraries a user would otherwise pick, in one run.

    pip install -e '.[bench]'        # sae-lens, overcomplete, eai-sparsify (into the torch 2.14.1 venv)
    python benchmarks/peers.py --out benchmarks/results/peers.json

Every (case, library) runs in its own subprocess on the same data (``--batch`` unit-norm rows of
dimension ``--d``, seed 0) and sizes; a library that is not installed, or lacks the architecture,
gets a blank cell. Cases: ``topk``, ``batchtopk``, ``relu`` and ``mp`` at d 512, m 8192, k 32, batch
1024 (issue 3's setting), and ``tiny``, TopK at the default workflow's size (d 64, m 2048, k 4,
batch 256).

Fairness choices, the same for every library:

* a step is forward, loss, backward, ``torch.optim.Adam`` (lr 1e-4, no weight decay) and the
  library's own decoder normalisation: vlsae and sparsify remove the gradient along each atom and
  project the atoms back onto the unit sphere after the step; overcomplete normalises its dictionary
  inside every forward; SAELens rescales the codes by the decoder norms (its TopK default) or
  keeps unit atoms (its Matching Pursuit);
* loss: the squared error summed over dimensions, mean over the batch (sparsify: its FVU, the same
  sum over the batch's variance), plus the L1 term ``1e-3 sum_j z_j`` for ReLU; no AuxK, no
  gradient clipping, fp32, no autocast on the CPU, every library at its default thread count;
* each library's fastest setting where it has one (SAELens TopK: ``use_sparse_activations`` on and
  off, the faster kept and named; sparsify's eager decoder, ``SPARSIFY_DISABLE_TRITON=1``, as triton
  has no CPU driver); Matching Pursuit runs exactly k greedy steps in every library.

Reported per cell: the fastest over ``--rounds`` runs (libraries interleaved, alternating order) of
the median step time over ``--repeats`` steps (more for fast cells: at least a second of them) after
two warm-up steps, samples/s,
the ratio vlsae / peer in samples/s (above 1: vlsae is faster), and the peak resident memory the
steps add over the built model and batch (``VmHWM`` after resetting it, Linux). The last column
puts each vlsae case against this machine's dense matmul throughput, measured in the same run on
a ``B x d @ d x m`` product: the time the case's necessary multiply-adds would take at that rate
over the measured step time (1 = at the matmul limit). Necessary work, 2 FLOPs per multiply-add:
TopK and BatchTopK ``2Bmd`` (dense encoder) ``+ 8Bkd`` (sparse decode, its gradient, the gradients
of the selected encoder rows); ReLU ``10Bmd`` (encoder, decoder, the decoder's two gradients, the
encoder's weight gradient); MP ``2m^2d`` (Gram matrix) ``+ 2Bmd + 2kBm`` (correlations and their k
updates) ``+ 8Bkd``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from sae_speed import _median_time  # noqa: E402

CASES = {
    "topk": dict(arch="topk", d=512, m=8192, k=32, batch=1024),
    "batchtopk": dict(arch="batchtopk", d=512, m=8192, k=32, batch=1024),
    "relu": dict(arch="relu", d=512, m=8192, k=32, batch=1024),
    "mp": dict(arch="mp", d=512, m=8192, k=32, batch=1024),
    "tiny": dict(arch="topk", d=64, m=2048, k=4, batch=256),
}
LIBRARIES = ("vlsae", "sae_lens", "overcomplete", "sparsify")
L1 = 1e-3


def necessary_flops(arch: str, d: int, m: int, k: int, batch: int) -> float:
    """FLOPs a step of ``arch`` cannot avoid (module docstring)."""
    B = batch
    if arch in ("topk", "batchtopk"):
        return 2 * B * m * d + 8 * B * k * d
    if arch == "relu":
        return 10 * B * m * d
    return 2 * m * m * d + 2 * B * m * d + 2 * k * B * m + 8 * B * k * d


def matmul_flops_per_s(d: int, m: int, batch: int) -> float:
    """Dense ``B x d @ d x m`` throughput of this machine, FLOP/s: the faster of the two weight layouts
    (``d x m``, and ``m x d`` as ``F.linear`` reads an encoder), median of 20 after 3 warm-ups."""
    a, b, w = torch.randn(batch, d), torch.randn(d, m), torch.randn(m, d)
    seconds = min(_median_time(fn, a.device, 20, warmup=3) for fn in (lambda: a @ b, lambda: torch.nn.functional.linear(a, w)))
    return 2 * batch * d * m / seconds


def _mse(x, x_hat):
    return (x - x_hat).pow(2).sum(-1).mean()


def _vlsae(arch, d, m, k):
    from vlsae.sae import build_sae

    sae = build_sae(arch, d, m, **({"l1": L1} if arch == "relu" else {"k": k}))

    def loss(x):  # as vlsae's trainer reads it (MP: off the support, without decoding)
        sse, code = sae.squared_errors(x)
        return sse.mean() + (code.penalty if code.penalty is not None else 0)

    return sae, loss, sae.remove_parallel_grad_, sae.normalize_decoder_


def _overcomplete(arch, d, m, k):
    import matplotlib
    import matplotlib.cm

    if not hasattr(matplotlib.cm, "get_cmap"):  # overcomplete 0.3.0 imports it; matplotlib 3.9 moved it
        matplotlib.cm.get_cmap = matplotlib.colormaps.get_cmap
    from overcomplete.sae import SAE, BatchTopKSAE, MpSAE, TopKSAE

    sae = {"topk": lambda: TopKSAE(d, m, top_k=k), "batchtopk": lambda: BatchTopKSAE(d, m, top_k=k),
           "mp": lambda: MpSAE(d, m, k=k), "relu": lambda: SAE(d, m)}[arch]()

    def loss(x):
        _, z, x_hat = sae(x)
        return _mse(x, x_hat) + (L1 * z.abs().sum(-1).mean() if arch == "relu" else 0)

    return sae, loss, None, None


def _sae_lens(arch, d, m, k, sparse_acts=False):
    from sae_lens.saes.sae import TrainStepInput
    import sae_lens

    common = dict(d_in=d, d_sae=m, device="cpu", dtype="float32")
    if arch == "topk":
        sae = sae_lens.TopKTrainingSAE(sae_lens.TopKTrainingSAEConfig(k=k, use_sparse_activations=sparse_acts, **common))
    elif arch == "batchtopk":
        sae = sae_lens.BatchTopKTrainingSAE(sae_lens.BatchTopKTrainingSAEConfig(k=k, **common))
    elif arch == "relu":
        sae = sae_lens.StandardTrainingSAE(sae_lens.StandardTrainingSAEConfig(l1_coefficient=L1, **common))
    else:
        from sae_lens.saes.matching_pursuit_sae import MatchingPursuitTrainingSAE, MatchingPursuitTrainingSAEConfig

        sae = MatchingPursuitTrainingSAE(MatchingPursuitTrainingSAEConfig(
            residual_threshold=0.0, max_iterations=k, stop_on_duplicate_support=False, **common))
    coefficients = {name: getattr(c, "value", c) for name, c in sae.get_coefficients().items()}

    def loss(x):
        step = TrainStepInput(sae_in=x, coefficients=coefficients, dead_neuron_mask=None, n_training_steps=0,
                              is_logging_step=False)
        return sae.training_forward_pass(step).loss

    return sae, loss, None, None


def _sparsify(arch, d, m, k):
    if arch != "topk":
        raise NotImplementedError("sparsify trains TopK only")
    from sparsify import SparseCoder, SparseCoderConfig

    sae = SparseCoder(d, SparseCoderConfig(num_latents=m, k=k))
    return (sae, lambda x: sae(x).fvu, sae.remove_gradient_parallel_to_decoder_directions,
            sae.set_decoder_norm_to_unit_norm)


BUILDERS = {"vlsae": _vlsae, "overcomplete": _overcomplete, "sae_lens": _sae_lens, "sparsify": _sparsify}


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def with_peak_mb(fn):
    """``(fn(), MB)``: its result and the peak resident memory it adds over the current RSS (``VmHWM`` after
    resetting it, Linux)."""
    base = _rss_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    result = fn()
    return result, _rss_mb("VmHWM") - base


def in_child(module: str, call: str, env: dict | None = None) -> dict:
    """``module.call`` (a Python expression returning a JSON-able value) evaluated in a fresh interpreter, so no
    allocator or thread state carries over; raises ``RuntimeError`` with the child's last error line."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import {module}; "
            f"print(json.dumps({module}.{call}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError((done.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_one(library: str, case: str, repeats: int, **options) -> dict:
    """Median step time and added peak memory of one library on one case, in this process."""
    c = CASES[case]
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(c["batch"], c["d"]), dim=1)
    sae, loss, before_step, after_step = BUILDERS[library](c["arch"], c["d"], c["m"], c["k"], **options)
    sae.train()
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step():
        value = loss(x)
        opt.zero_grad(set_to_none=True)
        value.backward()
        if before_step:
            before_step()
        opt.step()
        if after_step:
            after_step()

    step()  # the warm-up creates the optimizer state; then at least a second of steps per cell
    start = time.perf_counter()
    step()
    repeats = max(repeats, int(1.0 / (time.perf_counter() - start)))
    seconds, peak = with_peak_mb(lambda: _median_time(step, x.device, repeats, warmup=0))
    return {"seconds": seconds, "samples_per_s": c["batch"] / seconds, "peak_mb": peak}


def run_child(library: str, case: str, repeats: int, **options) -> dict | None:
    """:func:`time_one` in a fresh interpreter (no allocator or thread state carried over); None if it fails."""
    env = {**os.environ, "SPARSIFY_DISABLE_TRITON": "1"}  # sparsify's switch to its eager decoder (no triton on a CPU)
    try:
        return in_child("peers", f"time_one({library!r}, {case!r}, {repeats}, **{options!r})", env)
    except RuntimeError as e:
        print(f"  {library} / {case} {options or ''}: {e}", file=sys.stderr)
        return None


def variants(library: str, case: str) -> list[dict]:
    """Settings tried per library (the fastest is reported)."""
    if library == "sae_lens" and CASES[case]["arch"] == "topk":
        return [{"sparse_acts": False}, {"sparse_acts": True}]
    return [{}]


def table(results: dict) -> str:
    """Markdown table: one row per case and library."""
    lines = ["| case | library | step | samples/s | vlsae / peer | peak MB | matmul fraction |",
             "|---|---|---|---|---|---|---|"]
    for case, row in results["cases"].items():
        ours = row.get("vlsae")
        for library in LIBRARIES:
            cell = row.get(library)
            if cell is None:
                lines.append(f"| {case} | {library} | - | - | - | - | - |")
                continue
            name = library + (" (sparse acts)" if cell.get("options", {}).get("sparse_acts") else "")
            ratio = "" if ours is None or library == "vlsae" else f"{ours['samples_per_s'] / cell['samples_per_s']:.2f}x"
            fraction = f"{row['matmul_fraction']:.2f}" if library == "vlsae" else ""
            lines.append(f"| {case} | {name} | {cell['seconds'] * 1e3:.1f} ms | {cell['samples_per_s']:,.0f} | {ratio} | "
                         f"{cell['peak_mb']:.0f} | {fraction} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="runs per cell, interleaved; the fastest is kept")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    a = p.parse_args(argv)
    results = {"setting": {"threads": torch.get_num_threads(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                           "cpu": platform.processor() or platform.machine(), "device": "cpu"}, "cases": {}}
    for case in a.cases:
        c = CASES[case]
        rate = max(matmul_flops_per_s(c["d"], c["m"], c["batch"]) for _ in range(a.rounds))
        row = {"matmul_gflops": rate / 1e9}
        tried: dict[str, list] = {library: [] for library in a.libraries}
        for round_ in range(a.rounds):  # libraries interleaved, in alternating order, so drift hits all alike
            for library in a.libraries[::-1] if round_ % 2 else a.libraries:
                for options in variants(library, case):
                    cell = run_child(library, case, a.repeats, **options)
                    if cell is not None:
                        tried[library].append({**cell, "options": options})
        for library, cells in tried.items():
            if cells:
                row[library] = min(cells, key=lambda cell: cell["seconds"])
            print(f"{case:10s} {library:13s} " + (f"{row[library]['seconds'] * 1e3:9.1f} ms" if library in row else "-"),
                  flush=True)
        if "vlsae" in row:
            row["matmul_fraction"] = necessary_flops(**c) / rate / row["vlsae"]["seconds"]
        results["cases"][case] = row
    print(table(results))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
