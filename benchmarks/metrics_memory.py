"""Peak memory of the two rules that hold m x m matrices, ``vlsae align`` and ``vlsae eval-saes``, against m.

    python benchmarks/metrics_memory.py --latents 2048 4096 8192 --out results/benchmarks/metrics_memory.json

For each m, a shared TopK SAE (random weights: memory does not depend on training) is aligned on,
and evaluated on, a store of ``--pairs`` paired unit embeddings of ``--dim`` dimensions; each command
runs in its own process under ``/usr/bin/time -v``, which reports the process's peak RSS. A fit of
``peak = base + c m^2`` over the sizes gives the per-latent-pair cost that the rules' ``mem_mb``
declarations use (``workflow/rules/common.smk``, ``square_mb``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from vlsae.atomic import write_json
from vlsae.sae import PairedSAE, SAESpec
from vlsae.store import StoreWriter


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident set size of ``command`` (MB), from GNU time."""
    out = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024


def make_store(root: Path, pairs: int, dim: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(pairs, dim)).astype(np.float32)
    y = x + 0.5 * rng.normal(size=(pairs, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    with StoreWriter(root, dim, shard_pairs=8192, metadata={"dataset": {"format": "coco"}}) as w:
        w.add(np.arange(pairs), x, y, [str(i) for i in range(pairs)], [str(i) for i in range(pairs)])
    return root


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latents", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--out", type=Path)
    a = parser.parse_args(argv)
    vlsae = [sys.executable, "-m", "vlsae.cli", "--threads", "2"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = make_store(tmp / "store", a.pairs, a.dim)
        for m in a.latents:
            run = tmp / f"sae-m{m}"
            PairedSAE(SAESpec(latents=m, params={"k": a.k}), a.dim).save(run)
            align = peak_rss_mb([*vlsae, "align", "--model", str(run), "--data", str(store), "--out",
                                 str(run / "alignment.npz")])
            evaluate = peak_rss_mb([*vlsae, "eval-saes", "--data", str(store), "--run", "sae", "0", str(run),
                                    "--options", json.dumps({"sample_pairs": 2000, "retrieval_pairs": 5000}),
                                    "--out", str(run / "metrics.parquet")])
            rows.append({"latents": m, "align_mb": round(align), "eval_saes_mb": round(evaluate)})
            print(rows[-1], flush=True)
    fits = {}
    if len(rows) > 1:
        squares = np.array([r["latents"] ** 2 for r in rows], dtype=np.float64)
        for key in ("align_mb", "eval_saes_mb"):
            slope, base = np.polyfit(squares, [r[key] for r in rows], 1)
            fits[key] = {"base_mb": round(base), "bytes_per_latent_pair": round(slope * 2 ** 20, 1)}
            print(f"{key}: peak ~ {base:.0f} MB + {slope * 2 ** 20:.1f} bytes x m^2")
    if a.out:
        write_json(a.out, {"machine": platform.platform(), "pairs": a.pairs, "dim": a.dim, "k": a.k, "rows": rows,
                           "fits": fits})


if __name__ == "__main__":
    main()
