"""The offline latent browser: a static site per SAE, opened from disk (no server).

``{out}/thumbs/`` holds one JPEG thumbnail per image of the store that some browsed latent shows, written
once per store and shared by every SAE's pages (an existing thumbnail is kept). ``{out}/{name}/`` holds
``index.html`` (the latent table: sortable by energy, modality score, monosemanticity and frequency,
searchable, with the modality-score histogram), ``latent.html`` (one latent, ``latent.html#17``: top images
and captions with their activations, activation histograms, energies, partner and nearest latents),
``data.js`` (the records of :func:`~vlsae.browser.latents.latent_records` plus the samples they name,
loaded by a ``<script>`` tag because browsers refuse ``fetch`` from ``file://``) and ``latents.json``
(the same records, for the gallery figures). Pages are rendered from jinja2 templates; the JavaScript
is plain and local.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..atomic import atomic_path, write_json
from ..embed.readers import ImageLoader, read_dataset
from ..store import EmbeddingStore

log = logging.getLogger(__name__)
ASSETS = Path(__file__).parent / "assets"
THUMBS = "thumbs"
RECORDS = "latents.json"


class Samples:
    """The store's pairs as the dataset reader lists them (from the store's own ``metadata.dataset``):
    caption text and image reference of each store row."""

    def __init__(self, store: EmbeddingStore):
        dataset = store.metadata.get("dataset") or {}
        if not dataset.get("format"):
            raise ValueError(f"{store.root}: the store does not name its dataset (metadata.dataset); only stores made "
                             "by `vlsae embed` can be browsed")
        self.source = read_dataset(dataset["format"], dataset["root"], **dataset.get("options", {}))
        n = store.metadata.get("n_source_pairs")
        if n is not None and n != len(self.source):
            raise ValueError(f"{dataset['root']} now lists {len(self.source)} pairs, the store was made from {n}: "
                             "re-embed it before browsing")
        self.source_row = list(_pair_ids(store))  # store row -> the reader's row (pair_id)

    def caption(self, row: int) -> str:
        pair = self.source.pairs.iloc[self.source_row[row]]
        if "texts" in pair and isinstance(pair["texts"], tuple):
            return " / ".join(pair["texts"])
        return f"class: {pair['label']}"

    def image(self, row: int):
        return self.source.pairs.iloc[self.source_row[row]]["image"]


def _pair_ids(store: EmbeddingStore):
    for batch in store.iter_batches(65536):
        yield from batch.pair_id.tolist()


def write_thumbnails(samples: Samples, rows: set[int], folder: Path, size: int = 128) -> tuple[dict[int, str], int]:
    """A ``size``-pixel JPEG per distinct image of ``rows`` under ``folder`` (kept if already there);
    returns ``row -> file name`` and how many images could not be read (left out, counted)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    loader, names, failed = ImageLoader(), {}, 0
    for row in sorted(rows):
        ref = samples.image(row)
        name = hashlib.sha1(repr(tuple(ref)).encode()).hexdigest()[:20] + ".jpg"
        if not (folder / name).exists():
            try:
                im = loader.load(ref)
            except (OSError, ValueError) as e:
                log.warning("thumbnail of row %d left out: %s", row, e)
                failed += 1
                continue
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
            with atomic_path(folder / name) as tmp:
                im.save(tmp, format="JPEG", quality=85)
        names[row] = name
    return names, failed


def render_site(out: Path, name: str, title: dict, records: list[dict], samples: Samples,
                thumbs: dict[int, str]) -> Path:
    """Write ``out/name/{index.html, latent.html, data.js, latents.json}`` for one SAE; returns the index."""
    import jinja2

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted({r for rec in records for side in ("image", "text") for r, _ in rec[side]["top"]})
    sample_table = {r: {"caption": samples.caption(r), "thumb": f"../{THUMBS}/{thumbs[r]}" if r in thumbs else None}
                    for r in rows}
    data = {"title": title, "latents": records, "samples": sample_table}
    with atomic_path(folder / "data.js") as tmp:
        tmp.write_text("window.BROWSER = " + json.dumps(data, separators=(",", ":")) + ";\n")
    write_json(folder / RECORDS, data)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS), autoescape=True)
    script, style = (ASSETS / "browser.js").read_text(), (ASSETS / "browser.css").read_text()
    for page in ("index.html", "latent.html"):
        html = env.get_template(page).render(title=title, script=script, style=style)
        with atomic_path(folder / page) as tmp:
            tmp.write_text(html)
    return folder / "index.html"


def build_browsers(store: EmbeddingStore, runs: list[tuple[str, int, object, object]], out: Path, title: dict,
                   ms: dict | None = None, tau: float = 0.05, top: int = 12, thumb_size: int = 128) -> list[Path]:
    """Every ``(name, seed, SAERun, alignment)`` of ``runs`` browsed on ``store`` under ``out``, sharing ``out/thumbs``.
    ``ms`` maps ``(name, seed)`` to ``{side: per-latent MS}`` where the monosemanticity suite computed it."""
    from .latents import latent_records

    samples, pages, missing = Samples(store), [], 0
    for name, seed, run, alignment in runs:
        records = latent_records(run, store, alignment, (ms or {}).get((name, seed)), tau=tau, top=top)
        rows = {r for rec in records for r, _ in rec["image"]["top"]}
        thumbs, failed = write_thumbnails(samples, rows, out / THUMBS, thumb_size)
        missing += failed
        pages.append(render_site(out, name, {**title, "name": name, "seed": seed, "sae": run.model.spec.slug,
                                             "pairs": len(store), "tau": tau}, records, samples, thumbs))
        log.info("%s: %d latents, %d live -> %s", name, len(records), sum(r["class"] != "dead" for r in records), pages[-1])
    if missing:
        log.warning("%d thumbnails left out (unreadable images)", missing)
    return pages
