"""Dataset readers: turn the layouts users already have into a table of image-caption pairs.

Every reader returns a ``PairSource``: a deterministic, ordered table with one row per pair,

==========  ==================================================================================
column      meaning
==========  ==================================================================================
image       ``ImageRef`` of the image (a file, a member of a tar, or a row of a Parquet file)
texts       tuple of captions whose embeddings are averaged (one for COCO and img2dataset,
            the relative captions for FashionIQ); absent when ``prompts`` is set
label       class key into ``prompts`` (ImageNet); the text side is that class's prompt ensemble
image_id    source id written beside the image embedding
text_id     source id written beside the text embedding
target      FashionIQ only: ``ImageRef`` of the target image, stored as a third ``target`` side
target_id   FashionIQ only: the target image's id
==========  ==================================================================================

Only references are held: images are decoded later, in DataLoader workers, so a table of
millions of pairs costs a few hundred bytes per pair. Layouts are documented in README.md
("Real embeddings").
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd

from .templates import IMAGENET_TEMPLATES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class ImageRef(NamedTuple):
    """Where an image's bytes live. ``kind``: ``file``; ``tar`` (byte ``offset``, ``size``); ``parquet`` (row group ``offset``, row ``size``)."""

    kind: str
    path: str
    offset: int = 0
    size: int = 0


def missing_image(reason: str) -> ImageRef:
    """A reference to no image: loading it raises ``reason``, so the pair is skipped and counted."""
    return ImageRef("missing", reason)


@dataclass
class PairSource:
    pairs: pd.DataFrame
    prompts: dict[str, list[str]] | None = None

    def __len__(self) -> int:
        return len(self.pairs)


class ImageLoader:
    """Read ``ImageRef`` bytes; keeps the last Parquet row group so in-order reads decode each group once."""

    def __init__(self):
        self._group_key = None
        self._group = None

    def read_bytes(self, ref: ImageRef) -> bytes | None:
        if ref.kind == "missing":
            raise FileNotFoundError(ref.path)
        if ref.kind == "file":
            return Path(ref.path).read_bytes()
        if ref.kind == "tar":
            with open(ref.path, "rb") as f:
                f.seek(ref.offset)
                return f.read(ref.size)
        if ref.kind == "parquet":
            import pyarrow.parquet as pq

            key = (ref.path, ref.offset)
            if self._group_key != key:
                pf = pq.ParquetFile(ref.path)
                column = _parquet_image_column(pf.schema_arrow.names, ref.path)
                self._group = pf.read_row_group(ref.offset, columns=[column]).column(0).to_pylist()
                self._group_key = key
            return self._group[ref.size]
        raise ValueError(f"unknown image reference kind {ref.kind!r}")

    def load(self, ref: ImageRef, draft: int | None = None):
        """The decoded RGB image; raises ``OSError``/``ValueError`` for missing or corrupt data.

        With ``draft``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
        both sides >= ``draft`` pixels: several times faster, and slightly different pixels.
        """
        from PIL import Image

        data = self.read_bytes(ref)
        if not data:
            raise ValueError("no image bytes")
        with Image.open(io.BytesIO(data)) as im:
            if draft:
                im.draft("RGB", (draft, draft))
            return im.convert("RGB")


def _parquet_image_column(names, path) -> str:
    for name in ("jpg", "png", "webp", "image"):
        if name in names:
            return name
    raise ValueError(f"{path}: no image column (jpg, png, webp or image) among {names}")


def _table(rows: list[dict], what: str) -> pd.DataFrame:
    if not rows:
        raise ValueError(f"{what}: no pairs found")
    return pd.DataFrame(rows)


def read_coco(root: str | Path, annotations: str = "annotations/captions_train2017.json", images: str = "train2017",
              karpathy: str | None = None, split: str = "test") -> PairSource:
    """COCO captions, one pair per caption, in annotation-id order. A caption whose ``image_id`` the
    annotations do not list becomes a pair without an image, skipped and counted at extraction.

    Default layout: ``root/annotations/captions_train2017.json`` and ``root/train2017/*.jpg``.
    With ``karpathy`` (e.g. ``dataset_coco.json`` of Karpathy and Fei-Fei), pairs come from
    its ``split`` (``test``: 5k images, 25k captions) and images from ``root/<filepath>/<filename>``.
    """
    root = Path(root)
    rows = []
    if karpathy:
        data = json.loads((root / karpathy).read_text())
        for im in data["images"]:
            if im["split"] != split:
                continue
            ref = ImageRef("file", str(root / im.get("filepath", "") / im["filename"]))
            for sent in im["sentences"]:
                rows.append({"image": ref, "texts": (sent["raw"],), "image_id": str(im.get("cocoid", im["filename"])),
                             "text_id": str(sent["sentid"])})
        return PairSource(_table(rows, f"{root / karpathy} split {split!r}"))
    data = json.loads((root / annotations).read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        name = files.get(ann["image_id"])
        image = (ImageRef("file", str(root / images / name)) if name is not None else
                 missing_image(f"caption {ann['id']} names image_id {ann['image_id']}, which the annotations do not list"))
        rows.append({"image": image, "texts": (ann["caption"],), "image_id": str(ann["image_id"]), "text_id": str(ann["id"])})
    return PairSource(_table(rows, str(root / annotations)))


def read_coco_concepts(root: str | Path, files: list[str]) -> tuple[list[str], dict[str, set[str]]]:
    """COCO object categories per image from instance files (``annotations/instances_*.json``),
    pooled: the category names in id order, and ``str(image_id) -> {names}`` (HET Fig. 7)."""
    names, per_image = {}, {}
    for file in files:
        data = json.loads((Path(root) / file).read_text())
        names.update({c["id"]: c["name"] for c in data["categories"]})
        for ann in data["annotations"]:
            per_image.setdefault(str(ann["image_id"]), set()).add(ann["category_id"])
    return [names[i] for i in sorted(names)], {k: {names[c] for c in v} for k, v in per_image.items()}


def read_imagenet(root: str | Path, classnames: str | None = None) -> PairSource:
    """ImageNet val as class folders ``root/<wnid>/*.JPEG``; the text side is the class's prompt ensemble.

    ``classnames`` is a JSON file mapping each folder name to its readable class name (CLIP's
    curated names, for example); without it the folder name, with underscores as spaces, is used.
    Each class gets the 80 templates of ``IMAGENET_TEMPLATES``.
    """
    root = Path(root)
    names = json.loads((root / classnames).read_text()) if classnames else {}
    rows, prompts = [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder.name
        name = names.get(label, label.replace("_", " "))
        prompts[label] = [t.format(name) for t in IMAGENET_TEMPLATES]
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rows.append({"image": ImageRef("file", str(path)), "label": label, "image_id": f"{label}/{path.name}",
                             "text_id": label})
    return PairSource(_table(rows, str(root)), prompts)


def read_img2dataset(root: str | Path) -> PairSource:
    """Shards written by img2dataset: webdataset tars (``*.tar``), else Parquet with image bytes.

    A tar sample is ``KEY.jpg|png|webp`` with ``KEY.txt`` (its caption); images are read by byte
    offset, so tars are never unpacked. A Parquet shard needs a ``caption`` column and an image
    column (``jpg``, ``png``, ``webp`` or ``image``); its ``key`` column, if present, names pairs.
    """
    import pyarrow.parquet as pq

    root = Path(root)
    rows = []
    tars = sorted(root.glob("*.tar"))
    for tar_path in tars:
        images, captions = {}, {}
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.rpartition(".")
                if "." + ext.lower() in IMAGE_SUFFIXES:
                    images[key] = ImageRef("tar", str(tar_path), member.offset_data, member.size)
                elif ext == "txt":
                    captions[key] = tar.extractfile(member).read().decode("utf-8", errors="replace")
        for key in sorted(images.keys() | captions.keys()):
            rows.append({"image": images.get(key, ImageRef("tar", str(tar_path), 0, 0)), "texts": (captions.get(key, ""),),
                         "image_id": f"{tar_path.name}/{key}", "text_id": f"{tar_path.name}/{key}"})
    if not tars:
        for path in sorted(root.glob("*.parquet")):
            pf = pq.ParquetFile(path)
            _parquet_image_column(pf.schema_arrow.names, path)
            for group in range(pf.num_row_groups):
                meta = pf.read_row_group(group, columns=[c for c in ("key", "caption") if c in pf.schema_arrow.names])
                keys = meta.column("key").to_pylist() if "key" in meta.column_names else range(meta.num_rows)
                for row, (key, caption) in enumerate(zip(keys, meta.column("caption").to_pylist())):
                    rows.append({"image": ImageRef("parquet", str(path), group, row), "texts": (caption or "",),
                                 "image_id": f"{path.name}/{key}", "text_id": f"{path.name}/{key}"})
    return PairSource(_table(rows, f"{root} (no *.tar and no *.parquet with images)"))


def read_fashioniq(root: str | Path, split: str = "val", categories: tuple[str, ...] = ("dress", "shirt", "toptee")) -> PairSource:
    """FashionIQ triplets: ``root/captions/cap.<category>.<split>.json`` and ``root/images/<id>.<ext>``.

    Each pair is (candidate image, relative captions); the captions' embeddings are averaged (ISO
    App. J) and the target image is stored as a third side, ``target``.
    """
    root = Path(root)
    images = {p.stem: p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}

    def ref(name):
        return ImageRef("file", str(images.get(name, root / "images" / f"{name}.png")))

    rows = []
    for category in categories:
        for t in json.loads((root / "captions" / f"cap.{category}.{split}.json").read_text()):
            rows.append({"image": ref(t["candidate"]), "texts": tuple(t["captions"]), "image_id": t["candidate"],
                         "text_id": f"{category}/{t['candidate']}>{t['target']}", "target": ref(t["target"]),
                         "target_id": t["target"]})
    return PairSource(_table(rows, f"{root} FashionIQ {split}"))


READERS: dict[str, Callable[..., PairSource]] = {
    "coco": read_coco,
    "imagenet": read_imagenet,
    "img2dataset": read_img2dataset,
    "fashioniq": read_fashioniq,
}


def check_options(format: str, options: dict) -> None:
    """Fail, naming the option, when ``options`` has a key the reader of ``format`` does not take."""
    import inspect

    if format not in READERS:
        raise ValueError(f"unknown dataset format {format!r}; expected one of {sorted(READERS)}")
    allowed = [name for name in inspect.signature(READERS[format]).parameters if name != "root"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"format {format!r} takes no option {unknown}; its options: {allowed}")


def read_dataset(format: str, root: str | Path, **options) -> PairSource:
    """Dispatch to the reader of ``format`` with its documented keyword ``options``."""
    if format not in READERS:
        raise ValueError(f"unknown dataset format {format!r}; expected one of {sorted(READERS)}")
    try:
        return READERS[format](root, **options)
    except TypeError as e:
        raise ValueError(f"dataset format {format!r}: bad options {sorted(options)}: {e}") from e
