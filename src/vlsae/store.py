"""Sharded Parquet embedding store.

One store is a folder of shards ``part-NNNNN.parquet`` plus ``manifest.json``. Every shard
holds both rows of each of its pairs, so a paired batch never spans two files. Row schema:

==========  ====================================  =========================================
column      type                                  meaning
==========  ====================================  =========================================
pair_id     int64                                 index of the (image, text) pair
modality    string (``image`` or ``text``)        which side of the pair the row embeds
embedding   fixed_size_list<float32>[dim]         the embedding
source_id   string                                where it came from (file name, caption id)
==========  ====================================  =========================================

Shards are written atomically (temp file, fsync, then rename) and the manifest last, so a store
with a manifest is complete and a crashed write leaves only whole shards behind. Readers
stream shard by shard and never hold more than one shard (plus one batch) in memory, unless the
whole store fits a ``cache_mb`` the reader grants: then each shard is decoded once and kept (training
reads a small store hundreds of times; decoding an ISO toy store's Parquet cost 0.14 s per epoch).

The store verifies itself. The manifest records, per shard, its pair count, the range of its
pair ids, its size in bytes and its SHA-256. Opening a store checks that the shards' counts add
up to ``n_pairs``, that no shard is listed twice or overlaps another's ids, and that every file
exists with its recorded size; reading a shard checks its rows and id range. :meth:`EmbeddingStore.verify`
(``vlsae verify-store``) also checks every hash and reads every shard. Each failure is a
:class:`StoreError` that names the shard.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json

MANIFEST = "manifest.json"
TRAINING_CACHE_MB = 1024  # the cache ``vlsae train`` grants its store (declared in the training rules' memory)
FORMAT = "vlsae-embeddings/2"
FORMATS = ("vlsae-embeddings/1", FORMAT)  # /1: shards without size, hash and id range (checked where recorded)
MODALITIES = ("image", "text")


class StoreError(ValueError):
    """A store that does not match its manifest; the message names the store and the shard."""


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def arrow_schema(dim: int) -> pa.Schema:
    """The Parquet schema of a store whose embeddings have ``dim`` components."""
    return pa.schema(
        [
            ("pair_id", pa.int64()),
            ("modality", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
            ("source_id", pa.string()),
        ]
    )


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_shard(root: Path, index: int, pair_id: np.ndarray, sides: dict[str, tuple[np.ndarray, Sequence[str]]]) -> dict:
    """Atomically write shard ``index``: for each side, one row per pair (``n x dim`` embeddings, source ids).

    Sides beyond ``image`` and ``text`` (FashionIQ's ``target``) ride along under their own
    ``modality`` value; readers of pairs ignore them. Returns the manifest entry of the shard.
    """
    n = len(pair_id)
    names = list(sides)
    emb = np.concatenate([np.asarray(sides[m][0], dtype=np.float32) for m in names])  # (sides x n) x dim, n may be 0
    dim = emb.shape[1]
    table = pa.table(
        {
            "pair_id": np.tile(np.asarray(pair_id, dtype=np.int64), len(names)),
            "modality": [m for m in names for _ in range(n)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), dim),
            "source_id": [str(x) for m in names for x in sides[m][1]],
        },
        schema=arrow_schema(dim),
    )
    name = shard_name(index)
    with atomic_path(root / name) as tmp:
        pq.write_table(table, tmp, compression="zstd")
        entry = {"file": name, "n_pairs": n, "pair_ids": [int(pair_id.min()), int(pair_id.max())] if n else [],
                 "bytes": tmp.stat().st_size, "sha256": file_digest(tmp)}
    return entry


def write_manifest(root: Path, dim: int, shards: list[dict], metadata: dict) -> dict:
    """Write the manifest last: its presence marks the store complete."""
    manifest = {
        "format": FORMAT,
        "dim": int(dim),
        "n_pairs": sum(s["n_pairs"] for s in shards),
        "shards": shards,
        "metadata": metadata,
    }
    write_json(Path(root) / MANIFEST, manifest)
    return manifest


@dataclass
class PairBatch:
    """Paired embeddings: row i of ``image`` and row i of ``text`` belong to ``pair_id[i]``."""

    pair_id: np.ndarray
    image: np.ndarray
    text: np.ndarray

    def __len__(self) -> int:
        return len(self.pair_id)


class StoreWriter:
    """Buffer pairs and flush them to atomic shards of ``shard_pairs`` pairs.

    Use as a context manager; the manifest is written only when the block exits cleanly.
    """

    def __init__(self, root: str | Path, dim: int, shard_pairs: int = 65536, metadata: dict | None = None):
        if shard_pairs < 1:
            raise ValueError(f"shard_pairs must be >= 1, got {shard_pairs}")
        self.root = Path(root)
        self.dim = int(dim)
        self.shard_pairs = int(shard_pairs)
        self.metadata = dict(metadata or {})
        self._buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]] = []
        self._buffered = 0
        self._shards: list[dict] = []
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MANIFEST).unlink(missing_ok=True)

    def add(
        self,
        pair_id: np.ndarray,
        image: np.ndarray,
        text: np.ndarray,
        image_source: Sequence[str] | None = None,
        text_source: Sequence[str] | None = None,
    ) -> None:
        """Queue paired embeddings (``n x dim`` each) with optional per-side source ids."""
        pair_id = np.asarray(pair_id, dtype=np.int64)
        image = np.asarray(image, dtype=np.float32)
        text = np.asarray(text, dtype=np.float32)
        n = len(pair_id)
        for name, arr in (("image", image), ("text", text)):
            if arr.shape != (n, self.dim):
                raise ValueError(f"{name} embeddings have shape {arr.shape}, expected ({n}, {self.dim})")
        image_source = list(image_source) if image_source is not None else [""] * n
        text_source = list(text_source) if text_source is not None else [""] * n
        start = 0
        while start < n:
            take = min(n - start, self.shard_pairs - self._buffered)
            sl = slice(start, start + take)
            self._buffer.append((pair_id[sl], image[sl], text[sl], image_source[sl], text_source[sl]))
            self._buffered += take
            start += take
            if self._buffered == self.shard_pairs:
                self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        pid = np.concatenate([b[0] for b in self._buffer])
        sides = {
            "image": (np.concatenate([b[1] for b in self._buffer]), [s for b in self._buffer for s in b[3]]),
            "text": (np.concatenate([b[2] for b in self._buffer]), [s for b in self._buffer for s in b[4]]),
        }
        self._shards.append(write_shard(self.root, len(self._shards), pid, sides))
        self._buffer, self._buffered = [], 0

    def close(self) -> dict:
        """Flush the last shard and write the manifest; return the manifest."""
        self._flush()
        return write_manifest(self.root, self.dim, self._shards, self.metadata)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


class EmbeddingStore:
    """Read-only view of a complete store (one with a manifest), checked against it on opening."""

    def __init__(self, root: str | Path, cache_mb: float = 0):
        self.root = Path(root)
        if self.root.name == MANIFEST:
            self.root = self.root.parent
        path = self.root / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{self.root} is not a complete embedding store: {MANIFEST} is missing")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format") not in FORMATS:
            raise ValueError(f"{path}: unknown store format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        self.dim: int = self.manifest["dim"]
        self.n_pairs: int = self.manifest["n_pairs"]
        self.metadata: dict = self.manifest.get("metadata", {})
        self._check_manifest()
        # decoded shards, kept (read-only) only when all of them fit cache_mb: all or nothing, so a large store
        # streams exactly as without a cache
        self._cache: dict[int, PairBatch] | None = {} if self.data_bytes <= cache_mb * 2 ** 20 else None

    @property
    def data_bytes(self) -> int:
        """Bytes of the decoded image and text embeddings (``2 x n_pairs x dim`` float32)."""
        return 2 * self.n_pairs * self.dim * 4

    def _error(self, shard: dict | None, message: str) -> StoreError:
        return StoreError(f"{self.root}: {'shard ' + shard['file'] + ': ' if shard else ''}{message}")

    def _check_manifest(self) -> None:
        """The cheap checks: counts add up, no shard twice or overlapping, every file present at its size."""
        shards = self.manifest["shards"]
        held = sum(s["n_pairs"] for s in shards)
        if held != self.n_pairs:
            raise self._error(None, f"the manifest says n_pairs = {self.n_pairs}, its shards hold {held}")
        seen, last = set(), None
        for shard in shards:
            if shard["file"] in seen:
                raise self._error(shard, "listed twice in the manifest")
            seen.add(shard["file"])
            file = self.root / shard["file"]
            if not file.exists():
                raise self._error(shard, "missing")
            if "bytes" in shard and file.stat().st_size != shard["bytes"]:
                raise self._error(shard, f"{file.stat().st_size} bytes, the manifest says {shard['bytes']} "
                                         "(truncated or replaced)")
            ids = shard.get("pair_ids")
            if ids:
                if last is not None and ids[0] <= last:
                    raise self._error(shard, f"pair ids from {ids[0]} overlap the previous shard's (up to {last})")
                last = ids[1]

    def verify(self, progress=None) -> dict:
        """Every check: each shard's SHA-256 and its rows and ids, read back. Returns a summary."""
        for i, shard in enumerate(self.manifest["shards"]):
            if "sha256" in shard and file_digest(self.root / shard["file"]) != shard["sha256"]:
                raise self._error(shard, "content differs from its recorded SHA-256 (corrupted or replaced)")
            self.read_shard(i)
            if progress:
                progress(i + 1, len(self.manifest["shards"]))
        return {"store": str(self.root), "format": self.manifest["format"], "n_pairs": self.n_pairs,
                "shards": len(self.manifest["shards"]),
                "hashed": sum("sha256" in s for s in self.manifest["shards"]),
                "manifest_sha256": file_digest(self.root / MANIFEST)}

    def __len__(self) -> int:
        return self.n_pairs

    def _table(self, shard: dict, columns: list[str], modality: str | None = None) -> pa.Table:
        """Columns of one shard (only ``modality``'s rows, if given); a read failure names the shard."""
        try:
            return pq.read_table(self.root / shard["file"], columns=columns,
                                 filters=[("modality", "=", modality)] if modality else None)
        except Exception as e:  # a truncated or garbled Parquet file
            raise self._error(shard, f"unreadable ({type(e).__name__}: {e})") from e

    def read_shard(self, index: int) -> PairBatch:
        """Load one shard as aligned image and text arrays, checked against its manifest entry (from the cache,
        read-only, where the store has one)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        shard = self.manifest["shards"][index]
        table = self._table(shard, ["pair_id", "modality", "embedding"])
        pid = table["pair_id"].to_numpy()
        modality = table["modality"].to_numpy(zero_copy_only=False)
        emb = table["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, self.dim)
        sides = {}
        for m in MODALITIES:
            mask = modality == m
            order = np.argsort(pid[mask], kind="stable")
            sides[m] = (pid[mask][order], emb[mask][order])
            if len(order) != shard["n_pairs"]:
                raise self._error(shard, f"{len(order)} {m} rows, the manifest says {shard['n_pairs']} pairs")
        if not np.array_equal(sides["image"][0], sides["text"][0]):
            raise self._error(shard, "image and text rows do not pair up by pair_id")
        ids = shard.get("pair_ids")
        if ids and len(pid) and [int(sides["image"][0][0]), int(sides["image"][0][-1])] != ids:
            raise self._error(shard, f"pair ids {int(sides['image'][0][0])}..{int(sides['image'][0][-1])}, the manifest "
                                     f"says {ids[0]}..{ids[1]} (swapped or replaced)")
        batch = PairBatch(sides["image"][0], sides["image"][1], sides["text"][1])
        if self._cache is not None:
            for array in (batch.pair_id, batch.image, batch.text):
                array.setflags(write=False)
            self._cache[index] = batch
        return batch

    def source_ids(self, modality: str) -> np.ndarray:
        """``source_id`` of every pair's ``modality`` row, in pair order (e.g. image files, ImageNet labels)."""
        parts = []
        for shard in self.manifest["shards"]:
            table = self._table(shard, ["pair_id", "modality", "source_id"], modality)
            order = np.argsort(table["pair_id"].to_numpy(), kind="stable")
            parts.append(table["source_id"].to_numpy(zero_copy_only=False)[order])
        return np.concatenate(parts) if parts else np.array([], dtype=object)

    def head_of_side(self, modality: str, n: int) -> np.ndarray:
        """Embeddings of the first ``n`` pairs' ``modality`` rows (any side, FashionIQ's ``target`` too),
        in pair order; reads shards only until ``n`` rows are found."""
        parts, found = [], 0
        for shard in self.manifest["shards"]:
            if found >= n:
                break
            table = self._table(shard, ["pair_id", "embedding"], modality)
            order = np.argsort(table["pair_id"].to_numpy(), kind="stable")
            parts.append(table["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, self.dim)[order])
            found += len(order)
        if not found:
            raise ValueError(f"{self.root}: no {modality!r} rows")
        return np.concatenate(parts)[:n]

    def iter_shards(self) -> Iterator[PairBatch]:
        for i in range(len(self.manifest["shards"])):
            yield self.read_shard(i)

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> Iterator[PairBatch]:
        """Stream paired batches.

        With ``shuffle``, shard order and row order within each shard are permuted by a
        generator seeded with ``seed`` (pass ``seed + epoch`` for a fresh order per epoch).
        Memory holds one shard plus one batch.
        """
        rng = np.random.default_rng(seed)
        shard_order = rng.permutation(len(self.manifest["shards"])) if shuffle else range(len(self.manifest["shards"]))
        carry: PairBatch | None = None
        for s in shard_order:
            part = self.read_shard(int(s))
            if shuffle:
                perm = rng.permutation(len(part))
                part = PairBatch(part.pair_id[perm], part.image[perm], part.text[perm])
            if carry is not None:
                part = _concat([carry, part])
                carry = None
            n_full = len(part) // batch_size * batch_size
            for start in range(0, n_full, batch_size):
                sl = slice(start, start + batch_size)
                yield PairBatch(part.pair_id[sl], part.image[sl], part.text[sl])
            if n_full < len(part):
                carry = PairBatch(part.pair_id[n_full:], part.image[n_full:], part.text[n_full:])
        if carry is not None and not drop_last:
            yield carry

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return self.n_pairs // batch_size if drop_last else -(-self.n_pairs // batch_size)


def _concat(parts: list[PairBatch]) -> PairBatch:
    return PairBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pair_id", "image", "text")))
