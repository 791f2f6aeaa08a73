"""Dual encoders behind one interface: the projected, l2-normalised joint embeddings.

A model is a config entry (``ModelSpec``), never a code edit:

- ``backend: transformers`` loads ``AutoModel`` and ``AutoProcessor`` from ``source`` (a Hub id
  such as ``openai/clip-vit-base-patch32``, or a local folder saved with ``save_pretrained``).
  CLIP, OpenCLIP-on-the-Hub, SigLIP, SigLIP2 and MetaCLIP all expose ``get_image_features`` and
  ``get_text_features``.
- ``backend: open_clip`` loads ``open_clip.create_model_and_transforms(source, pretrained=...)``
  (the optional ``openclip`` extra).

Preprocessing (``preprocess_images``, ``tokenize``) is CPU work that DataLoader workers run;
encoding runs on the device, under fp16/bf16 autocast on GPU when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

BACKENDS = ("transformers", "open_clip")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: ``name`` is the store folder; ``source`` the Hub id, local folder or open_clip name."""

    name: str
    source: str
    backend: Literal["transformers", "open_clip"] = "transformers"
    pretrained: str | None = None
    text_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"model {self.name!r}: backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "open_clip" and not self.pretrained:
            raise ValueError(f"model {self.name!r}: the open_clip backend needs `pretrained` (e.g. laion2b_s34b_b79k)")


def _features(output) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output whose pooler holds it (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class Encoder:
    """Preprocess on CPU workers, encode on ``device``; ``encode_*`` return unit-norm float32 rows."""

    dim: int
    image_size: int

    def __init__(self, device: torch.device, precision: str = "fp32"):
        self.device = device
        self.autocast = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]

    def preprocess_images(self, images: list) -> torch.Tensor:
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _run(self, fn, *args) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            z = fn(*args).float()
        return torch.nn.functional.normalize(z, dim=-1)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._run(self._image_features, pixels.to(self.device, non_blocking=True))

    def encode_texts(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._run(self._text_features, {k: v.to(self.device, non_blocking=True) for k, v in tokens.items()})


class TransformersEncoder(Encoder):
    """``AutoModel`` + ``AutoProcessor``; texts are padded to the model's maximum length, as SigLIP expects."""

    def __init__(self, spec: ModelSpec, device: torch.device, precision: str = "fp32"):
        from transformers import AutoModel, AutoProcessor

        super().__init__(device, precision)
        self.model = AutoModel.from_pretrained(spec.source).eval().to(device)
        processor = AutoProcessor.from_pretrained(spec.source)
        self.image_processor, self.tokenizer = processor.image_processor, processor.tokenizer
        config = self.model.config
        self.dim = int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)
        self.image_size = int(config.vision_config.image_size)
        max_length = getattr(config.text_config, "max_position_embeddings", None)
        self.text_kwargs = {"padding": "max_length", "truncation": True, "max_length": max_length, **spec.text_kwargs}

    def preprocess_images(self, images: list) -> torch.Tensor:
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(texts, return_tensors="pt", **self.text_kwargs))

    def _image_features(self, pixels):
        return _features(self.model.get_image_features(pixel_values=pixels))

    def _text_features(self, tokens):
        return _features(self.model.get_text_features(**tokens))


class OpenClipEncoder(Encoder):
    """``open_clip`` model, its validation transform and tokenizer."""

    def __init__(self, spec: ModelSpec, device: torch.device, precision: str = "fp32"):
        try:
            import open_clip
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise ImportError(f"model {spec.name!r} uses the open_clip backend: pip install -e '.[openclip]'") from e

        super().__init__(device, precision)
        self.model, _, self.transform = open_clip.create_model_and_transforms(spec.source, pretrained=spec.pretrained)
        self.model = self.model.eval().to(device)
        self._tokenizer = open_clip.get_tokenizer(spec.source)
        self.dim = int(self.model.visual.output_dim)
        size = self.model.visual.image_size
        self.image_size = int(min(size) if isinstance(size, (tuple, list)) else size)

    def preprocess_images(self, images: list) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images])

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"text": self._tokenizer(texts)}

    def _image_features(self, pixels):
        return self.model.encode_image(pixels)

    def _text_features(self, tokens):
        return self.model.encode_text(tokens["text"])


def load_encoder(spec: ModelSpec, device: torch.device, precision: str = "fp32") -> Encoder:
    """Load ``spec`` on ``device``. ``precision`` (fp32, fp16, bf16) sets autocast; use fp32 on CPU."""
    cls = TransformersEncoder if spec.backend == "transformers" else OpenClipEncoder
    return cls(spec, device, precision)
