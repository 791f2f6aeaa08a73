"""Architecture registry: name -> class. Adding an architecture is one module plus one entry."""

from __future__ import annotations

from .base import SparseAutoencoder
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReLUSAE
from .mp import MatchingPursuitSAE
from .relu import ReLUSAE
from .topk import TopKSAE

ARCHITECTURES: dict[str, type[SparseAutoencoder]] = {
    "relu": ReLUSAE,
    "jumprelu": JumpReLUSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "mp": MatchingPursuitSAE,
}


def check_architecture(name: str) -> None:
    """Fail with the known names when ``name`` is not a registered architecture."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown SAE architecture {name!r}; choose from {sorted(ARCHITECTURES)}")


def build_sae(architecture: str, d: int, m: int, unit_norm_decoder: bool = True, **params) -> SparseAutoencoder:
    """Instantiate ``architecture`` with ``d`` inputs, ``m`` latents and its own ``params``."""
    check_architecture(architecture)
    try:
        return ARCHITECTURES[architecture](d, m, unit_norm_decoder=unit_norm_decoder, **params)
    except TypeError as e:
        raise ValueError(f"bad params for SAE architecture {architecture!r}: {e}") from e
