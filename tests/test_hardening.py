"""What a careless or hostile config, a crash or a second process must never do (README, "Guarantees")."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from vlsae.atomic import atomic_path, write_text
from vlsae.embed.encoders import ModelSpec, load_encoder
from vlsae.embed.extract import extract, store_lock
from vlsae.embed.readers import read_dataset
from vlsae.embed.toy import TOY_COCO_OPTIONS, save_tiny_clip, write_toy_coco
from vlsae.store import EmbeddingStore, StoreError, StoreWriter

CPU = torch.device("cpu")
NASTY = "it's a \"test\"; $(touch PWNED) `touch PWNED` & x"   # a shell would create PWNED in the working directory


def _env():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _toy_zip(tmp_path) -> bytes:
    write_toy_coco(tmp_path / "zipped", n_images=4, captions_per_image=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted((tmp_path / "zipped").rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(tmp_path / "zipped"))
    return buffer.getvalue()


def test_config_values_never_reach_a_shell(repo, tmp_path):
    """Quotes, semicolons, $(...) and backticks in the results folder (so in every path of every job:
    model sources, store folders, logs), a download URL and its unpack folder, and a dataset root:
    the workflow runs, and nothing it was told to `touch` exists afterwards."""
    pwned, nasty = tmp_path / "PWNED", NASTY
    archive = tmp_path / f"archive {nasty}.zip"
    data = _toy_zip(tmp_path)
    archive.write_bytes(data)
    into = f"unpacked {nasty}"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "results": f"results {nasty}",
        "downloads": {"toy-coco": {"url": archive.as_uri(), "md5": hashlib.md5(data).hexdigest(), "into": into}},
        "datasets": {"served": {"format": "coco", "root": into, "download": ["toy-coco"], "options": TOY_COCO_OPTIONS}},
        "models": {"toy-clip": {"toy": "clip", "text_kwargs": {"truncation": "longest_first"}}},
        "embeddings": {"models": ["toy-clip"], "datasets": ["served"], "workers": 0},
        "real_saes": {"enabled": False},
        **{section: {"enabled": False} for section in ("het_theory", "het_fig5", "het_fig6", "iso_toy")},
    }))
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config),
                          "--directory", str(tmp_path), "--snakefile", str(repo / "Snakefile")],
                         cwd=repo, capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    store = tmp_path / f"results {nasty}" / "embeddings/toy-clip/served"
    assert json.loads((store / "manifest.json").read_text())["n_pairs"] == 8
    assert not pwned.exists() and not list(tmp_path.rglob("PWNED")) and not Path(repo, "PWNED").exists()


def test_names_are_constrained(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"models": {"x;touch y": {"toy": "clip"}}}))
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--cores", "1"],
                         cwd=repo, capture_output=True, text=True)
    assert out.returncode != 0 and "x;touch y" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    return save_tiny_clip(root / "clip")


def _embed(clip, coco, out, **kw):
    spec = ModelSpec(name="clip", source=str(clip))
    return extract(load_encoder(spec, CPU), spec, read_dataset("coco", coco, **TOY_COCO_OPTIONS), out, {"format": "coco"},
                   shard_pairs=kw.pop("shard_pairs", 4), batch_size=2, workers=0, progress=False, **kw)


def test_a_shard_of_only_unreadable_pairs_is_written_empty_and_counted(clip, tmp_path):
    # 5 images x 1 caption in shards of 4: the last shard holds one pair, whose JPEG is corrupt
    write_toy_coco(tmp_path / "coco", n_images=5, captions_per_image=1, corrupt=0)
    annotations = tmp_path / "coco" / TOY_COCO_OPTIONS["annotations"]
    last = json.loads(annotations.read_text())["images"][-1]["file_name"]
    (tmp_path / "coco" / TOY_COCO_OPTIONS["images"] / last).write_bytes(b"not a jpeg")
    manifest = _embed(clip, tmp_path / "coco", tmp_path / "store")
    assert [s["n_pairs"] for s in manifest["shards"]] == [4, 0] and manifest["metadata"]["n_skipped_pairs"] == 1
    assert len(EmbeddingStore(tmp_path / "store").read_shard(1)) == 0
    stamp = (tmp_path / "store" / "part-00001.parquet").stat().st_mtime_ns
    _embed(clip, tmp_path / "coco", tmp_path / "store")                    # a rerun keeps the empty shard
    assert (tmp_path / "store" / "part-00001.parquet").stat().st_mtime_ns == stamp


def test_a_caption_of_an_unlisted_image_is_skipped_and_counted(clip, tmp_path):
    write_toy_coco(tmp_path / "coco", n_images=3, captions_per_image=1)
    path = tmp_path / "coco" / TOY_COCO_OPTIONS["annotations"]
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 999, "image_id": 123456, "caption": "a ghost"})
    path.write_text(json.dumps(data))
    manifest = _embed(clip, tmp_path / "coco", tmp_path / "store")
    assert manifest["n_pairs"] == 3 and manifest["metadata"]["skipped_by_side"] == {"image": 1}
    assert "image_id 123456" in (tmp_path / "store" / "skipped.csv").read_text()


def test_skipped_csv_is_byte_identical_between_identical_runs(clip, tmp_path):
    write_toy_coco(tmp_path / "coco", n_images=4, captions_per_image=1)
    first = json.loads((tmp_path / "coco" / TOY_COCO_OPTIONS["annotations"]).read_text())["images"][0]["file_name"]
    (tmp_path / "coco" / TOY_COCO_OPTIONS["images"] / first).write_bytes(b"garbage, not an image")
    _embed(clip, tmp_path / "coco", tmp_path / "a")
    _embed(clip, tmp_path / "coco", tmp_path / "b")
    text = (tmp_path / "a" / "skipped.csv").read_text()
    assert "UnidentifiedImageError" in text and " at 0x" not in text       # no memory address in the reason
    assert (tmp_path / "a" / "skipped.csv").read_bytes() == (tmp_path / "b" / "skipped.csv").read_bytes()


def test_resume_redoes_a_zero_byte_or_half_written_shard(clip, tmp_path):
    write_toy_coco(tmp_path / "coco", n_images=8, captions_per_image=1)
    reference = _embed(clip, tmp_path / "coco", tmp_path / "store")
    store = tmp_path / "store"
    (store / "manifest.json").unlink()                                     # as if killed before the manifest
    (store / "part-00000.parquet").write_bytes(b"")                        # a zero-byte shard
    data = (store / "part-00001.parquet").read_bytes()
    (store / "part-00001.parquet").write_bytes(data[: len(data) // 2])     # a half-written one
    again = _embed(clip, tmp_path / "coco", store)
    assert again["shards"] == reference["shards"]                          # same bytes, same hashes
    EmbeddingStore(store).verify()


def test_a_second_writer_of_a_store_refuses(clip, tmp_path):
    write_toy_coco(tmp_path / "coco", n_images=2, captions_per_image=1)
    with store_lock(tmp_path / "store"):
        with pytest.raises(ValueError, match="being written by another vlsae embed"):
            _embed(clip, tmp_path / "coco", tmp_path / "store")
    _embed(clip, tmp_path / "coco", tmp_path / "store")                    # free again once the holder is done


def _three_shards(root) -> Path:
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with StoreWriter(root, 4, shard_pairs=10) as w:
        w.add(np.arange(30), x, x)
    return Path(root)


@pytest.mark.parametrize("damage, message", [
    (lambda s: (s / "part-00001.parquet").unlink(), "part-00001.parquet: missing"),
    (lambda s: shutil.copy(s / "part-00000.parquet", s / "part-00001.parquet"), "part-00001.parquet"),
    (lambda s: _swap(s / "part-00000.parquet", s / "part-00002.parquet"), "part-0000"),
    (lambda s: _truncate(s / "part-00002.parquet"), "part-00002.parquet"),
    (lambda s: _flip_a_bit(s / "part-00001.parquet"), "part-00001.parquet"),
    (lambda s: _edit_manifest(s, lambda m: m.update(n_pairs=31)), "n_pairs = 31"),
    (lambda s: _edit_manifest(s, lambda m: m.update(n_pairs=40, shards=m["shards"] + m["shards"][:1])), "listed twice"),
], ids=["dropped", "duplicated", "swapped", "truncated", "bit-flipped", "inflated", "listed-twice"])
def test_a_damaged_store_is_an_error_naming_the_shard(tmp_path, damage, message):
    store = _three_shards(tmp_path / "store")
    EmbeddingStore(store).verify()
    damage(store)
    with pytest.raises(StoreError, match=message):
        EmbeddingStore(store).verify()


def _swap(a, b):
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_manifest(store, edit):
    manifest = json.loads((store / "manifest.json").read_text())
    edit(manifest)
    (store / "manifest.json").write_text(json.dumps(manifest))


def test_verify_store_cli_names_the_shard_in_one_line(tmp_path):
    store = _three_shards(tmp_path / "store")
    ok = subprocess.run([sys.executable, "-m", "vlsae.cli", "verify-store", "--data", str(store), "--out",
                         str(store / "verified.json")], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads((store / "verified.json").read_text())["hashed"] == 3
    _flip_a_bit(store / "part-00002.parquet")
    bad = subprocess.run([sys.executable, "-m", "vlsae.cli", "verify-store", "--data", str(store)], capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "part-00002.parquet" in bad.stderr and "Traceback" not in bad.stderr


def test_published_files_are_fsynced_and_group_readable(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    old = os.umask(0o002)
    try:
        write_text(tmp_path / "out.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o664 and len(synced) >= 2   # the file, then its folder
    with atomic_path(tmp_path / "table.parquet") as tmp:
        pq.write_table(pq.read_table(_three_shards(tmp_path / "s") / "part-00000.parquet"), tmp)
    assert (tmp_path / "table.parquet").stat().st_mode & 0o044 == 0o044


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "x", "--out", "a", "--training", '{"epochs": 0}'], "training.epochs must be >= 1"),
    (["train", "--data", "x", "--out", "a", "--training", '{"batch_size": -4}'], "training.batch_size must be >= 1"),
    (["synth-het", "--out", "x", "--n-train", "-5"], "--n-train: must be >= 1"),
    (["embed", "--model", "{}", "--dataset", "{}", "--out", "x", "--workers", "-1"], "--workers: must be >= 0"),
    (["align", "--data", "x", "--model", "a", "--model", "b", "--out", "o", "--out", "o"], "--out given twice"),
])
def test_cli_rejects_bad_sizes_in_one_line(tmp_path, args, message):
    store = _three_shards(tmp_path / "store")
    args = [str(store) if a == "x" and args[0] in ("train", "align") else a for a in args]
    out = subprocess.run([sys.executable, "-m", "vlsae.cli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_align_and_evaluation_memory_grow_no_faster_than_declared(tmp_path):
    """Peak RSS of `vlsae align` and `vlsae eval-saes` at two sizes: the growth per m^2 stays within the
    bytes per latent pair that the rules declare (design.ALIGN_BYTES_PER_PAIR, EVALUATE_BYTES_PER_PAIR)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from metrics_memory import make_store, peak_rss_mb

    from vlsae import design
    from vlsae.sae import PairedSAE, SAESpec

    store = make_store(tmp_path / "store", 6000, 64)
    peaks = {}
    for m in (512, 3072):
        run = tmp_path / f"m{m}"
        PairedSAE(SAESpec(latents=m, params={"k": 8}), 64).save(run)
        cli = [sys.executable, "-m", "vlsae.cli"]
        peaks[m] = (peak_rss_mb([*cli, "align", "--model", str(run), "--data", str(store), "--out", str(run / "a.npz")]),
                    peak_rss_mb([*cli, "eval-saes", "--data", str(store), "--run", "s", "0", str(run), "--options",
                                 json.dumps({"sample_pairs": 500, "retrieval_pairs": 1000}), "--out", str(run / "m.parquet")]))
    growth = [(peaks[3072][i] - peaks[512][i]) * 2 ** 20 / (3072 ** 2 - 512 ** 2) for i in (0, 1)]
    assert growth[0] <= design.ALIGN_BYTES_PER_PAIR and growth[1] <= design.EVALUATE_BYTES_PER_PAIR, growth
