"""HET Fig. 5: shared vs modality-specific SAEs as the cosine distance ``1 - alpha`` grows.

Input: tidy metric rows (``method, alpha, seed, metric, value``). Output: a wide table with one
row per (method, alpha, seed) and one column per metric (csv + markdown), and a five-panel figure
of each metric against the cosine distance, mean ± std over seeds.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import write_frame, write_text  # noqa: E402
from . import save_figure  # noqa: E402
from ..metrics.synthetic import DEFINITIONS, METRICS  # noqa: E402

METHODS = ("shared", "modality-specific", "modality-specific + post-hoc")
COLORS = {"shared": "tab:green", "modality-specific": "tab:orange", "modality-specific + post-hoc": "tab:blue"}
TITLES = {
    "reconstruction_error": "Reconstruction error",
    "feature_recovery_error": "Feature recovery error",
    "alignment_error": "Alignment error",
    "feature_alignment_error": "Feature alignment error",
    "collapse_rate": "Collapse rate",
}


def definitions(table: pd.DataFrame) -> list[str]:
    """The columns of both definitions of metrics (i) and (ii) that ``table`` holds (newer ``eval-het`` rows)."""
    return [c for c in DEFINITIONS if c in table]


def wide_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, alpha, seed), one column per metric, plus ``cosine_distance``."""
    table = tidy.pivot_table(index=["method", "alpha", "seed"], columns="metric", values="value").reset_index()
    table.columns.name = None
    table.insert(2, "cosine_distance", (1.0 - table["alpha"]).round(6))
    order = {m: i for i, m in enumerate(METHODS)}
    table = table.sort_values(["method", "alpha", "seed"], key=lambda c: c.map(order) if c.name == "method" else c)
    return table[["method", "alpha", "cosine_distance", "seed", *METRICS, *definitions(table)]].reset_index(drop=True)


def write_table(table: pd.DataFrame, csv_path: str, md_path: str) -> None:
    write_frame(csv_path, table)
    summary = table.groupby(["method", "cosine_distance"], sort=False)[list(METRICS)].agg(["mean", "std"])
    summary.columns = [f"{m} ({s})" for m, s in summary.columns]
    write_text(md_path, "# HET Fig. 5: alpha sweep (mean and std over seeds)\n\n"
               + summary.reset_index().to_markdown(index=False, floatfmt=".4f") + "\n")


def plot(table: pd.DataFrame, pdf_path: str, png_path: str) -> None:
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4), constrained_layout=True)
    for ax, metric in zip(axes, METRICS):
        for method in METHODS:
            sub = table[table["method"] == method]
            if sub.empty:
                continue
            stats = sub.groupby("cosine_distance")[metric].agg(["mean", "std"]).fillna(0.0)
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3,
                        color=COLORS[method], label=method)
        ax.set_title(TITLES[metric])
        ax.set_xlabel("cosine distance 1 - alpha")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save_figure(fig, pdf_path, png_path)
