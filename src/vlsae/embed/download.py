"""Fetch dataset archives over HTTP(S) with checksums, resuming partial downloads; unpack them.

``fetch`` streams into ``<dest>.part``. A rerun continues a partial file with an HTTP ``Range``
request (or starts over if the server ignores it); a ``.part`` that is already whole (a run killed
while it computed the checksum) gets HTTP 416 for its range and goes straight to the check. The
MD5 is checked before the file is renamed onto ``dest``, so ``dest`` exists only when complete and
verified; a file that fails the check is removed, so the next attempt starts over. ``unpack`` extracts
a zip or tar into a folder and writes a marker file last.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import publish, write_json

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: str | Path, md5: str | None, progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` and verify its MD5 (``None`` logs it instead); return ``dest``."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if not (have and e.code == 416):  # 416: the range starts at the end - the .part is whole
            raise
        log.info("%s: %s is already complete (%d bytes); checking it", url, part.name, have)
    else:
        with response:
            _receive(response, part, have, url, dest.name, progress)
    actual = md5sum(part)
    if md5 is None:
        log.warning("%s has no checksum in the config; its MD5 is %s", dest.name, actual)
    elif actual != md5.lower():
        part.unlink()
        raise ValueError(f"{url}: MD5 {actual} does not match the expected {md5}; the download was removed")
    publish(part, dest)
    return dest


def _receive(response, part: Path, have: int, url: str, name: str, progress: bool) -> None:
    """Append the response to ``part`` (``have`` bytes already there) if the server resumed, else rewrite it."""
    resumed = have and response.status == 206
    if have and not resumed:
        log.info("%s ignored the range request; starting over", url)
        have = 0
    total = response.headers.get("Content-Length")
    total = int(total) + have if total is not None else None
    with open(part, "ab" if resumed else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                           desc=name, disable=not progress) as bar:
        for block in iter(lambda: response.read(CHUNK), b""):
            f.write(block)
            bar.update(len(block))


def unpack(archive: str | Path, into: str | Path, marker: str | Path) -> None:
    """Extract a zip or tar ``archive`` into the folder ``into``, then write ``marker``."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for member in tqdm(z.infolist(), desc=f"unpack {archive.name}", unit="file"):
                z.extract(member, into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    else:
        raise ValueError(f"{archive}: neither a zip nor a tar archive")
    write_json(marker, {"archive": str(archive), "into": str(into), "md5": md5sum(archive)})


def free_gb(folder: str | Path) -> float:
    """Free disk space where ``folder`` lives, in GB (for a friendly message before an 18 GB fetch)."""
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free / 1e9
