"""The papers' latent galleries, drawn from the latent browser's records (``latents.json``) and thumbnails.

Each row is one latent: its most activating images (thumbnail, activation) and captions, titled with the
latent, its class, energies, modality score and the mean activation over the samples shown ("for each
feature, we indicate its average activation on the selected samples", ISO Figs. 18-22). Kinds:

* ``bimodal`` (ISO Fig. 18): the two highest- and the two lowest-energy bimodal latents; an SAE with fewer
  than four fills the rows with the unimodal latents nearest the band (``mu`` closest to 0.5), labelled so;
* ``image-only`` (ISO Figs. 19-20) and ``text-only`` (Figs. 21-22): the four highest-energy latents of the class;
* ``coactivation`` (HET Fig. 3): the three aligned pairs of a modality-specific SAE with the highest
  coactivation correlation ``c_ij``, with the cosine of their decoder atoms ("directionally separated");
* ``collapsed`` (HET Fig. 10): the three collapsed coordinates of a shared SAE (Hungarian ``P(i) = i``)
  with the *lowest* ``c_ij``, as the paper shows the worst case.

A class this SAE lacks gives a figure saying so and an empty table.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from . import save_figure  # noqa: E402
from .real import write_table  # noqa: E402

KINDS = ("bimodal", "image-only", "text-only", "coactivation", "collapsed")
NEAREST = "not bimodal: nearest the band"  # the label of a row that fills ISO Fig. 18 when bimodal latents are few
HEADINGS = {
    "bimodal": "ISO Fig. 18: most activating samples of high- and low-energy bimodal latents",
    "image-only": "ISO Figs. 19-20: most activating samples of image-only latents",
    "text-only": "ISO Figs. 21-22: most activating samples of text-only latents",
    "coactivation": "HET Fig. 3: images of aligned image-text latent pairs with high coactivation correlation",
    "collapsed": "HET Fig. 10: images of collapsed latents of a shared SAE, lowest coactivation correlation first",
}


def select(records: list[dict], kind: str) -> list[tuple[dict, str]]:
    """``(record, row label)`` of the latents a ``kind`` gallery shows, in display order."""
    if kind not in KINDS:
        raise ValueError(f"gallery kind must be one of {KINDS}, got {kind!r}")
    if kind in ("bimodal", "image-only", "text-only"):
        of_class = sorted((r for r in records if r["class"] == kind), key=lambda r: (-r["energy"], r["id"]))
        if kind != "bimodal":
            return [(r, "") for r in of_class[:4]]
        high, low = of_class[:2], of_class[2:][-2:]
        rows = [(r, "high energy") for r in high] + [(r, "low energy") for r in low]
        unimodal = sorted((r for r in records if r["class"] in ("image-only", "text-only")),
                          key=lambda r: (abs(r["mu"] - 0.5), r["id"]))
        return rows + [(r, NEAREST) for r in unimodal[:4 - len(rows)]]
    if kind == "coactivation":
        pairs = [r for r in records if r.get("partner", {}).get("corr") is not None]
        return [(r, "") for r in sorted(pairs, key=lambda r: (-r["partner"]["corr"], r["id"]))[:3]]
    collapsed = [r for r in records if r.get("match", {}).get("collapsed") and r["match"]["corr"] is not None]
    return [(r, "") for r in sorted(collapsed, key=lambda r: (r["match"]["corr"], r["id"]))[:3]]


def _shown(record: dict, side: str, n: int) -> list[list]:
    return record[side]["top"][:n]


def _mean(values: list[list]) -> float:
    return sum(v for _, v in values) / len(values) if values else float("nan")


def table(selected: list[tuple[dict, str]], samples: dict, images: int = 5, captions: int = 3) -> pd.DataFrame:
    """One row per latent shown: its statistics, the mean activation of the shown samples, and their captions."""
    rows = []
    for record, label in selected:
        shown_images, shown_captions = _shown(record, "image", images), _shown(record, "text", captions)
        row = {"latent": record["id"], "row": label, "class": record["class"], "mu": record["mu"],
               "energy_image": record["image"]["energy"], "energy_text": record["text"]["energy"],
               "mean_image_activation_shown": _mean(shown_images), "mean_text_activation_shown": _mean(shown_captions)}
        if "partner" in record:
            row.update(partner=record["partner"]["id"], c=record["partner"]["corr"], decoder_cosine=record["partner"]["cosine"])
        if "match" in record:
            row.update(c=record["match"]["corr"])
        row["captions"] = " | ".join(samples[str(r)]["caption"] for r, _ in shown_captions)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["latent", "row", "class", "mu", "energy_image", "energy_text",
                                                          "mean_image_activation_shown", "mean_text_activation_shown", "captions"])


def _title(record: dict, label: str, kind: str, images: list) -> str:
    lines = [f"#{record['id']} {record['class']}"] + ([label] if label else [])
    lines += [f"E img {record['image']['energy']:.3g}", f"E txt {record['text']['energy']:.3g}",
              "mu " + ("-" if record["mu"] is None else f"{record['mu']:.2f}")]
    if kind == "coactivation":
        lines += [f"text #{record['partner']['id']}, c = {record['partner']['corr']:.2f}",
                  f"decoder cos {record['partner']['cosine']:.2f}"]
    elif kind == "collapsed":
        lines.append(f"c = {record['match']['corr']:.2f}")
    return "\n".join(lines + [f"mean act. {_mean(images):.3g}" if images else "no image activates it"])


def plot(selected: list[tuple[dict, str]], data: dict, folder: Path, kind: str, pdf: str, png: str,
         images: int = 5, captions: int = 3) -> None:
    """The gallery: per latent a title cell, ``images`` thumbnails and (for all but the image-only kinds) its captions."""
    from PIL import Image

    with_text = kind not in ("image-only", "coactivation", "collapsed")
    widths = [1.5] + [1.0] * images + ([3.2] if with_text else [])
    fig = plt.figure(figsize=(1.45 * sum(widths), 1.7 * max(len(selected), 1) + 0.7))
    if not selected:
        fig.text(0.5, 0.5, f"no {kind} latents in {data['title'].get('name', 'this SAE')}", ha="center", va="center")
    grid = fig.add_gridspec(max(len(selected), 1), len(widths), width_ratios=widths)
    for i, (record, label) in enumerate(selected):
        shown = _shown(record, "image", images)
        head = fig.add_subplot(grid[i, 0])
        head.axis("off")
        head.text(0, 0.5, _title(record, label, kind, shown), fontsize=7, va="center", linespacing=1.3)
        for j in range(images):
            ax = fig.add_subplot(grid[i, 1 + j])
            ax.axis("off")
            if j < len(shown):
                row, value = shown[j]
                thumb = data["samples"][str(row)]["thumb"]
                if thumb:
                    with Image.open(folder / thumb) as im:
                        ax.imshow(im.convert("RGB"))
                ax.set_title(f"{value:.3g}", fontsize=7)
        if with_text:
            ax = fig.add_subplot(grid[i, 1 + images])
            ax.axis("off")
            lines = [f"{v:.3g}  {data['samples'][str(r)]['caption'][:48]}" for r, v in _shown(record, "text", captions)]
            ax.text(0.02, 0.5, "\n".join(lines) or "(no caption activates it)", fontsize=7, va="center")
    fig.suptitle(HEADINGS[kind] + f"\n{data['title'].get('model', '')} on {data['title'].get('dataset', '')}, "
                 f"{data['title'].get('name', '')} ({data['title'].get('sae', '')})", fontsize=8)
    fig.tight_layout()
    save_figure(fig, pdf, png)


def gallery(browser: Path, kind: str, csv: str, md: str, pdf: str, png: str) -> pd.DataFrame:
    """Build one gallery from ``browser`` (a browser folder of one SAE: ``latents.json`` and ``../thumbs``)."""
    data = json.loads((Path(browser) / "latents.json").read_text())
    selected = select(data["latents"], kind)
    frame = table(selected, data["samples"])
    title = data["title"]
    note = (f"{title.get('model', '')} on {title.get('dataset', '')}: zoo SAE {title.get('name', '')} "
            f"({title.get('sae', '')}), seed {title.get('seed', '')}, classes by the modality score with tau = "
            f"{title.get('tau', '')}. Activations are the SAE's codes; captions are the most activating ones. "
            f"Built from the latent browser's records (`{Path(browser).as_posix()}/latents.json`).")
    filled = sum(label == NEAREST for _, label in selected)
    if filled:
        note += (f" This SAE has {len(selected) - filled} bimodal latents: {filled} rows show instead the unimodal "
                 "latents nearest the bimodal band (modality score closest to 0.5), marked in the `row` column.")
    write_table(frame, csv, md, HEADINGS[kind], note if selected else note + f" This SAE has no {kind} latents to show.")
    plot(selected, data, Path(browser), kind, pdf, png)
    return frame
