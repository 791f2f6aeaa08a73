"""Device selection: ``cuda`` when present, CPU otherwise, overridable with ``VLSAE_DEVICE``."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | None = None) -> torch.device:
    """Pick ``name``, else ``$VLSAE_DEVICE``, else ``cuda`` if available, else ``cpu``."""
    name = name or os.environ.get("VLSAE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_precision(choice: str, device: torch.device) -> str:
    """The autocast dtype of ``choice``; ``auto`` is bf16 on cuda and fp32 elsewhere."""
    if choice != "auto":
        return choice
    return "bf16" if device.type == "cuda" else "fp32"
