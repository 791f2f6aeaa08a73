"""Stacked training against one SAE at a time: the same SAEs, the same data, one run.

Each case is a set of SAEs that the default workflow trains in one pass over a store:

* ``het-fig6``: HET Fig. 6's ten swept shared TopK SAEs (d 64, m 2048, k 4, batch 256; five Iso-Energy and five
  group-sparse weights, the authors' objective);
* ``het-references``: Fig. 5's shared TopK SAE and modality-specific pair at one alpha (two stacks of one);
* ``iso-table5``: ISO Table 5's MP SAE and SAE-A (d 512, m 140, k 10, batch 512 pairs, the authors' protocol);
* ``zoo-topk``: the toy zoo's three TopK members of one shape (d 64, m 256, k 4, batch 64).

Both arms run the real trainer (:func:`vlsae.sae.train.train_paired_saes`, ``stack=True`` or ``False``) on a
synthetic store for ``--steps`` steps, alternating, and the fastest of ``--rounds`` is kept. Prints the seconds
per step of the whole set and the speed-up; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vlsae.sae import SAESpec
from vlsae.sae.train import TrainConfig, train_paired_saes
from vlsae.store import EmbeddingStore, StoreWriter

HET_TRAINING = {"lr": 5e-4, "batch_size": 256, "weight_decay": 1e-5, "grad_clip": 1.0, "grad_clip_scope": "model",
                "weight_decay_biases": False, "reconstruction": "fvu"}


def _topk(latents, k, arrangement="shared", **aux):
    return SAESpec(latents=latents, arrangement=arrangement, params={"k": k}, aux=aux)


CASES = {
    "het-fig6": (64, [_topk(2048, 4, iso_energy={"weight": 0.03 * f, "mask_top1": True}) for f in (1 / 64, 1 / 4, 1, 4, 64)]
                 + [_topk(2048, 4, group_sparse={"weight": 0.05 * f}) for f in (1 / 64, 1 / 4, 1, 4, 64)], HET_TRAINING),
    "het-references": (64, [_topk(2048, 4), _topk(2048, 4, "specific")], HET_TRAINING),
    "iso-table5": (512, [SAESpec(architecture="mp", latents=140, params={"k": 10, "selection": "signed"}, aux=aux)
                         for aux in ({}, {"iso_energy": {"weight": 5e-5, "mask_top1": True}})],
                   {"lr": 5e-4, "batch_size": 512, "grad_clip": 1.0, "reconstruction": "element_mean", "decoder_grad": "full"}),
    "zoo-topk": (64, [_topk(256, 4), _topk(256, 4, iso_energy={"weight": 0.03}), _topk(256, 4, group_sparse={"weight": 0.05})],
                 {"lr": 1e-3, "batch_size": 64}),
}


def _store(root: Path, d: int, n: int) -> EmbeddingStore:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x + 0.3 * rng.normal(size=(n, d)).astype(np.float32)
    with StoreWriter(root, d) as w:
        w.add(np.arange(n), x, y / np.linalg.norm(y, axis=1, keepdims=True))
    return EmbeddingStore(root)


def time_case(name: str, steps: int, rounds: int, work: Path) -> dict:
    d, specs, training = CASES[name]
    cfg = TrainConfig(**training, steps=steps, log_every=steps, checkpoint_every=10 * steps)
    store = _store(work / f"{name}-data", d, cfg.batch_size * steps)
    best = {}
    for r in range(rounds):
        for stack in (False, True):
            runs = [(spec, work / f"{name}-{stack}-{r}-{i}") for i, spec in enumerate(specs)]
            start = time.perf_counter()
            train_paired_saes(runs, store, cfg, progress=False, stack=stack)
            seconds = (time.perf_counter() - start) / steps
            key = "stacked" if stack else "one_by_one"
            best[key] = min(best.get(key, float("inf")), seconds)
    return {"saes": len(specs), **{f"{k}_ms_per_step": 1000 * v for k, v in best.items()},
            "speedup": best["one_by_one"] / best["stacked"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    results = {"setting": {"steps": a.steps, "rounds": a.rounds, "threads": a.threads, "torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.cases:
            results[name] = time_case(name, a.steps, a.rounds, Path(tmp))
            print(name, json.dumps(results[name]), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
