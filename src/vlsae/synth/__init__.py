"""Synthetic data-generating processes with ground truth (docs/methods.md, "Synthetic studies")."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..store import StoreWriter

SPLITS = ("train", "eval")


def write_splits(
    out_dir: str | Path,
    dim: int,
    sizes: dict[str, int],
    draw: Callable[[str, int, np.random.Generator], tuple[np.ndarray, np.ndarray]],
    seed: int,
    meta: dict,
    shard_pairs: int = 65536,
    chunk: int = 8192,
    progress=None,
) -> None:
    """Write one store per split (``out_dir/train``, ``out_dir/eval``) from ``draw(split, size, rng)``.

    Pairs are drawn ``chunk`` at a time, so memory does not grow with the split size. Split ``i``
    draws from its own stream ``default_rng([seed, i + 1])``, independent of the other split's size.
    Pair ids run on across splits; ``source`` names are ``{meta['source']}:{split}:{id}``.
    """
    offset = 0
    for stream, split in enumerate(SPLITS, start=1):
        n_split, rng = sizes[split], np.random.default_rng([seed, stream])
        with StoreWriter(Path(out_dir) / split, dim, shard_pairs, {**meta, "seed": seed, "split": split}) as writer:
            for start in range(0, n_split, chunk):
                size = min(chunk, n_split - start)
                x, y = draw(split, size, rng)
                ids = np.arange(offset + start, offset + start + size)
                src = [f"{meta['source']}:{split}:{i}" for i in ids]
                writer.add(ids, x, y, src, src)
                if progress is not None:
                    progress(split, start + size, n_split)
        offset += n_split
