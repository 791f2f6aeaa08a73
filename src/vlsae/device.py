"""Device selection: ``cuda`` when present, CPU otherwise, overridable with ``VLSAE_DEVICE``."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | None = None) -> torch.device:
    """Pick ``name``, else ``$VLSAE_DEVICE``, else ``cuda`` if available, else ``cpu``."""
    name = name or os.environ.get("VLSAE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
