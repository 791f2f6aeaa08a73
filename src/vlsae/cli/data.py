"""Stores: the synthetic datasets, the toy VLMs, real embeddings, downloads and store verification."""

from __future__ import annotations

from pathlib import Path

from .args import DEVICE, DGP_SIZES, NON_NEGATIVE, POSITIVE, arg, command, json_object, log

DATASET_OUT = arg("--out", required=True, type=Path, help="dataset folder (train/, eval/, ground_truth.npz)")


def _progress(split: str, done: int, total: int) -> None:
    log.info("%s: %d/%d pairs", split, done, total)


@command("synth-het", "write a HET synthetic dataset (HET E.2) to the store", DATASET_OUT,
         arg("--dgp", type=json_object, default={}, help="HetDGP fields as JSON, e.g. '{\"d\": 64, \"alpha\": 0.5}'"),
         arg("--n-eval", type=POSITIVE, default=10_000), *DGP_SIZES)
def synth_het(a) -> None:
    from ..strict import from_dict
    from ..synth.het import HetDGP, write_het_dataset

    write_het_dataset(from_dict(HetDGP, a.dgp, "DGP"), a.out, a.n_train, a.n_eval, a.seed, a.shard_pairs, progress=_progress)


@command("synth-iso", "write an ISO toy dataset (ISO App. C.1) to the store", DATASET_OUT,
         arg("--dgp", type=json_object, default={}, help="IsoDGP fields as JSON, e.g. '{\"tau1\": 0.999, \"tau2\": 0.4}'"),
         arg("--n-eval", type=POSITIVE, default=5_000), *DGP_SIZES)
def synth_iso(a) -> None:
    from ..strict import from_dict
    from ..synth.iso import IsoDGP, write_iso_dataset

    write_iso_dataset(from_dict(IsoDGP, a.dgp, "DGP"), a.out, a.n_train, a.n_eval, a.seed, a.shard_pairs, progress=_progress)


@command("toy-vlm", "write the toy image-caption dataset and tiny random-weight CLIP/SigLIP folders",
         arg("--dataset", type=Path, help="toy dataset folder to write"),
         arg("--format", default="coco", choices=["coco", "imagenet", "fashioniq"], help="layout of the toy dataset"),
         arg("--n-images", type=POSITIVE, default=256),
         arg("--captions-per-image", type=POSITIVE, default=2, help="coco only"),
         arg("--corrupt", type=NON_NEGATIVE, default=0, help="coco only: how many images to write as truncated JPEGs"),
         arg("--empty", type=NON_NEGATIVE, default=0, help="coco only: how many captions to leave blank"),
         arg("--clip", type=Path, help="folder for a tiny CLIPModel + processor"),
         arg("--siglip", type=Path, help="folder for a tiny SiglipModel + processor"),
         arg("--seed", type=NON_NEGATIVE, default=0))
def toy_vlm(a) -> None:
    from ..embed.toy import save_tiny_clip, save_tiny_siglip, toy_corpus, write_toy

    if a.dataset:
        coco = dict(captions_per_image=a.captions_per_image, corrupt=a.corrupt, empty=a.empty) if a.format == "coco" else {}
        write_toy(a.format, a.dataset, a.n_images, a.seed, **coco)
    if a.clip:
        save_tiny_clip(a.clip, seed=a.seed)
    if a.siglip:
        save_tiny_siglip(a.siglip, toy_corpus(seed=a.seed), seed=a.seed)


@command("embed", "extract paired VLM embeddings into the store (resumable, shard by shard)",
         arg("--model", required=True, type=json_object,
             help="ModelSpec as JSON: name, source (Hub id, folder or open_clip name), backend, pretrained"),
         arg("--dataset", required=True, type=json_object,
             help="JSON {format: coco|imagenet|img2dataset|fashioniq, root: FOLDER, options: {...}}"),
         arg("--out", required=True, type=Path, help="store folder"),
         arg("--shard-pairs", type=POSITIVE, default=65_536),
         arg("--batch-size", type=POSITIVE, default=256),
         arg("--workers", type=NON_NEGATIVE, default=4, help="DataLoader workers that decode and preprocess images"),
         arg("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
             help="autocast dtype (auto: bf16 on cuda, fp32 on cpu)"),
         arg("--fast-decode", action="store_true",
             help="decode JPEGs at reduced DCT scale, never below the model's input size (faster, slightly different pixels)"),
         DEVICE)
def embed(a) -> None:
    from ..device import autocast_precision, resolve_device
    from ..embed.encoders import ModelSpec, load_encoder
    from ..embed.extract import extract
    from ..embed.readers import read_dataset
    from ..strict import from_dict

    spec = from_dict(ModelSpec, a.model, "model")
    dataset = {"format": a.dataset.get("format"), "root": a.dataset.get("root"), "options": a.dataset.get("options", {})}
    unknown = sorted(set(a.dataset) - set(dataset))
    if unknown or not dataset["format"] or not dataset["root"]:
        raise ValueError(f"--dataset needs format and root (and optional options); unknown keys: {unknown}")
    device = resolve_device(a.device)
    precision = autocast_precision(a.precision, device)
    source = read_dataset(dataset["format"], dataset["root"], **dataset["options"])
    log.info("%s: %d pairs from %s; model %s on %s (%s)", dataset["format"], len(source), dataset["root"], spec.source,
             device, precision)
    manifest = extract(load_encoder(spec, device, precision), spec, source, a.out, dataset, shard_pairs=a.shard_pairs,
                       batch_size=a.batch_size, workers=a.workers, fast_decode=a.fast_decode)
    log.info("wrote %d pairs (%d skipped) to %s", manifest["n_pairs"], manifest["metadata"]["n_skipped_pairs"], a.out)


@command("download", "fetch an archive with an MD5 check, resuming a partial download",
         arg("--url", required=True), arg("--md5", default=None, help="expected MD5 (without it, the computed one is logged)"),
         arg("--out", required=True, type=Path))
def download(a) -> None:
    from ..embed.download import fetch, free_gb

    log.info("fetching %s (%.0f GB free in %s)", a.url, free_gb(a.out.parent), a.out.parent)
    fetch(a.url, a.out, a.md5)


@command("unpack", "extract a zip or tar archive, then write a marker file",
         arg("--archive", required=True, type=Path), arg("--into", required=True, type=Path),
         arg("--marker", required=True, type=Path))
def unpack(a) -> None:
    from ..embed.download import unpack

    unpack(a.archive, a.into, a.marker)


@command("verify-store", "check a store against its manifest: counts, id ranges, sizes, SHA-256 of every shard",
         arg("--data", required=True, type=Path, help="store folder (or its manifest.json)"),
         arg("--out", type=Path, help="write the summary here (JSON) when the store is whole"))
def verify_store(a) -> None:
    from ..atomic import write_json
    from ..store import EmbeddingStore

    summary = EmbeddingStore(a.data).verify(progress=lambda done, total: log.info("%d/%d shards verified", done, total))
    log.info("%s: %d pairs in %d shards, all %d hashes match", summary["store"], summary["n_pairs"], summary["shards"],
             summary["hashed"])
    if a.out:
        write_json(a.out, summary)
