"""Batched, resumable extraction of paired embeddings into the Parquet store.

Pair ``i`` of the source (row ``i`` of its table) gets ``pair_id = i`` and lands in shard
``i // shard_pairs``. Each shard is written atomically, then a sidecar ``part-NNNNN.json`` with its
manifest entry (pairs, id range, size, SHA-256) and its skipped pairs. A rerun keeps a shard only
when its sidecar exists and its Parquet file has the recorded size and row count, so a crash, a
zero-byte or a half-written file is redone, never taken as done. Batches never straddle shards, so
a resumed run computes exactly what an uninterrupted one does. ``extraction.json`` fingerprints the
model and dataset; a rerun into a folder made by another model or dataset fails instead of mixing
them. One process writes a store at a time: a second ``vlsae embed`` on the same folder refuses
(a lock on ``.lock``, released when its holder exits, even by SIGKILL).

Images are read, decoded and preprocessed in DataLoader workers. A missing or corrupt image, or
a pair whose captions are all empty, is skipped, counted and listed in ``skipped.csv`` (a shard
whose every pair is skipped is written empty); it never stops the run. The manifest is written last.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..atomic import write_frame, write_json
import pyarrow.parquet as pq

from ..store import MANIFEST, shard_name, write_manifest, write_shard
from .encoders import Encoder, ModelSpec
from .readers import ImageLoader, PairSource

log = logging.getLogger(__name__)
FINGERPRINT = "extraction.json"


def skip_reason(error: Exception) -> str:
    """The error as a reproducible line: memory addresses (PIL's ``<_io.BytesIO object at 0x...>``) removed."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(error).__name__}: {error}")[:200]


class PairBatches(torch.utils.data.Dataset):
    """Item ``b`` is batch ``b`` of index lists, preprocessed: pixels, tokens and what was skipped."""

    def __init__(self, source: PairSource, encoder: Encoder, batches: list[np.ndarray], draft: int | None = None):
        self.pairs = source.pairs
        self.with_captions = source.prompts is None
        self.with_target = "target" in self.pairs.columns
        self.encoder = encoder
        self.batches = batches
        self.loader = ImageLoader()
        self.draft = draft

    def __len__(self) -> int:
        return len(self.batches)

    def _images(self, refs, index, side, skipped):
        images, ok = [], []
        for i, ref in zip(index, refs):
            try:
                images.append(self.loader.load(ref, self.draft))
                ok.append(i)
            except Exception as e:  # any unreadable image is skipped, never fatal
                skipped.append((int(i), side, skip_reason(e)))
        return images, ok

    def __getitem__(self, b: int) -> dict:
        index = self.batches[b]
        rows = self.pairs.iloc[index]
        skipped: list[tuple[int, str, str]] = []
        texts = {}
        if self.with_captions:
            for i, captions in zip(index, rows["texts"]):
                kept = [c.strip() for c in captions if isinstance(c, str) and c.strip()]
                if kept:
                    texts[int(i)] = kept
                else:
                    skipped.append((int(i), "text", "empty caption"))
        images, ok = self._images(rows["image"], index, "image", skipped)
        keep = {i for i in ok if not self.with_captions or i in texts}
        if self.with_target:
            targets, ok_t = self._images(rows["target"], index, "target", skipped)
            keep &= set(ok_t)
            targets = [im for i, im in zip(ok_t, targets) if i in keep]
        images = [im for i, im in zip(ok, images) if i in keep]
        kept = np.array([i for i in index if i in keep], dtype=np.int64)
        item = {"index": kept, "skipped": skipped, "pixels": self.encoder.preprocess_images(images) if len(kept) else None}
        if self.with_target and len(kept):
            item["target_pixels"] = self.encoder.preprocess_images(targets)
        if self.with_captions and len(kept):
            flat = [c for i in kept for c in texts[int(i)]]
            item["tokens"] = self.encoder.tokenize(flat)
            item["n_texts"] = np.array([len(texts[int(i)]) for i in kept])
        return item


def _mean_of_groups(z: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """Renormalised mean of consecutive groups of unit rows (caption and prompt ensembles)."""
    group = torch.repeat_interleave(torch.arange(len(counts), device=z.device), torch.as_tensor(counts, device=z.device))
    mean = torch.zeros(len(counts), z.shape[1], device=z.device).index_add_(0, group, z)
    return torch.nn.functional.normalize(mean, dim=-1)


def prompt_table(encoder: Encoder, prompts: dict[str, list[str]], batch_size: int) -> dict[str, np.ndarray]:
    """Class embedding = normalised mean of the normalised prompt embeddings (CLIP's ensemble)."""
    labels = list(prompts)
    flat = [p for label in labels for p in prompts[label]]
    z = torch.cat([encoder.encode_texts(encoder.tokenize(flat[s:s + batch_size])) for s in range(0, len(flat), batch_size)])
    table = _mean_of_groups(z, np.array([len(prompts[label]) for label in labels])).cpu().numpy()
    return dict(zip(labels, table))


def _check_fingerprint(out: Path, fingerprint: dict) -> None:
    path = out / FINGERPRINT
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != fingerprint:
            changed = sorted(k for k in fingerprint.keys() | previous.keys() if fingerprint.get(k) != previous.get(k))
            raise ValueError(f"{out} holds an extraction with different {changed}; remove it or choose another folder")
    else:
        write_json(path, fingerprint)


@contextmanager
def store_lock(out: Path):
    """Hold ``out/.lock`` exclusively while writing; a second writer fails at once, naming the holder."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise ValueError(f"{out} is being written by another vlsae embed (pid {lock.read().strip() or '?'}); "
                             "wait for it or choose another folder") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def _shard_done(out: Path, s: int) -> bool:
    """Shard ``s`` was written whole: its sidecar exists and the file has the recorded size and rows."""
    sidecar, shard = (out / shard_name(s)).with_suffix(".json"), out / shard_name(s)
    if not (sidecar.exists() and shard.exists()):
        return False
    recorded = json.loads(sidecar.read_text())
    try:
        rows = pq.read_metadata(shard).num_rows
    except Exception:  # zero bytes, half written, garbled
        return False
    return shard.stat().st_size == recorded.get("entry", {}).get("bytes") and rows == recorded.get("rows")


def extract(encoder: Encoder, spec: ModelSpec, source: PairSource, out: str | Path, dataset: dict,
            shard_pairs: int = 65536, batch_size: int = 256, workers: int = 4, fast_decode: bool = False,
            progress: bool = True) -> dict:
    """Embed every pair of ``source`` with ``encoder`` into the store at ``out``; return the manifest.

    ``dataset`` (the reader's format, root and options) goes into the fingerprint and manifest.
    ``fast_decode`` decodes JPEGs at reduced DCT scale, no smaller than the model's input size
    (``ImageLoader.load``); it is part of the fingerprint, as it changes the embeddings slightly.
    """
    if shard_pairs < 1 or batch_size < 1:
        raise ValueError("shard_pairs and batch_size must be >= 1")
    out = Path(out)
    with store_lock(out):
        return _extract(encoder, spec, source, out, dataset, shard_pairs, batch_size, workers, fast_decode, progress)


def _extract(encoder: Encoder, spec: ModelSpec, source: PairSource, out: Path, dataset: dict, shard_pairs: int,
             batch_size: int, workers: int, fast_decode: bool, progress: bool) -> dict:
    (out / MANIFEST).unlink(missing_ok=True)
    for stale in out.glob(".part-*.tmp*"):  # temporaries of a killed run; the shards themselves are whole
        stale.unlink()
    n = len(source)
    n_shards = -(-n // shard_pairs)
    _check_fingerprint(out, {"model": asdict(spec), "dataset": dataset, "n_pairs": n, "shard_pairs": shard_pairs,
                             "fast_decode": fast_decode})
    done = {s for s in range(n_shards) if _shard_done(out, s)}
    todo = [s for s in range(n_shards) if s not in done]
    if done:
        log.info("resuming %s: %d of %d shards already written", out, len(done), n_shards)
    batches, batch_shard = [], []
    for s in todo:
        for start in range(s * shard_pairs, min(n, (s + 1) * shard_pairs), batch_size):
            batches.append(np.arange(start, min(n, (s + 1) * shard_pairs, start + batch_size)))
            batch_shard.append(s)
    labels = prompt_table(encoder, source.prompts, batch_size) if source.prompts and todo else None
    batched = PairBatches(source, encoder, batches, draft=encoder.image_size if fast_decode else None)
    loader = torch.utils.data.DataLoader(batched, batch_size=None, shuffle=False, num_workers=workers,
                                         pin_memory=encoder.device.type == "cuda", prefetch_factor=2 if workers else None)
    pending = sum(min(n, (s + 1) * shard_pairs) - s * shard_pairs for s in todo)
    bar = tqdm(total=pending, unit="img", desc=f"embed {out.parent.name}/{out.name}", disable=not progress, smoothing=0.1)
    parts: dict[str, list] = {}
    skipped: list = []
    n_skipped = 0
    for b, item in enumerate(loader):
        s = batch_shard[b]
        index = item["index"]
        skipped.extend(item["skipped"])
        n_skipped += len({i for i, _, _ in item["skipped"]})
        if len(index):
            parts.setdefault("pair_id", []).append(index)
            parts.setdefault("image", []).append(encoder.encode_images(item["pixels"]).cpu().numpy())
            if "target_pixels" in item:
                parts.setdefault("target", []).append(encoder.encode_images(item["target_pixels"]).cpu().numpy())
            if labels is not None:
                text = np.stack([labels[label] for label in source.pairs["label"].to_numpy()[index]])
            else:
                text = _mean_of_groups(encoder.encode_texts(item["tokens"]), item["n_texts"]).cpu().numpy()
            parts.setdefault("text", []).append(text)
        bar.update(len(batches[b]))
        bar.set_postfix(skipped=n_skipped, refresh=False)
        if b + 1 == len(batches) or batch_shard[b + 1] != s:
            _write_shard(out, s, source, parts, skipped, encoder.dim)
            parts, skipped = {}, []
    bar.close()
    return _finish(out, n_shards, source, spec, dataset, encoder.dim)


def _write_shard(out: Path, s: int, source: PairSource, parts: dict, skipped: list, dim: int) -> None:
    pid = np.concatenate(parts["pair_id"]) if parts else np.zeros(0, dtype=np.int64)
    ids = source.pairs.iloc[pid]
    sides = {"image": (_stack(parts.get("image"), dim), ids["image_id"]), "text": (_stack(parts.get("text"), dim), ids["text_id"])}
    if "target" in source.pairs.columns:
        sides["target"] = (_stack(parts.get("target"), dim), ids["target_id"])
    entry = write_shard(out, s, pid, sides)
    write_json((out / shard_name(s)).with_suffix(".json"), {"entry": entry, "rows": len(pid) * len(sides), "skipped": skipped})


def _stack(chunks, dim: int) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)


def _finish(out: Path, n_shards: int, source: PairSource, spec: ModelSpec, dataset: dict, dim: int) -> dict:
    """Merge the shards' skip lists into ``skipped.csv`` and write the manifest."""
    shards, rows = [], []
    for s in range(n_shards):
        side = json.loads((out / shard_name(s)).with_suffix(".json").read_text())
        shards.append(side["entry"])
        rows.extend({"shard": s, "pair_index": i, "side": what, "reason": reason} for i, what, reason in side["skipped"])
    skipped = pd.DataFrame(rows, columns=["shard", "pair_index", "side", "reason"])
    write_frame(out / "skipped.csv", skipped)
    n_skipped_pairs = int(skipped["pair_index"].nunique())
    if n_skipped_pairs:
        log.warning("%s: skipped %d of %d pairs (see skipped.csv)", out, n_skipped_pairs, len(source))
    metadata = {"source": "vlm", "model": asdict(spec), "dataset": dataset, "n_source_pairs": len(source),
                "n_skipped_pairs": n_skipped_pairs,
                "skipped_by_side": {str(k): int(v) for k, v in skipped.groupby("side")["pair_index"].nunique().items()}}
    return write_manifest(out, dim, shards, metadata)
