"""Matching Pursuit at ISO Table 4's x64 size: the Gram-matrix path against per-step Gram rows.

    python benchmarks/mp_memory.py                         # d 768, m 49152, k 50; batches 64 256 1024
    python benchmarks/mp_memory.py --batches 64 --out results/benchmarks/mp_memory.json

One training step (forward, loss, backward, AdamW, renormalisation) of ``MatchingPursuitSAE`` forced
onto each selection path: the full ``m x m`` Gram matrix, rebuilt every step (``4 m^2`` bytes, ``m^2 d``
multiply-adds), or per-step Gram rows (each greedy step computes ``W[u] W^T`` for the ``u <= B`` atoms
it picked: ``u x m`` floats, ``u m d`` multiply-adds), per batch size. Each path runs
in its own subprocess; reported are the median step time after one warm-up and the peak resident memory
of the steps over the built model (``VmHWM``, Linux). The trainer's default rule (Gram matrix while it
fits a quarter of the device's memory and ``m <= k B``) is printed beside each batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from peers import in_child, with_peak_mb  # noqa: E402
from sae_speed import train_step_time  # noqa: E402


def time_path(d: int, m: int, k: int, batch: int, path: str, repeats: int) -> dict:
    """Step time and added peak memory of one path (``gram`` or ``rows``), in this process."""
    from vlsae.sae import MatchingPursuitSAE

    torch.manual_seed(0)
    sae = MatchingPursuitSAE(d, m, k)
    sae.use_gram = lambda batch: path == "gram"  # force the path, whatever the default rule would pick
    x = torch.nn.functional.normalize(torch.randn(batch, d), dim=1)
    seconds, peak = with_peak_mb(lambda: train_step_time(sae, x, repeats))
    return {"seconds": seconds, "peak_mb": peak}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--m", type=int, default=49152)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    results = {"setting": {"d": a.d, "m": a.m, "k": a.k, "threads": torch.get_num_threads(), "torch": torch.__version__},
               "batches": {}}
    for batch in a.batches:
        row = {}
        for path in ("gram", "rows"):
            try:
                row[path] = in_child("mp_memory", f"time_path({a.d}, {a.m}, {a.k}, {batch}, {path!r}, {a.repeats})")
            except RuntimeError as e:
                row[path] = {"error": str(e)}
        from vlsae.sae import MatchingPursuitSAE

        row["default_uses_gram"] = MatchingPursuitSAE(8, a.m, a.k).use_gram(batch)
        results["batches"][batch] = row
        print(batch, json.dumps(row), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
