"""Atomic file output: write to a temporary sibling, fsync it, then ``os.replace``.

A crash at any point leaves either the previous file or no file, never a partial one, and a file
that has been published is on disk (its data and its directory entry are fsynced). Published
files get the permissions of an ordinary file under the process's umask (``mkstemp`` alone would
leave them ``0600``, unreadable by a group sharing a cluster's results folder).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` ordinary permissions, fsync it, rename it onto ``path`` and fsync the folder."""
    os.chmod(tmp, 0o666 & ~_umask())
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(Path(path).parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; publish it onto ``path`` on success.

    The temporary keeps the target's suffix so libraries that dispatch on it (matplotlib,
    pyarrow) still work. On an exception the temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publish(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_frame(path: str | os.PathLike, frame) -> None:
    """Atomically write a pandas ``frame`` without its index, as Parquet or CSV by the path's suffix."""
    with atomic_path(path) as tmp:
        if tmp.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif tmp.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            raise ValueError(f"{path}: write_frame writes .parquet or .csv files")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
