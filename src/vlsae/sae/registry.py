"""Architecture registry: name -> class. Adding an architecture is one module plus one entry."""

from __future__ import annotations

from .base import SparseAutoencoder
from .topk import TopKSAE

ARCHITECTURES: dict[str, type[SparseAutoencoder]] = {"topk": TopKSAE}


def build_sae(architecture: str, d: int, m: int, unit_norm_decoder: bool = True, **params) -> SparseAutoencoder:
    """Instantiate ``architecture`` with ``d`` inputs, ``m`` latents and its own ``params``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown SAE architecture {architecture!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](d, m, unit_norm_decoder=unit_norm_decoder, **params)
