"""Architecture registry: name -> class (CONTRIBUTING.md, "Add an SAE architecture", lists the other files to touch)."""

from __future__ import annotations

import inspect

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


def check_params(architecture: str, m: int, params: dict) -> None:
    """Fail, naming the parameter, when ``params`` misses one the architecture needs (``relu`` without
    ``l1``), has one it does not take (``topk`` with ``l1``), or sets ``k`` outside ``[1, m]`` - without
    building the SAE."""
    check_architecture(architecture)
    signature = inspect.signature(ARCHITECTURES[architecture].__init__).parameters
    own = {name: p for name, p in signature.items() if name not in ("self", "d", "m", "unit_norm_decoder")}
    unknown = sorted(set(params) - set(own))
    if unknown:
        raise ValueError(f"SAE architecture {architecture!r} takes no parameter {unknown}; its parameters: {sorted(own)}")
    missing = sorted(name for name, p in own.items() if p.default is inspect.Parameter.empty and name not in params)
    if missing:
        raise ValueError(f"SAE architecture {architecture!r} needs parameter(s) {missing}")
    if "k" in params and not 1 <= params["k"] <= m:
        raise ValueError(f"SAE architecture {architecture!r}: k = {params['k']} must lie in [1, m = {m}] (latents per SAE)")


def build_sae(architecture: str, d: int, m: int, unit_norm_decoder: bool = True, **params) -> SparseAutoencoder:
    """Instantiate ``architecture`` with ``d`` inputs, ``m`` latents and its own ``params``."""
    check_architecture(architecture)
    try:
        return ARCHITECTURES[architecture](d, m, unit_norm_decoder=unit_norm_decoder, **params)
    except TypeError as e:
        raise ValueError(f"bad params for SAE architecture {architecture!r}: {e}") from e
