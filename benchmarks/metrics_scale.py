"""The three scale targets of the evaluation suite (issue 6), each beside a naive baseline.

    python benchmarks/metrics_scale.py --out results/benchmarks/metrics_scale.json
    python benchmarks/metrics_scale.py --atoms 1024 --samples 10000   # a quick look

* ``fda-ot``: the exact OT plan of FDA (``ot.emd``) between two energy distributions over
  ``--atoms`` unit atoms in ``--dim`` dimensions (target: 8192 atoms under 2 minutes);
* ``ms``: the streaming closed-form monosemanticity score over ``--samples`` x ``--atoms`` TopK
  codes (k = 32) and 768-d external embeddings, read in batches of 4096 (target: 100k x 8192 under
  5 minutes); baseline: the O(N^2) pairwise definition on 2000 samples, extrapolated by N^2;
* ``hungarian``: ``linear_sum_assignment`` on an ``--atoms`` square correlation matrix (target:
  8192 x 8192 under 20 s).

Energies are heavy-tailed (log-normal) with 5% dead atoms per modality, as in trained SAEs; the
correlation matrix is sparse-ish coactivation (a permuted diagonal signal plus noise).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from vlsae.atomic import write_json
from vlsae.metrics.modality import transport_plan
from vlsae.metrics.monosemanticity import MonosemanticityAccumulator


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_ot(atoms: int, dim: int, rng) -> dict:
    d = rng.normal(size=(atoms, dim))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    e_image, e_text = (rng.lognormal(size=atoms) * (rng.random(atoms) > 0.05) for _ in range(2))
    seconds, plan = timed(lambda: transport_plan(e_image, e_text, d))
    return {"task": "fda-ot", "atoms": atoms, "dim": dim, "seconds": seconds, "mass": float(plan.mass.sum())}


def _codes(rng, n: int, atoms: int, k: int = 32) -> np.ndarray:
    z = np.zeros((n, atoms), dtype=np.float32)
    rows = np.repeat(np.arange(n), k)
    z[rows, rng.integers(atoms, size=n * k)] = rng.random(n * k).astype(np.float32)
    return z


def bench_ms(samples: int, atoms: int, rng, batch: int = 4096, dim: int = 768) -> dict:
    lo, hi = np.zeros(atoms), np.ones(atoms)
    acc = MonosemanticityAccumulator(lo, hi, dim)
    total = 0.0
    for start in range(0, samples, batch):
        n = min(batch, samples - start)
        codes, emb = _codes(rng, n, atoms), rng.normal(size=(n, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        seconds, _ = timed(lambda: acc.update(codes, emb))
        total += seconds
    seconds, _ = timed(acc.result)
    # naive O(N^2 K): every pair of samples for every latent, on a small N
    n_small = 2000
    codes, emb = _codes(rng, n_small, 256), rng.normal(size=(n_small, 64))
    naive, _ = timed(lambda: [(np.outer(codes[:, j], codes[:, j]) * (emb @ emb.T)).sum() for j in range(256)])
    naive_full = naive * (samples / n_small) ** 2 * (atoms / 256) * (dim / 64)
    return {"task": "ms", "samples": samples, "atoms": atoms, "seconds": total + seconds,
            "naive_seconds_extrapolated": naive_full, "speedup": naive_full / (total + seconds)}


def bench_hungarian(atoms: int, rng) -> dict:
    perm = rng.permutation(atoms)
    corr = rng.normal(scale=0.05, size=(atoms, atoms))
    corr[np.arange(atoms), perm] += 0.5
    seconds, (rows, cols) = timed(lambda: linear_sum_assignment(-corr))
    return {"task": "hungarian", "atoms": atoms, "seconds": seconds, "recovered": float((cols == perm).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atoms", type=int, default=8192)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--tasks", nargs="+", default=["hungarian", "ms", "fda-ot"])
    p.add_argument("--out")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    runs = {"hungarian": lambda: bench_hungarian(a.atoms, rng), "ms": lambda: bench_ms(a.samples, a.atoms, rng),
            "fda-ot": lambda: bench_ot(a.atoms, a.dim, rng)}
    rows = []
    for task in a.tasks:
        rows.append(runs[task]())
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        write_json(a.out, {"machine": platform.processor() or platform.machine(), "runs": rows})


if __name__ == "__main__":
    main()
