"""Build dataclasses from plain dicts, failing on unknown keys with their names."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: dict, what: str) -> T:
    """``cls(**data)``, but an unknown key raises ``ValueError`` naming it and ``what``."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} key(s): {sorted(unknown)}; allowed: {sorted(f.name for f in fields(cls))}")
    return cls(**data)
