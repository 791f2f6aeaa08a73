import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from vlsae.store import MANIFEST, EmbeddingStore, StoreWriter


def _write(root, n=1000, d=8, shard=300, seed=0):
    rng = np.random.default_rng(seed)
    img, txt = rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)
    with StoreWriter(root, d, shard_pairs=shard, metadata={"k": 1}) as w:
        for s in range(0, n, 170):  # uneven chunks straddle shard boundaries
            ids = np.arange(s, min(n, s + 170))
            w.add(ids, img[ids], txt[ids], [f"i{i}" for i in ids], [f"t{i}" for i in ids])
    return img, txt


def test_round_trip_and_schema(tmp_path):
    img, txt = _write(tmp_path)
    store = EmbeddingStore(tmp_path / MANIFEST)
    assert (store.dim, store.n_pairs, store.metadata) == (8, 1000, {"k": 1})
    assert [s["n_pairs"] for s in store.manifest["shards"]] == [300, 300, 300, 100]
    table = pq.read_table(tmp_path / "part-00000.parquet")
    assert table.schema.names == ["pair_id", "modality", "embedding", "source_id"]
    assert str(table.schema.field("embedding").type) == "fixed_size_list<element: float>[8]"
    assert set(table["modality"].to_pylist()) == {"image", "text"}
    parts = list(store.iter_shards())
    pid = np.concatenate([p.pair_id for p in parts])
    np.testing.assert_array_equal(pid, np.arange(1000))
    np.testing.assert_array_equal(np.concatenate([p.image for p in parts]), img)
    np.testing.assert_array_equal(np.concatenate([p.text for p in parts]), txt)


def test_batches_keep_pairs_and_shuffle_deterministically(tmp_path):
    img, txt = _write(tmp_path)
    store = EmbeddingStore(tmp_path)
    batches = list(store.iter_batches(128, shuffle=True, seed=3))
    assert [len(b) for b in batches] == [128] * 7 + [104]
    pid = np.concatenate([b.pair_id for b in batches])
    assert sorted(pid) == list(range(1000)) and not np.array_equal(pid, np.arange(1000))
    for b in batches:
        np.testing.assert_array_equal(b.image, img[b.pair_id])
        np.testing.assert_array_equal(b.text, txt[b.pair_id])
    again = np.concatenate([b.pair_id for b in store.iter_batches(128, shuffle=True, seed=3)])
    np.testing.assert_array_equal(pid, again)
    assert len(list(store.iter_batches(128, drop_last=True))) == store.n_batches(128, drop_last=True) == 7


def test_a_store_that_fits_the_cache_is_decoded_once_and_batches_alike(tmp_path, monkeypatch):
    _write(tmp_path)  # 2 x 1000 x 8 float32 = 64,000 bytes
    plain, cached, too_small = (EmbeddingStore(tmp_path, cache_mb=mb) for mb in (0, 64_000 / 2 ** 20, 63_999 / 2 ** 20))
    assert cached.data_bytes == 64_000 and too_small._cache is None and plain._cache is None
    epochs = [[b.pair_id for b in store.iter_batches(128, shuffle=True, seed=e)] for store in (plain, cached) for e in (0, 1)]
    for a, b in zip(epochs[:2], epochs[2:]):
        np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    reads = []
    monkeypatch.setattr(cached, "_table", lambda *args: reads.append(args) or pytest.fail("decoded again"))
    batch = next(cached.iter_batches(1000, shuffle=True, seed=2))
    assert not reads and batch.image.flags.writeable  # shuffled batches are copies the trainer may own
    shard = cached.read_shard(0)
    assert shard is cached.read_shard(0) and not shard.image.flags.writeable  # the cache itself is read-only
    with pytest.raises(ValueError, match="read-only"):
        shard.image[0, 0] = 1.0


def test_rejects_wrong_shapes_and_incomplete_store(tmp_path):
    w = StoreWriter(tmp_path, 4)
    with pytest.raises(ValueError, match=r"text embeddings have shape \(2, 3\)"):
        w.add([0, 1], np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        EmbeddingStore(tmp_path)


def test_exception_mid_write_leaves_no_partial_shard(tmp_path, monkeypatch):
    import vlsae.store as store_mod

    def broken_write(table, where, **kw):
        with open(where, "wb") as f:
            f.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        with StoreWriter(tmp_path, 4, shard_pairs=2) as w:
            w.add([0, 1], np.zeros((2, 4)), np.zeros((2, 4)))
    assert os.listdir(tmp_path) == []


def test_killed_writer_leaves_only_whole_shards(tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np
        from vlsae.store import StoreWriter
        w = StoreWriter({str(tmp_path)!r}, 256, shard_pairs=20000)
        rng = np.random.default_rng(0)
        while True:
            x = rng.normal(size=(20000, 256)).astype("float32")
            w.add(np.arange(20000), x, x)
            print("shard", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "shard"
    time.sleep(0.3)  # kill during a later write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shards = sorted(p for p in os.listdir(tmp_path) if p.startswith("part-"))
    assert shards and MANIFEST not in os.listdir(tmp_path)
    for name in shards:
        assert pq.read_table(tmp_path / name).num_rows == 40000


def test_write_frame_by_suffix(tmp_path):
    import pandas as pd

    from vlsae.atomic import write_frame

    frame = pd.DataFrame({"metric": ["a", "b"], "value": [0.5, 1.5]})
    write_frame(tmp_path / "t.parquet", frame)
    write_frame(tmp_path / "t.csv", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    with pytest.raises(ValueError, match="parquet or .csv"):
        write_frame(tmp_path / "t.json", frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]
