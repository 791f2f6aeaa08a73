"""Extraction throughput against the model forward alone, and memory while streaming.

    python benchmarks/embed_speed.py                          # ViT-B/32-sized CLIP, batch 256
    python benchmarks/embed_speed.py --images 2048 --workers 0 4 8 --out results/benchmarks/embed_speed.json
    python benchmarks/embed_speed.py --memory 200000           # flat memory over 200k pairs (toy model)

Throughput: a random-weight CLIP with ViT-B/32's shapes (``CLIPConfig()`` defaults: 224 px,
patch 32, 12+12 layers) is saved as a Hub-style folder and loaded through the real path. Images
are JPEGs of COCO's typical size (640 x 480), one caption each, in COCO layout. Reported:

* ``forward``: image + text forward alone on ready tensors (the ceiling);
* ``loading-wN``: the DataLoader alone with N workers (read, decode, preprocess, tokenize): the
  rate a GPU that is never the bottleneck would see;
* ``extract-wN``: ``vlsae.embed.extract`` end to end (read, decode, preprocess, tokenize,
  forward, write) with N DataLoader workers; its ratio to ``forward`` is the data-loading gap;
* ``*-fast-decode``: the same with JPEGs decoded at reduced DCT scale, and the cosine between
  the embeddings with and without it (what the speed costs).

Memory: the toy model embeds ``--memory`` pairs (captions of a few thousand drawn images, so
images are decoded again for every pair) while a thread samples the RSS of the process and its
workers; the peak RSS at each tenth of the run shows whether memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from vlsae.atomic import write_json
from vlsae.device import resolve_device
from vlsae.embed.encoders import ModelSpec, load_encoder
from vlsae.embed.extract import PairBatches, extract
from vlsae.embed.readers import read_dataset
from vlsae.embed.toy import TOY_COCO_OPTIONS as COCO_OPTIONS, save_tiny_clip, write_toy_coco

def save_vit_b32(folder: Path) -> Path:
    """Random weights with ViT-B/32's shapes, and the toy byte-level tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    save_tiny_clip(folder)  # tokenizer and processor files
    tokenizer = CLIPProcessor.from_pretrained(folder).tokenizer
    config = CLIPConfig(text_config={"vocab_size": len(tokenizer), "bos_token_id": len(tokenizer) - 2,
                                     "eos_token_id": len(tokenizer) - 1, "pad_token_id": len(tokenizer) - 1})
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def time_forward(encoder, batch: int, repeats: int) -> float:
    """Images (with their captions) per second through both towers on ready tensors."""
    pixels = torch.randn(batch, 3, 224, 224)
    tokens = encoder.tokenize(["a red circle on a blue background"] * batch)
    encoder.encode_images(pixels), encoder.encode_texts(tokens)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        encoder.encode_images(pixels)
        encoder.encode_texts(tokens)
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return batch / float(np.median(times))


def time_loading(encoder, data: Path, batch: int, workers: int, draft: int | None = None) -> float:
    """Pairs per second read, decoded, preprocessed and tokenized by the DataLoader alone (no model)."""
    source = read_dataset("coco", data, **COCO_OPTIONS)
    batches = [np.arange(s, min(len(source), s + batch)) for s in range(0, len(source), batch)]
    loader = torch.utils.data.DataLoader(PairBatches(source, encoder, batches, draft), batch_size=None, num_workers=workers)
    t = time.perf_counter()
    for _ in loader:
        pass
    return len(source) / (time.perf_counter() - t)


def time_extract(encoder, spec, data: Path, out: Path, batch: int, workers: int, fast_decode: bool = False) -> float:
    source = read_dataset("coco", data, **COCO_OPTIONS)
    t = time.perf_counter()
    extract(encoder, spec, source, out, {"format": "coco"}, shard_pairs=65536, batch_size=batch, workers=workers,
            fast_decode=fast_decode, progress=False)
    return len(source) / (time.perf_counter() - t)


def fast_decode_cosine(store: Path, fast_store: Path) -> dict:
    """Cosine between each image's embedding with full and with reduced-scale JPEG decoding."""
    from vlsae.store import EmbeddingStore

    full, fast = (np.concatenate([b.image for b in EmbeddingStore(s).iter_shards()]) for s in (store, fast_store))
    cos = (full * fast).sum(1)
    return {"mean": float(cos.mean()), "min": float(cos.min())}


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (DataLoader workers), in MB."""
    total = 0
    for p in [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except FileNotFoundError:
            pass
    return total / 2**20


def memory_run(pairs: int, workers: int, tmp: Path) -> dict:
    per_image = 100
    write_toy_coco(tmp / "mem", -(-pairs // per_image), per_image)
    spec = ModelSpec(name="toy-clip", source=str(save_tiny_clip(tmp / "toy-clip")))
    encoder = load_encoder(spec, torch.device("cpu"))
    source = read_dataset("coco", tmp / "mem", **COCO_OPTIONS)
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.perf_counter(), _rss_mb(os.getpid())))
            time.sleep(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    thread.start()
    extract(encoder, spec, source, tmp / "mem-store", {"format": "coco"}, shard_pairs=16384, batch_size=256,
            workers=workers, progress=True)
    done.set()
    thread.join()
    elapsed = time.perf_counter() - start
    deciles = [max((m for t, m in samples if t - start <= elapsed * q / 10), default=0.0) for q in range(1, 11)]
    return {"pairs": len(source), "seconds": elapsed, "pairs_per_s": len(source) / elapsed,
            "peak_rss_mb_by_tenth": [round(m, 1) for m in deciles]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512, help="images (= pairs) in the throughput run")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory", type=int, default=0, help="run the memory benchmark over this many pairs instead")
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    a = p.parse_args()
    device = resolve_device(a.device)
    report = {"device": str(device), "cuda": torch.cuda.get_device_name() if device.type == "cuda" else None,
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.memory:
            report["memory"] = memory_run(a.memory, a.workers[-1], tmp)
        else:
            write_toy_coco(tmp / "data", a.images, 1, size=(640, 480))
            spec = ModelSpec(name="vit-b32-random", source=str(save_vit_b32(tmp / "model")))
            encoder = load_encoder(spec, device, "bf16" if device.type == "cuda" else "fp32")
            rates = {"forward": time_forward(encoder, a.batch, a.repeats)}
            for w in a.workers:
                rates[f"loading-w{w}"] = time_loading(encoder, tmp / "data", a.batch, w)
                rates[f"loading-w{w}-fast-decode"] = time_loading(encoder, tmp / "data", a.batch, w, encoder.image_size)
                rates[f"extract-w{w}"] = time_extract(encoder, spec, tmp / "data", tmp / f"store-w{w}", a.batch, w)
            w = a.workers[-1]
            rates[f"extract-w{w}-fast-decode"] = time_extract(encoder, spec, tmp / "data", tmp / "store-fast", a.batch, w, True)
            report["fast_decode_cosine"] = fast_decode_cosine(tmp / f"store-w{w}", tmp / "store-fast")
            report.update(images=a.images, batch=a.batch, images_per_s=rates,
                          ratio_to_forward={k: v / rates["forward"] for k, v in rates.items()})
    print(json.dumps(report, indent=2))
    if a.out:
        write_json(a.out, report)


if __name__ == "__main__":
    main()
