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


def memory_bytes(device: torch.device) -> int:
    """Total memory of ``device``: the GPU's for ``cuda``, the machine's physical RAM otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
