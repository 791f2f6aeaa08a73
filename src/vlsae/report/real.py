"""Real-data tables and figures: ISO Tables 3 and 6, HET Table 1 and Fig. 2.

Inputs are the tidy rows of ``eval-encoder`` (``model, dataset, metric, value``) and ``eval-saes``
(``model, dataset, eval_dataset, sae, seed, method, component, metric, value``; ``seed = -1`` marks
the across-seed stability). Per-side rows (``component`` image / text) are averaged, then seeds.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import write_frame, write_text  # noqa: E402
from . import save_figure  # noqa: E402

TABLE3_ROWS = {
    "Sparse reconstruction": ["mse", "r2", "l0", "l1"],
    "Consistency": ["c_insertion", "c_deletion", "stability"],
    "Structure in D": ["stable_rank_d", "effective_rank_d", "stable_rank_dw", "effective_rank_dw", "coherence"],
    "Structure in Z": ["stable_rank_z", "effective_rank_z", "connectivity", "negative_interference"],
    "Modality": ["rho", "delta_r@1", "fda", "p_acc", "bimodal_share", "bimodal_energy_share"],
}
TABLE1_COLUMNS = ["i2t_r@1", "i2t_r@5", "i2t_r@10", "t2i_r@1", "t2i_r@5", "t2i_r@10", "zero_shot@1", "zero_shot@5",
                  "mse", "self_match_rate"]
TABLE6_COLUMNS = ["gap_dim", "gap_wasserstein", "recall@1", "recall@5", "i2t_r@1", "t2i_r@1", "zero_shot@1",
                  "linear_probe", "cosine_IT (aligned)", "cosine_IT"]


def _seed_means(tidy: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Average sides, then seeds: one value per ``keys + [metric]``."""
    per_seed = tidy.groupby(keys + ["seed", "metric"], dropna=False)["value"].mean().reset_index()
    return per_seed.groupby(keys + ["metric"], dropna=False)["value"].mean().reset_index()


def table6(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO Table 6: one row per (model, dataset), the encoder metrics as columns."""
    wide = tidy.pivot_table(index=["model", "dataset"], columns="metric", values="value").reset_index()
    wide.columns.name = None
    return wide[["model", "dataset", *[c for c in TABLE6_COLUMNS if c in wide]]]


def table3(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO Table 3: for each (model, training set, evaluation set) one row per metric, one column per SAE."""
    keys = ["model", "dataset", "eval_dataset"]
    means = _seed_means(tidy[tidy["method"].fillna("") == ""], keys + ["sae"])
    order = list(dict.fromkeys(tidy["sae"]))
    wide = means.pivot_table(index=keys + ["metric"], columns="sae", values="value").reset_index()
    wide.columns.name = None
    rank = {m: i for i, m in enumerate(m for rows in TABLE3_ROWS.values() for m in rows)}
    group = {m: g for g, rows in TABLE3_ROWS.items() for m in rows}
    wide = wide[wide["metric"].isin(rank)].assign(group=lambda f: f["metric"].map(group))
    wide = wide.sort_values(keys + ["metric"], key=lambda c: c.map(rank) if c.name == "metric" else c)
    return wide[keys + ["group", "metric", *[s for s in order if s in wide]]].reset_index(drop=True)


def table1(tidy: pd.DataFrame) -> pd.DataFrame:
    """HET Table 1: one row per (model, evaluation set, method), retrieval / zero-shot on codes, MSE and
    the self-match rate (HET F.2); ``+ post-hoc`` rows use the saved alignment."""
    keys = ["model", "dataset", "eval_dataset", "sae", "method"]
    means = _seed_means(tidy.assign(method=tidy["method"].fillna("")), keys)
    wide = means.pivot_table(index=keys, columns="metric", values="value").reset_index()
    wide.columns.name = None
    base = wide[wide["method"] == ""].set_index(keys[:-2] + ["sae"])
    wide["method"] = [s if m == "" else f"{s} + {m}" for s, m in zip(wide["sae"], wide["method"])]
    for shared in ("mse", "self_match_rate"):  # properties of the SAE, shown on its post-hoc row too
        if shared in base:
            wide[shared] = [base[shared].get(k, np.nan) for k in zip(wide["model"], wide["dataset"], wide["eval_dataset"], wide["sae"])]
    order = {s: i for i, s in enumerate(dict.fromkeys(tidy["sae"]))}
    wide = wide.sort_values(["model", "eval_dataset", "sae", "method"], key=lambda c: c.map(order) if c.name == "sae" else c)
    return wide[["model", "dataset", "eval_dataset", "method", *[c for c in TABLE1_COLUMNS if c in wide]]].reset_index(drop=True)


def write_table(table: pd.DataFrame, csv_path: str, md_path: str, heading: str, note: str = "") -> None:
    write_frame(csv_path, table)
    write_text(md_path, f"# {heading}\n\n{note}\n\n" + table.to_markdown(index=False, floatfmt=".4g") + "\n")


CORR_BINS = np.array([-1.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
DISTANCE_BINS = np.linspace(0.0, 2.0, 41)


def plot_directions(histograms: dict[str, np.ndarray], pdf_path: str, png_path: str) -> None:
    """HET Fig. 2: per model, the distribution of image-text decoder cosine distance per correlation bin."""
    fig, axes = plt.subplots(1, len(histograms), figsize=(5 * len(histograms), 3.4), constrained_layout=True, squeeze=False)
    centres = (DISTANCE_BINS[1:] + DISTANCE_BINS[:-1]) / 2
    colours = plt.cm.viridis(np.linspace(0, 1, len(CORR_BINS) - 1))
    for ax, (title, counts) in zip(axes[0], histograms.items()):
        for row, colour, lo, hi in zip(counts, colours, CORR_BINS[:-1], CORR_BINS[1:]):
            if row.sum():
                ax.plot(centres, row / row.sum(), color=colour, label=f"corr in [{lo:g}, {hi:g})")
        ax.set_title(title)
        ax.set_xlabel("cosine distance of decoder columns (image vs aligned text)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("share of latent pairs")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, pdf_path, png_path)


def directions_table(histograms: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long form of the Fig. 2 counts, with the mean distance per correlation bin."""
    centres = (DISTANCE_BINS[1:] + DISTANCE_BINS[:-1]) / 2
    return pd.DataFrame([{"panel": title, "corr_lo": lo, "corr_hi": hi, "pairs": int(row.sum()),
                          "mean_distance": float((row * centres).sum() / row.sum()) if row.sum() else np.nan}
                         for title, counts in histograms.items()
                         for row, lo, hi in zip(counts, CORR_BINS[:-1], CORR_BINS[1:])])
