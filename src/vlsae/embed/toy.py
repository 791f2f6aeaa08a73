"""A toy image-caption dataset and tiny random-weight dual encoders, built offline.

They let the real extraction path (``AutoModel``/``AutoProcessor`` from a folder, COCO reader,
DataLoader workers, store writer) run end to end on a CPU with no download: the default workflow
and the tests use them. Nothing here is a stand-in for the science; the embeddings are random
features of drawn shapes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..atomic import write_json

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
           "black": (20, 20, 20), "white": (245, 245, 245)}
SHAPES = ("circle", "square", "triangle")
CONCEPTS = SHAPES + tuple(COLOURS)


def draw_pair(rng: np.random.Generator, size: int = 64, shape: str | None = None, colour: str | None = None):
    """One PIL image of a coloured shape on a coloured background, captions describing it, and its
    concepts ``{"shape", "colour"}`` (the foreground colour). ``shape`` and ``colour`` are drawn
    at random unless given."""
    from PIL import Image, ImageDraw

    names = list(COLOURS)
    fg = names.index(colour) if colour else int(rng.integers(len(names)))
    bg = int(rng.choice([i for i in range(len(names)) if i != fg]))
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    image = Image.new("RGB", (size, size), COLOURS[names[bg]])
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=COLOURS[names[fg]])
    elif shape == "square":
        draw.rectangle(box, fill=COLOURS[names[fg]])
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLOURS[names[fg]])
    where = ("left" if cx < size / 2 else "right")
    captions = [f"a {names[fg]} {shape} on a {names[bg]} background",
                f"a {shape} drawn in {names[fg]}, on the {where}",
                f"{names[bg]} picture with a {names[fg]} {shape}"]
    return image, captions, {"shape": shape, "colour": names[fg]}


def _save_jpeg(image, path: Path, truncate: bool = False) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 3] if truncate else data)


TOY_COCO_OPTIONS = {"annotations": "annotations/captions_toy.json", "images": "images"}
"""Reader options (``read_coco``) of a dataset written by ``write_toy_coco``."""
TOY_CONCEPTS = "annotations/instances_toy.json"
"""COCO-style instances of a toy dataset: its concepts (3 shapes, 6 colours) per image (HET Fig. 7)."""
TOY_OPTIONS = {"coco": TOY_COCO_OPTIONS, "imagenet": {"classnames": "classnames.json"},
               "fashioniq": {"split": "val", "categories": ["shapes"]}}
"""Reader options of the toy dataset of each format (``write_toy``)."""
TOY_MARKER = "toy.json"
"""Written last by ``write_toy``: the toy dataset is complete."""


def write_toy_coco(root: str | Path, n_images: int, captions_per_image: int = 2, seed: int = 0,
                   corrupt: int = 0, empty: int = 0, size: tuple[int, int] = (64, 64)) -> Path:
    """COCO-style toy dataset: ``root/images/*.jpg`` and ``root/annotations/captions_toy.json``.

    Images are ``size`` (width, height) pixels. Beyond the 3 captions of ``draw_pair`` they repeat
    with a ``#j`` suffix, so any ``captions_per_image`` gives distinct captions. The first
    ``corrupt`` images are written as truncated JPEGs and the first ``empty`` captions are blank,
    so the skip-and-count path runs too. Returns the annotation file.
    """
    root = Path(root)
    (root / TOY_COCO_OPTIONS["images"]).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations, instances = [], [], []
    for i in range(n_images):
        image, captions, concepts = draw_pair(rng, size=min(size))
        if image.size != size:
            image = image.resize(size)
        name = f"{i:08d}.jpg"
        _save_jpeg(image, root / TOY_COCO_OPTIONS["images"] / name, truncate=i < corrupt)
        images.append({"id": i, "file_name": name, "width": image.width, "height": image.height})
        for j in range(captions_per_image):
            caption = captions[j % len(captions)] + (f" #{j}" if j >= len(captions) else "")
            annotations.append({"id": len(annotations), "image_id": i, "caption": "" if len(annotations) < empty else caption})
        instances += [{"id": len(instances) + j, "image_id": i, "category_id": CONCEPTS.index(c) + 1}
                      for j, c in enumerate(concepts.values())]
    write_json(root / TOY_CONCEPTS, {"images": images, "annotations": instances,
                                     "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CONCEPTS)]})
    path = root / TOY_COCO_OPTIONS["annotations"]
    write_json(path, {"images": images, "annotations": annotations})
    return path


def write_toy_imagenet(root: str | Path, n_images: int, seed: int = 0) -> Path:
    """ImageNet-style toy dataset: ``root/<colour>_<shape>/*.JPEG`` (18 classes, drawn round-robin)
    and ``root/classnames.json`` (folder -> "red circle"). Returns the class-name file."""
    root, rng = Path(root), np.random.default_rng(seed)
    classes = {f"{c}_{s}": f"{c} {s}" for c in COLOURS for s in SHAPES}
    for i in range(n_images):
        folder = list(classes)[i % len(classes)]
        colour, shape = folder.split("_")
        (root / folder).mkdir(parents=True, exist_ok=True)
        _save_jpeg(draw_pair(rng, shape=shape, colour=colour)[0], root / folder / f"toy_val_{i:08d}.JPEG")
    path = root / TOY_OPTIONS["imagenet"]["classnames"]
    write_json(path, classes)
    return path


def write_toy_fashioniq(root: str | Path, n_images: int, seed: int = 0) -> Path:
    """FashionIQ-style toy triplets: ``root/images/<id>.jpg`` and ``root/captions/cap.shapes.val.json``.

    Each candidate image gets a target that differs in colour or shape, and two relative captions
    naming the change ("make it red", "is a red square")."""
    root, rng = Path(root), np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "captions").mkdir(parents=True, exist_ok=True)
    triplets = []
    for i in range(n_images):
        _, _, source = draw_pair(rng)
        target = dict(source)
        key = "colour" if rng.random() < 0.5 else "shape"
        choices = [c for c in (COLOURS if key == "colour" else SHAPES) if c != source[key]]
        target[key] = choices[rng.integers(len(choices))]
        for name, concepts in ((f"{i:08d}s", source), (f"{i:08d}t", target)):
            _save_jpeg(draw_pair(rng, **concepts)[0], root / "images" / f"{name}.jpg")
        change = f"make it {target[key]}" if key == "colour" else f"make it a {target[key]}"
        triplets.append({"candidate": f"{i:08d}s", "target": f"{i:08d}t",
                         "captions": [change, f"is a {target['colour']} {target['shape']}"]})
    path = root / "captions" / "cap.shapes.val.json"
    write_json(path, triplets)
    return path


WRITERS = {"coco": write_toy_coco, "imagenet": write_toy_imagenet, "fashioniq": write_toy_fashioniq}


def write_toy(format: str, root: str | Path, n_images: int, seed: int = 0, **options) -> Path:
    """The toy dataset of ``format`` (coco options: ``captions_per_image``, ``corrupt``, ``empty``),
    then the ``TOY_MARKER`` that says it is complete. Returns the marker."""
    if format not in WRITERS:
        raise ValueError(f"no toy dataset of format {format!r}; expected one of {sorted(WRITERS)}")
    WRITERS[format](root, n_images, seed=seed, **(options if format == "coco" else {}))
    marker = Path(root) / TOY_MARKER
    write_json(marker, {"format": format, "n_images": n_images, "seed": seed, **options})
    return marker


def _layers(width: int, layers: int) -> dict:
    return dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=2)


def save_tiny_clip(folder: str | Path, dim: int = 32, width: int = 32, layers: int = 2, image_size: int = 32, seed: int = 0) -> Path:
    """A random-weight ``CLIPModel`` with a byte-level BPE tokenizer, saved as a Hub-style folder."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[])
    config = CLIPConfig(
        text_config=dict(**_layers(width, layers), vocab_size=len(vocab), max_position_embeddings=32,
                         bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1),
        vision_config=dict(**_layers(width, layers), image_size=image_size, patch_size=image_size // 4),
        projection_dim=dim)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                                                 crop_size={"height": image_size, "width": image_size}),
                              tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return Path(folder)


def save_tiny_siglip(folder: str | Path, corpus: list[str], width: int = 32, layers: int = 2, image_size: int = 32,
                     seed: int = 0) -> Path:
    """A random-weight ``SiglipModel`` with a SentencePiece tokenizer trained on ``corpus``."""
    import sentencepiece as spm
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, SiglipTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=model, vocab_size=64, model_type="unigram",
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
                                   num_threads=1)
    (folder / "spiece.model").write_bytes(model.getvalue())
    tokenizer = SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=16)
    config = SiglipConfig(
        text_config=dict(**_layers(width, layers), vocab_size=len(tokenizer), max_position_embeddings=16,
                         pad_token_id=0, eos_token_id=1, bos_token_id=None),
        vision_config=dict(**_layers(width, layers), image_size=image_size, patch_size=image_size // 4))
    torch.manual_seed(seed)
    SiglipModel(config).save_pretrained(folder)
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": image_size, "width": image_size}),
                    tokenizer=tokenizer).save_pretrained(folder)
    return folder


def toy_corpus(n: int = 300, seed: int = 0) -> list[str]:
    """Captions of the toy distribution, to train the toy SentencePiece model."""
    rng = np.random.default_rng(seed)
    return [c for _ in range(n) for c in draw_pair(rng, size=16)[1]]
