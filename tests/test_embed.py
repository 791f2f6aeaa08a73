"""Real-VLM extraction, run through the real loading path (AutoModel/AutoProcessor from a folder)
on tiny random-weight CLIP and SigLIP models and datasets generated here."""

import io
import json
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from vlsae.embed.encoders import ModelSpec, load_encoder
from vlsae.embed.extract import extract
from vlsae.embed.readers import ImageLoader, read_dataset
from vlsae.embed.templates import IMAGENET_TEMPLATES
from vlsae.embed.toy import TOY_COCO_OPTIONS as COCO_OPTIONS
from vlsae.embed.toy import draw_pair, save_tiny_clip, save_tiny_siglip, toy_corpus, write_toy_coco
from vlsae.store import EmbeddingStore

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_coco(root / "coco", n_images=40, captions_per_image=2, seed=0, corrupt=1, empty=3)
    return {"root": root, "coco": root / "coco", "clip": save_tiny_clip(root / "clip"),
            "siglip": save_tiny_siglip(root / "siglip", toy_corpus(60))}


def _coco(toy):
    return read_dataset("coco", toy["coco"], **COCO_OPTIONS)


def _extract(toy, model, out, **kw):
    spec = ModelSpec(name=model, source=str(toy[model]))
    kw = {"shard_pairs": 24, "batch_size": 8, "workers": 0, "progress": False, **kw}
    return extract(load_encoder(spec, CPU), spec, _coco(toy), out, {"format": "coco"}, **kw)


def _rows(store):
    parts = list(EmbeddingStore(store).iter_shards())
    return (np.concatenate([p.pair_id for p in parts]), np.concatenate([p.image for p in parts]),
            np.concatenate([p.text for p in parts]))


@pytest.mark.parametrize("model", ["clip", "siglip"])
def test_store_rows_are_unit_norm_pairs_of_the_right_image_and_caption(toy, tmp_path, model):
    manifest = _extract(toy, model, tmp_path / "store")
    pid, image, text = _rows(tmp_path / "store")
    assert image.shape == text.shape == (77, 32) and manifest["dim"] == 32
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    # pair i is annotation i: recompute a few rows one at a time, straight from the files
    encoder = load_encoder(ModelSpec(name=model, source=str(toy[model])), CPU)
    annotations = json.loads((toy["coco"] / COCO_OPTIONS["annotations"]).read_text())["annotations"]
    for row in (0, 17, 75):
        ann = annotations[pid[row]]
        im = Image.open(toy["coco"] / "images" / f"{ann['image_id']:08d}.jpg").convert("RGB")
        np.testing.assert_allclose(image[row], encoder.encode_images(encoder.preprocess_images([im]))[0], atol=1e-5)
        np.testing.assert_allclose(text[row], encoder.encode_texts(encoder.tokenize([ann["caption"]]))[0], atol=1e-5)
    table = pq.read_table(tmp_path / "store" / "part-00000.parquet").to_pandas()
    sides = table.pivot(index="pair_id", columns="modality", values="source_id")
    assert all(annotations[i]["image_id"] == int(sides.loc[i, "image"]) for i in sides.index)
    assert all(annotations[i]["id"] == int(sides.loc[i, "text"]) for i in sides.index)


def test_corrupt_image_and_empty_captions_are_skipped_and_counted(toy, tmp_path):
    manifest = _extract(toy, "clip", tmp_path / "store")
    # image 0 is a truncated JPEG (its 2 captions are pairs 0 and 1); captions 0-2 are blank
    assert manifest["metadata"]["n_skipped_pairs"] == 3
    assert manifest["metadata"]["skipped_by_side"] == {"image": 2, "text": 3}
    skipped = pd.read_csv(tmp_path / "store" / "skipped.csv")
    assert set(skipped["pair_index"]) == {0, 1, 2}
    assert skipped.loc[skipped.side == "image", "reason"].str.contains("OSError").all()
    pid, _, _ = _rows(tmp_path / "store")
    assert sorted(pid) == list(range(3, 80)) and manifest["n_pairs"] == 77


def test_reruns_are_identical_and_a_finished_store_is_not_recomputed(toy, tmp_path):
    _extract(toy, "clip", tmp_path / "a")
    _extract(toy, "clip", tmp_path / "b", workers=2, batch_size=8)
    for x, y in zip(_rows(tmp_path / "a"), _rows(tmp_path / "b")):
        np.testing.assert_array_equal(x, y)
    stamp = (tmp_path / "a" / "part-00001.parquet").stat().st_mtime_ns
    _extract(toy, "clip", tmp_path / "a")
    assert (tmp_path / "a" / "part-00001.parquet").stat().st_mtime_ns == stamp


def test_a_folder_of_another_model_is_refused(toy, tmp_path):
    _extract(toy, "clip", tmp_path / "store")
    with pytest.raises(ValueError, match="model"):
        _extract(toy, "siglip", tmp_path / "store")


def test_killed_extraction_resumes_without_duplicate_or_missing_pairs(toy, tmp_path):
    reference = tmp_path / "reference"
    _extract(toy, "clip", reference, shard_pairs=4, batch_size=1)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vlsae.cli", "embed", "--model", json.dumps({"name": "clip", "source": str(toy["clip"])}),
           "--dataset", json.dumps({"format": "coco", "root": str(toy["coco"]), "options": COCO_OPTIONS}),
           "--out", str(out), "--shard-pairs", "4", "--batch-size", "1", "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "part-00003.parquet").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists(), "the run finished before it could be killed"
    written = sorted(p.name for p in out.glob("part-*.parquet"))
    assert 4 <= len(written) < 20
    (out / ".part-00019.abc.tmp.parquet").write_bytes(b"half a shard")  # as if killed mid-write
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid, image, text = _rows(out)
    assert len(set(pid)) == len(pid) == 77
    for x, y in zip((pid, image, text), _rows(reference)):
        np.testing.assert_allclose(x, y, atol=1e-6)
    assert not list(out.glob(".*tmp*")), "no temporary file survives"


def test_imagenet_text_side_is_the_class_prompt_ensemble(toy, tmp_path):
    root = tmp_path / "val"
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n02102040"):
        (root / wnid).mkdir(parents=True)
        for i in range(3):
            draw_pair(rng)[0].save(root / wnid / f"ILSVRC2012_val_{wnid[-2:]}{i}.JPEG")
    (root / "classnames.json").write_text(json.dumps({"n01440764": "tench"}))
    source = read_dataset("imagenet", root, classnames="classnames.json")
    assert len(source) == 6 and len(source.prompts["n01440764"]) == len(IMAGENET_TEMPLATES) == 80
    assert source.prompts["n01440764"][39] == "a photo of a tench." and source.prompts["n02102040"][0] == "a bad photo of a n02102040."
    spec = ModelSpec(name="clip", source=str(toy["clip"]))
    encoder = load_encoder(spec, CPU)
    extract(encoder, spec, source, tmp_path / "store", {"format": "imagenet"}, shard_pairs=4, batch_size=2, workers=0, progress=False)
    pid, _, text = _rows(tmp_path / "store")
    ensemble = torch.nn.functional.normalize(encoder.encode_texts(encoder.tokenize(source.prompts["n01440764"])).mean(0), dim=0)
    np.testing.assert_allclose(text[:3], np.tile(ensemble.numpy(), (3, 1)), atol=1e-5)
    assert not np.allclose(text[3], text[0])


def test_karpathy_split_and_a_missing_image_file(toy, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "val2014").mkdir()
    draw_pair(rng)[0].save(tmp_path / "val2014" / "a.jpg")  # b.jpg is listed but missing
    images = [{"filepath": "val2014", "filename": name, "split": split, "cocoid": i,
               "sentences": [{"raw": f"caption {i}.{j}", "sentid": 10 * i + j} for j in range(2)]}
              for i, (name, split) in enumerate([("a.jpg", "test"), ("b.jpg", "test"), ("c.jpg", "train")])]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images}))
    source = read_dataset("coco", tmp_path, karpathy="dataset_coco.json", split="test")
    assert [t[0] for t in source.pairs["texts"]] == ["caption 0.0", "caption 0.1", "caption 1.0", "caption 1.1"]
    spec = ModelSpec(name="clip", source=str(toy["clip"]))
    manifest = extract(load_encoder(spec, CPU), spec, source, tmp_path / "store", {"format": "coco"}, workers=0, progress=False)
    assert manifest["n_pairs"] == 2 and manifest["metadata"]["skipped_by_side"] == {"image": 2}
    assert pd.read_csv(tmp_path / "store" / "skipped.csv")["reason"].str.startswith("FileNotFoundError").all()


def _jpeg(rng) -> bytes:
    buffer = io.BytesIO()
    draw_pair(rng)[0].save(buffer, format="JPEG")
    return buffer.getvalue()


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_img2dataset_webdataset_tars_and_parquet(tmp_path):
    rng = np.random.default_rng(0)
    images = [_jpeg(rng) for _ in range(4)]
    (tmp_path / "wds").mkdir()
    with tarfile.open(tmp_path / "wds" / "00000.tar", "w") as tar:
        for i, data in enumerate(images):
            _add(tar, f"{i:09d}.jpg", data if i != 2 else b"not a jpeg")
            _add(tar, f"{i:09d}.txt", f"caption {i}".encode())
            _add(tar, f"{i:09d}.json", b"{}")
    source = read_dataset("img2dataset", tmp_path / "wds")
    assert list(source.pairs["texts"]) == [(f"caption {i}",) for i in range(4)]
    loader = ImageLoader()
    assert loader.load(source.pairs["image"][1]).size == (64, 64)
    with pytest.raises(OSError):
        loader.load(source.pairs["image"][2])
    (tmp_path / "pq").mkdir()
    table = pa.table({"key": ["a", "b", "c"], "caption": ["x", None, "z"], "jpg": [images[0], images[1], None]})
    pq.write_table(table, tmp_path / "pq" / "00000.parquet", row_group_size=2)
    source = read_dataset("img2dataset", tmp_path / "pq")
    assert list(source.pairs["image_id"]) == ["00000.parquet/a", "00000.parquet/b", "00000.parquet/c"]
    assert [tuple(r)[2:] for r in source.pairs["image"]] == [(0, 0), (0, 1), (1, 0)]
    assert loader.read_bytes(source.pairs["image"][1]) == images[1] and loader.read_bytes(source.pairs["image"][2]) is None


def test_fashioniq_stores_candidate_caption_and_target(toy, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "captions").mkdir()
    for name in ("B001", "B002", "B003"):
        draw_pair(rng)[0].save(tmp_path / "images" / f"{name}.png")
    triplets = [{"candidate": "B001", "target": "B002", "captions": ["is red", "has a circle"]},
                {"candidate": "B003", "target": "B001", "captions": ["", "is darker"]}]
    (tmp_path / "captions" / "cap.dress.val.json").write_text(json.dumps(triplets))
    source = read_dataset("fashioniq", tmp_path, categories=("dress",))
    spec = ModelSpec(name="clip", source=str(toy["clip"]))
    encoder = load_encoder(spec, CPU)
    extract(encoder, spec, source, tmp_path / "store", {"format": "fashioniq"}, workers=0, progress=False)
    table = pq.read_table(tmp_path / "store" / "part-00000.parquet").to_pandas()
    assert sorted(table.modality) == ["image"] * 2 + ["target"] * 2 + ["text"] * 2
    assert list(table[table.modality == "target"].source_id) == ["B002", "B001"]
    text = np.stack(table[table.modality == "text"].embedding)
    both = encoder.encode_texts(encoder.tokenize(["is red", "has a circle"]))
    np.testing.assert_allclose(text[0], torch.nn.functional.normalize(both.mean(0), dim=0), atol=1e-5)
    np.testing.assert_allclose(text[1], encoder.encode_texts(encoder.tokenize(["is darker"]))[0], atol=1e-5)


def test_bad_dataset_and_model_entries_fail_with_their_name(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format 'laion'"):
        read_dataset("laion", tmp_path)
    with pytest.raises(ValueError, match="bad options"):
        read_dataset("coco", tmp_path, annotation="typo.json")
    with pytest.raises(ValueError, match="needs `pretrained`"):
        ModelSpec(name="oc", source="ViT-B-32", backend="open_clip")
    with pytest.raises(ValueError, match="no pairs"):
        (tmp_path / "empty").mkdir()
        read_dataset("imagenet", tmp_path / "empty")


def test_open_clip_backend_from_a_local_checkpoint(toy, tmp_path):
    """The open_clip path users run (model name + pretrained weights), with a tiny config and random weights."""
    open_clip = pytest.importorskip("open_clip")
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    (tmp_path / "tiny-oc.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "tiny-oc.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-oc").state_dict(), tmp_path / "tiny-oc.pt")
    spec = ModelSpec(name="oc", source="tiny-oc", backend="open_clip", pretrained=str(tmp_path / "tiny-oc.pt"))
    manifest = extract(load_encoder(spec, CPU), spec, _coco(toy), tmp_path / "store", {"format": "coco"},
                       workers=0, progress=False)
    pid, image, text = _rows(tmp_path / "store")
    assert manifest["dim"] == 16 and image.shape == text.shape == (77, 16)
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)


def test_toy_datasets_of_each_layout_read_back_with_their_ground_truth(tmp_path):
    from vlsae.embed.readers import read_coco_concepts
    from vlsae.embed.toy import CONCEPTS, TOY_CONCEPTS, TOY_MARKER, TOY_OPTIONS, write_toy

    for fmt, n, pairs in (("coco", 10, 20), ("imagenet", 36, 36), ("fashioniq", 8, 8)):
        marker = write_toy(fmt, tmp_path / fmt, n, **({"captions_per_image": 2} if fmt == "coco" else {}))
        assert marker.name == TOY_MARKER and json.loads(marker.read_text())["format"] == fmt
        assert len(read_dataset(fmt, tmp_path / fmt, **TOY_OPTIONS[fmt])) == pairs
    # coco: every image has exactly its shape and its colour as concepts, and its captions name both
    names, per_image = read_coco_concepts(tmp_path / "coco", [TOY_CONCEPTS])
    assert names == list(CONCEPTS) and len(per_image) == 10
    captions = read_dataset("coco", tmp_path / "coco", **TOY_OPTIONS["coco"]).pairs
    for image_id, texts in zip(captions["image_id"], captions["texts"]):
        shape, colour = sorted(per_image[image_id], key=lambda c: c not in ("circle", "square", "triangle"))
        assert shape in texts[0] and colour in texts[0]
    # imagenet: 18 colour-shape classes, two images each, named by classnames.json
    source = read_dataset("imagenet", tmp_path / "imagenet", **TOY_OPTIONS["imagenet"])
    assert source.pairs["label"].value_counts().eq(2).all() and len(source.prompts) == 18
    assert source.prompts["red_circle"][0] == IMAGENET_TEMPLATES[0].format("red circle")
    # fashioniq: the caption names the target, which differs from the candidate
    triplets = json.loads((tmp_path / "fashioniq/captions/cap.shapes.val.json").read_text())
    assert all(t["captions"][0].startswith("make it") and t["candidate"] != t["target"] for t in triplets)


def test_meta_clip_2_loads_through_the_transformers_path(toy, tmp_path):
    """HET cites Meta CLIP 2 (facebook/metaclip-2-worldwide-*, model type metaclip_2): a tiny random-weight one saved
    as a Hub-style folder goes through AutoModel / AutoProcessor and the extraction users run."""
    from transformers import CLIPImageProcessor, CLIPProcessor, MetaClip2Config, MetaClip2Model

    clip = toy["clip"]
    processor = CLIPProcessor.from_pretrained(clip)
    vocab = len(processor.tokenizer)
    layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = MetaClip2Config(text_config=dict(**layers, vocab_size=vocab, max_position_embeddings=32,
                                              bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1),
                             vision_config=dict(**layers, image_size=32, patch_size=8), projection_dim=24)
    torch.manual_seed(0)
    MetaClip2Model(config).save_pretrained(tmp_path / "mc2")
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=processor.tokenizer).save_pretrained(tmp_path / "mc2")
    spec = ModelSpec(name="metaclip2", source=str(tmp_path / "mc2"))
    manifest = extract(load_encoder(spec, CPU), spec, _coco(toy), tmp_path / "store", {"format": "coco"},
                       workers=0, progress=False)
    _, image, text = _rows(tmp_path / "store")
    assert manifest["dim"] == 24 and image.shape == text.shape
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
