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


def draw_pair(rng: np.random.Generator, size: int = 64):
    """One PIL image of a coloured shape on a coloured background, and captions describing it."""
    from PIL import Image, ImageDraw

    names = list(COLOURS)
    fg, bg = rng.choice(len(names), size=2, replace=False)
    shape = SHAPES[rng.integers(len(SHAPES))]
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
    return image, captions


TOY_COCO_OPTIONS = {"annotations": "annotations/captions_toy.json", "images": "images"}
"""Reader options (``read_coco``) of a dataset written by ``write_toy_coco``."""


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
    images, annotations = [], []
    for i in range(n_images):
        image, captions = draw_pair(rng, size=min(size))
        if image.size != size:
            image = image.resize(size)
        name = f"{i:08d}.jpg"
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        (root / TOY_COCO_OPTIONS["images"] / name).write_bytes(data[: len(data) // 3] if i < corrupt else data)
        images.append({"id": i, "file_name": name, "width": image.width, "height": image.height})
        for j in range(captions_per_image):
            caption = captions[j % len(captions)] + (f" #{j}" if j >= len(captions) else "")
            annotations.append({"id": len(annotations), "image_id": i, "caption": "" if len(annotations) < empty else caption})
    path = root / TOY_COCO_OPTIONS["annotations"]
    write_json(path, {"images": images, "annotations": annotations})
    return path


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
