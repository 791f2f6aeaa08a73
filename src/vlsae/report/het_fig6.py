"""HET Fig. 6: auxiliary-loss strength sweep at one alpha, against post-hoc alignment.

Input: tidy metric rows of ``eval-het`` (``method, alpha, seed, sae_id, metric, value``) and the sweep
of the study design (:attr:`vlsae.design.Design.fig6_sweep`: each swept SAE's loss and weight
multiplier, by ``sae_id``). Output: a wide table (one row per method, multiplier and seed;
csv + markdown with mean and std, and the paper's two claims checked), and a five-panel figure:
each metric against the weight multiplier for the Iso-Energy and group-sparse losses, with the
shared SAE, the modality-specific pair and post-hoc alignment as horizontal references. The
alignment panel also marks the alignment error of the ground-truth codes (``floor``): a method below
it aligns by dropping what differs between an image and its caption, not by recovering features.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import write_frame, write_text  # noqa: E402
from ..metrics.synthetic import METRICS  # noqa: E402
from . import save_figure  # noqa: E402
from .het_fig5 import TITLES, definitions  # noqa: E402

POST_HOC = "modality-specific + post-hoc"
REFERENCES = {"shared": "tab:green", "modality-specific": "gold", POST_HOC: "tab:orange"}
SWEPT = {"iso_energy": "teal", "group_sparse": "tab:purple"}


def wide_table(tidy: pd.DataFrame, sweep: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """One row per (method, SAE, seed); ``loss`` and ``multiplier`` from ``sweep`` (``sae_id`` -> the swept
    loss and its weight multiplier), ``""`` and NaN for the references."""
    table = tidy.pivot_table(index=["method", "alpha", "seed", "sae_id"], columns="metric", values="value")
    table = table.reset_index()
    table.columns.name = None
    swept = [sweep.get(sae_id, ("", np.nan)) for sae_id in table["sae_id"]]
    table["loss"] = [loss for loss, _ in swept]
    table["multiplier"] = [float(multiplier) for _, multiplier in swept]
    table = table.sort_values(["loss", "method", "multiplier", "seed"], na_position="first")
    return table[["method", "loss", "multiplier", "alpha", "seed", *METRICS, *definitions(table)]].reset_index(drop=True)


def claims(table: pd.DataFrame, floor: float | None = None) -> list[str]:
    """HET §6.1: post-hoc has lower feature recovery error than every lambda, and alignment error no higher than the best.

    With the ground-truth codes' alignment error ``floor``, a third line names the weights whose mean
    alignment error lies below it.
    """
    means = table.groupby(["method", "multiplier"], dropna=False)[list(METRICS)].mean()
    post_hoc = means.xs(POST_HOC, level="method").iloc[0]
    swept = means[means.index.get_level_values("method").str.contains("|".join(SWEPT))]
    lines = []
    for metric, rule in (("feature_recovery_error", "lower than every lambda"), ("alignment_error", "no higher than the best lambda")):
        best = swept[metric].min()
        holds = post_hoc[metric] < best if metric == "feature_recovery_error" else post_hoc[metric] <= best
        lines.append(f"- post-hoc {metric} {post_hoc[metric]:.4f} vs best auxiliary loss {best:.4f} "
                     f"({swept[metric].idxmin()[0]}, x{swept[metric].idxmin()[1]:g}): {rule}: "
                     f"**{'holds' if holds else 'does not hold'}**")
    if floor is not None:
        below = [f"{method} x{mult:g} ({value:.4f})" for (method, mult), value in swept["alignment_error"].items()
                 if value < floor]
        lines.append(f"- ground-truth codes: alignment_error {floor:.4f}; below it (codes that drop modality-specific "
                     f"concepts): {', '.join(below) or 'none'}")
    return lines


def settings_notes(settings: dict) -> list[str]:
    """What the sweep was computed with, in words: the objective and optimiser (``training``), the swept
    losses' options (``losses``), the data draw (``dgp``), the metric definitions and the matching."""
    t, dgp, metrics = settings.get("training", {}), settings.get("dgp", {}), settings.get("metrics", {})
    iso = settings.get("losses", {}).get("iso_energy", {})
    reconstruction = {"fvu": "per-batch FVU (the HET authors' code)", "mse": "E||x - x_hat||^2 (HET eq. 4)",
                      "element_mean": "per-element mean squared error"}.get(t.get("reconstruction", "mse"))
    decay = t.get("weight_decay", 0.0)
    biases = "" if not decay or t.get("weight_decay_biases", True) else " on weights only"
    clip = t.get("grad_clip")
    joint = dgp.get("shared_codes", "joint") == "joint" and not dgp.get("min_active", 0)
    return [
        f"- objective: reconstruction {reconstruction}; AdamW lr {t.get('lr', 5e-4):g}, weight decay {decay:g}{biases}, "
        + (f"gradient clip {clip:g} ({t.get('grad_clip_scope', 'sae')})" if clip else "no gradient clip")
        + f"; Iso-Energy {'with' if iso.get('mask_top1') else 'without'} the top-1 mask of both codes",
        "- data: " + ("one code z for both modalities (HET eq. 1)" if joint else
                      f"shared coefficients {dgp.get('shared_codes', 'joint')}, at least {dgp.get('min_active', 0)} active "
                      "concept(s) per block (the HET authors' draw)"),
        "- metrics: reconstruction " + ("per-batch FVU (the authors' eval loss)" if metrics.get("reconstruction") == "fvu"
                                        else "E||x - x_hat||^2 (E.3 i)")
        + "; feature recovery " + ("by the top-1 latent (the authors' compute_gre_top1)"
                                   if metrics.get("feature_recovery") == "top1" else "through the SAE's own top-k (E.3 ii)")
        + "; post-hoc matching " + ("maximises sum |C| (the authors' code)" if settings.get("matching") == "absolute"
                                    else "maximises tr(C P) (HET eq. 6)"),
    ]


def write_table(table: pd.DataFrame, csv_path: str, md_path: str, floor: float | None = None,
                settings: dict | None = None) -> None:
    write_frame(csv_path, table)
    summary = table.groupby(["method", "multiplier"], dropna=False, sort=False)[list(METRICS)].agg(["mean", "std"])
    summary.columns = [f"{m} ({s})" for m, s in summary.columns]
    notes = "Computed with:\n\n" + "\n".join(settings_notes(settings)) + "\n\n" if settings else ""
    write_text(md_path, "# HET Fig. 6: auxiliary-loss weight sweep (mean and std over seeds)\n\n" + notes
               + "\n".join(claims(table, floor)) + "\n\n"
               + summary.reset_index().to_markdown(index=False, floatfmt=".4f") + "\n")


def plot(table: pd.DataFrame, pdf_path: str, png_path: str, floor: float | None = None) -> None:
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4), constrained_layout=True)
    for ax, metric in zip(axes, METRICS):
        for method, color in REFERENCES.items():
            values = table.loc[table["method"] == method, metric]
            if values.empty:
                continue
            mean, std = values.mean(), values.std() if len(values) > 1 else 0.0
            ax.axhline(mean, color=color, label=method)
            ax.axhspan(mean - std, mean + std, color=color, alpha=0.15)
        for loss, color in SWEPT.items():
            sub = table[table["loss"] == loss]
            if sub.empty:
                continue
            stats = sub.groupby("multiplier")[metric].agg(["mean", "std"]).fillna(0.0)
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, color=color,
                        label=f"shared + {loss}")
        if metric == "alignment_error" and floor is not None:
            ax.legend(handles=[ax.axhline(floor, color="black", linestyle="--", label="ground-truth codes")], fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_title(TITLES[metric])
        ax.set_xlabel("lambda / default")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(fig, pdf_path, png_path)
