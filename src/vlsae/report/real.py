"""Real-data tables and figures: ISO Tables 3, 6, 7-8, 9-12; HET Table 1 and Figs. 2, 7, 8.

Inputs are the tidy rows of ``eval-encoder`` (``model, dataset, metric, value``) and ``eval-saes``
(``model, dataset, eval_dataset, sae, seed, method, component, metric, value``; ``seed = -1`` marks
the across-seed stability). Per-side rows (``component`` image / text) are averaged within a seed;
every SAE table then reports the mean and the standard deviation over seeds (csv: a ``{column}_std``
beside each column; markdown: ``mean ± std``), as HET's tables do. Encoders are deterministic, so
ISO Table 6 has no spread.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

from ..atomic import write_frame, write_text  # noqa: E402
from ..store import MODALITIES  # noqa: E402
from ..metrics.heterogeneity import CORR_BINS, DISTANCE_BINS  # noqa: E402
from . import save_figure  # noqa: E402

TABLE3_ROWS = {
    "Sparse reconstruction": ["mse", "r2", "l0", "l1"],
    "Consistency": ["c_insertion", "c_deletion", "stability"],
    "Structure in D": ["stable_rank_d", "effective_rank_d", "stable_rank_dw", "effective_rank_dw", "coherence"],
    "Structure in Z": ["stable_rank_z", "effective_rank_z", "connectivity", "negative_interference"],
    "Modality": ["rho", "delta_r@1", "fda", "p_acc", "bimodal_share", "bimodal_energy_share", "degenerate_share",
                 "degenerate_energy_share"],
}
TABLE1_COLUMNS = ["i2t_r@1", "i2t_r@5", "i2t_r@10", "t2i_r@1", "t2i_r@5", "t2i_r@10", "zero_shot@1", "zero_shot@5",
                  "mse", "self_match_rate"]
TABLE6_COLUMNS = ["gap_dim", "gap_wasserstein", "recall@1", "recall@5", "i2t_r@1", "t2i_r@1", "zero_shot@1",
                  "linear_probe", "cosine_IT (aligned)", "cosine_IT"]


def _seed_stats(tidy: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Average sides within each seed, then ``mean``, ``std`` (NaN for one seed) and ``seeds`` over
    seeds: one row per ``keys + [metric]``."""
    per_seed = tidy.groupby(keys + ["seed", "metric"], dropna=False)["value"].mean().reset_index()
    return per_seed.groupby(keys + ["metric"], dropna=False)["value"].agg(mean="mean", std="std", seeds="count").reset_index()


def _wide(stats: pd.DataFrame, index: list[str], columns: str) -> pd.DataFrame:
    """``stats`` (of :func:`_seed_stats`) with one column per value of ``columns``, each followed by its
    ``_std`` column."""
    mean = stats.pivot_table(index=index, columns=columns, values="mean")   # only the combinations that exist
    std = stats.pivot_table(index=index, columns=columns, values="std", dropna=False).reindex(index=mean.index,
                                                                                              columns=mean.columns)
    wide = pd.concat({"mean": mean, "std": std}, axis=1)
    wide.columns = [c if stat == "mean" else f"{c}_std" for stat, c in wide.columns]
    wide = wide[[c for col in mean.columns for c in (col, f"{col}_std")]].reset_index()
    wide.columns.name = None
    return wide


def _columns(wide: pd.DataFrame, names) -> list[str]:
    """``names`` present in ``wide``, each with its ``_std`` column."""
    return [c for n in names if n in wide for c in (n, f"{n}_std") if c in wide]


def table6(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO Table 6: one row per (model, dataset), the encoder metrics as columns."""
    wide = tidy.pivot_table(index=["model", "dataset"], columns="metric", values="value").reset_index()
    wide.columns.name = None
    return wide[["model", "dataset", *[c for c in TABLE6_COLUMNS if c in wide]]]


def table3(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO Table 3: for each (model, training set, evaluation set) one row per metric, one column per SAE
    (mean over seeds, with its std)."""
    keys = ["model", "dataset", "eval_dataset"]
    stats = _seed_stats(tidy[tidy["method"].fillna("") == ""], keys + ["sae"])
    order = list(dict.fromkeys(tidy["sae"]))
    wide = _wide(stats, keys + ["metric"], "sae")
    rank = {m: i for i, m in enumerate(m for rows in TABLE3_ROWS.values() for m in rows)}
    group = {m: g for g, rows in TABLE3_ROWS.items() for m in rows}
    wide = wide[wide["metric"].isin(rank)].assign(group=lambda f: f["metric"].map(group))
    wide = wide.sort_values(keys + ["metric"], key=lambda c: c.map(rank) if c.name == "metric" else c)
    return wide[keys + ["group", "metric", *_columns(wide, order)]].reset_index(drop=True)


def table1(tidy: pd.DataFrame) -> pd.DataFrame:
    """HET Table 1: one row per (model, evaluation set, method), retrieval / zero-shot on codes, MSE and
    the self-match rate (HET F.2), mean ± std over seeds; ``+ post-hoc`` rows use the saved alignment. Tables 2-4
    are the same table of other selections: a section per model and (architecture, K), SAEs in selection order."""
    keys = ["model", "dataset", "eval_dataset", "sae", "method"]
    if {"architecture", "k"} <= set(tidy):  # the section of each SAE (its architecture and K), first in the table
        sections = tidy.dropna(subset=["architecture"]).groupby("sae")[["architecture", "k"]].first()
        tidy = tidy.assign(section=tidy["sae"].map(lambda s: _section(*sections.loc[s]) if s in sections.index else ""))
        keys = ["model", "section", "dataset", "eval_dataset", "sae", "method"]
    wide = _wide(_seed_stats(tidy.assign(method=tidy["method"].fillna("")), keys), keys, "metric")
    base = wide[wide["method"] == ""].set_index(["model", "dataset", "eval_dataset", "sae"])
    wide["method"] = [s if m == "" else f"{s} + {m}" for s, m in zip(wide["sae"], wide["method"])]
    for shared in _columns(base, ("mse", "self_match_rate")):  # properties of the SAE, shown on its post-hoc row too
        wide[shared] = [base[shared].get(k, np.nan) for k in zip(wide["model"], wide["dataset"], wide["eval_dataset"], wide["sae"])]
    order = {s: i for i, s in enumerate(dict.fromkeys(tidy["sae"]))}
    section_order = {s: i for i, s in enumerate(dict.fromkeys(wide["section"]))} if "section" in wide else {}
    wide = wide.sort_values([k for k in ("model", "section", "eval_dataset", "sae", "method") if k in wide],
                            key=lambda c: c.map(order) if c.name == "sae" else c.map(section_order) if c.name == "section" else c,
                            kind="stable")
    head = [k for k in ("model", "section", "dataset", "eval_dataset", "method") if k in wide]
    return wide[[*head, *_columns(wide, TABLE1_COLUMNS)]].reset_index(drop=True)


def _section(architecture: str, k) -> str:
    return f"{architecture}, K = {int(k)}" if pd.notna(k) else architecture


# ISO main results (summary of the main text): MSE, R^2, p_acc of the MP-SAE and SAE-A per VLM; the paper's values
PAPER_ISO_MAIN = {("clip-b32", "SAE"): (0.141, 0.859, 0.847), ("clip-b32", "SAE-A"): (0.163, 0.837, 0.915),
                  ("siglip2-b16", "SAE"): (0.115, 0.884, 0.897), ("siglip2-b16", "SAE-A"): (0.115, 0.885, 0.899)}


def iso_main(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO's main results: per (model, training set, evaluation set) the SAE (no alignment loss) and SAE-A (beta > 0),
    MSE and R^2 averaged over the two modalities, p_acc; mean ± std over seeds, the paper's values beside (reported
    for CLIP ViT-B/32 and SigLIP2 only)."""
    keys = ["model", "dataset", "eval_dataset", "sae", "beta"]
    rows = tidy[tidy["metric"].isin(["mse", "r2", "p_acc"]) & (tidy["method"].fillna("") == "")]
    wide = _wide(_seed_stats(rows, keys), keys, "metric")
    wide.insert(3, "SAE", np.where(wide["beta"] > 0, "SAE-A", "SAE"))
    for i, metric in enumerate(("mse", "r2", "p_acc")):
        wide[f"{metric} (paper)"] = [PAPER_ISO_MAIN.get((m, s), (np.nan,) * 3)[i] for m, s in zip(wide["model"], wide["SAE"])]
    order = {s: i for i, s in enumerate(dict.fromkeys(tidy["sae"]))}
    wide = wide.sort_values(["model", "eval_dataset", "sae"], key=lambda c: c.map(order) if c.name == "sae" else c, kind="stable")
    columns = [c for m in ("mse", "r2", "p_acc") for c in (*_columns(wide, [m]), f"{m} (paper)")]
    return wide[["model", "dataset", "eval_dataset", "SAE", "sae", "beta", *columns]].reset_index(drop=True)


def markdown_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text: each column with a ``_std`` twin as ``mean ± std`` (``mean`` alone where the
    std is NaN: a single seed, or the across-seed stability), numbers to 4 significant digits."""
    out = pd.DataFrame(index=table.index)
    for col in table.columns:
        if col.endswith("_std") and col[:-4] in table:
            continue
        if f"{col}_std" in table:
            out[col] = [_number(m) if pd.isna(s) else f"{_number(m)} ± {_number(s)}"
                        for m, s in zip(table[col], table[f"{col}_std"])]
        else:
            out[col] = table[col].map(_number) if pd.api.types.is_float_dtype(table[col]) else table[col]
    return out


def _number(x) -> str:
    return "" if pd.isna(x) else f"{x:.4g}"


def write_table(table: pd.DataFrame, csv_path: str, md_path: str, heading: str, note: str = "") -> None:
    write_frame(csv_path, table)
    write_text(md_path, f"# {heading}\n\n{note}\n\n" + markdown_cells(table).to_markdown(index=False) + "\n")



def plot_directions(histograms: dict[str, np.ndarray], pdf_path: str, png_path: str, pairs: str) -> None:
    """HET Fig. 2: per model, the distribution of image-text decoder cosine distance per correlation bin."""
    fig, axes = plt.subplots(1, len(histograms), figsize=(5 * len(histograms), 3.4), constrained_layout=True, squeeze=False)
    centres = (DISTANCE_BINS[1:] + DISTANCE_BINS[:-1]) / 2
    colours = plt.cm.viridis(np.linspace(0, 1, len(CORR_BINS) - 1))
    for ax, (title, counts) in zip(axes[0], histograms.items()):
        for row, colour, lo, hi in zip(counts, colours, CORR_BINS[:-1], CORR_BINS[1:]):
            if row.sum():
                ax.plot(centres, row / row.sum(), color=colour, label=f"corr in [{lo:g}, {hi:g})")
        ax.set_title(title)
        ax.set_xlabel(f"cosine distance of decoder columns ({pairs})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("share of latent pairs")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, pdf_path, png_path)


def pooled_directions(runs: list[tuple[str, str]], pairs: str) -> dict[str, np.ndarray]:
    """HET Fig. 2's histogram per panel, pooling the ``(panel, folder)`` runs of one panel (e.g. its seeds):
    ``pairs: all`` reads the all-pairs counts saved by the alignment (App. E.1), ``matched`` bins only the
    Hungarian-matched pairs (the authors' code)."""
    from ..align import Alignment
    from ..metrics.heterogeneity import direction_histogram
    from ..sae import load_paired_sae

    histograms = {}
    for panel, folder in runs:
        alignment = Alignment.load(Path(folder) / "alignment.npz")
        if pairs == "all":
            counts = alignment.pair_counts
        else:
            model = load_paired_sae(folder)
            atoms = {side: model.side(side).W_dec.detach().float().numpy() for side in MODALITIES}
            counts = direction_histogram(atoms["image"], atoms["text"][alignment.perm], alignment.matched_corr)
        histograms[panel] = histograms.get(panel, np.zeros_like(counts)) + counts
    return histograms


def directions_table(histograms: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long form of the Fig. 2 counts, with the mean distance per correlation bin."""
    centres = (DISTANCE_BINS[1:] + DISTANCE_BINS[:-1]) / 2
    return pd.DataFrame([{"panel": title, "corr_lo": lo, "corr_hi": hi, "pairs": int(row.sum()),
                          "mean_distance": float((row * centres).sum() / row.sum()) if row.sum() else np.nan}
                         for title, counts in histograms.items()
                         for row, lo, hi in zip(counts, CORR_BINS[:-1], CORR_BINS[1:])])


GAP_TABLES = {  # methods and metrics of ISO Tables 9-11 and of Table 12, in paper order
    "iso_tables9_11": (["reconstruction", "center", "bimodal", "random", "shift"], ["gap_dim", "gap_wasserstein", "recall@1", "zero_shot@1"]),
    "iso_table12": (["unchanged", "baseline_a", "baseline_b", "baseline_c", "schrodi", "bimodal"],
                    ["gap_dim", "separability", "rmg", "ood"]),
}


def _by_method(tidy: pd.DataFrame, keys: list[str], methods: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean ± std over seeds, one row per ``keys + [method]`` in ``methods`` order, the ``metrics`` as columns."""
    tidy = tidy[tidy["method"].isin(methods) & tidy["metric"].isin(metrics)]
    wide = _wide(_seed_stats(tidy, keys + ["method"]), keys + ["method"], "metric")
    rank = {m: i for i, m in enumerate(methods)}
    wide = wide.sort_values(keys + ["method"], key=lambda c: c.map(rank) if c.name == "method" else c)
    return wide[keys + ["method", *_columns(wide, metrics)]].reset_index(drop=True)


def gap_table(tidy: pd.DataFrame, kind: str) -> pd.DataFrame:
    """ISO Tables 9-11 (``iso_tables9_11``: recall@1 on caption sets, zero-shot on ImageNet-format
    ones) or Table 12 (``iso_table12``), one row per (model, SAE, evaluation set, method)."""
    methods, metrics = GAP_TABLES[kind]
    return _by_method(tidy, ["model", "dataset", "sae", "eval_dataset"], methods, metrics)


def arithmetic_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO Tables 7 (OOD score) and 8 ((r@10 + r@50) / 2), one row per (model, SAE, set, query)."""
    return _by_method(tidy, ["model", "dataset", "sae", "eval_dataset"], ["baseline_delta", "baseline_source", "Q", "Q_SAE"],
                      ["recall", "r@10", "r@50", "ood"])


STEERING_METRICS = {"delta_cos": "change in cosine to t_c", "map": "mAP", "mrr": "MRR", "preserve": "cosine to the source"}


def steering_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """HET Fig. 7's numbers: per (model, evaluation set, method, alpha) the steering metrics, mean over
    concepts within a seed, then mean ± std over seeds; ``+ post-hoc`` rows use the saved alignment."""
    tidy = tidy.assign(method=[s if m == "" else f"{s} + {m}" for s, m in zip(tidy["sae"], tidy["method"].fillna(""))])
    keys = ["model", "dataset", "eval_dataset", "method", "alpha"]
    per_seed = tidy.groupby(keys + ["seed", "metric"])["value"].mean().reset_index()
    wide = _wide(_seed_stats(per_seed, keys), keys, "metric")
    rank = {m: i for i, m in enumerate(dict.fromkeys(tidy["method"]))}
    wide = wide.sort_values(keys, key=lambda c: c.map(rank) if c.name == "method" else c)
    return wide[keys + _columns(wide, STEERING_METRICS)].reset_index(drop=True)


def plot_steering(table: pd.DataFrame, pdf_path: str, png_path: str) -> None:
    """HET Fig. 7: each steering metric against alpha, one line per method; one row of panels per
    (model, evaluation set)."""
    panels = list(table.groupby(["model", "eval_dataset"], sort=False))
    metrics = [m for m in ("delta_cos", "map", "mrr") if m in table]
    fig, axes = plt.subplots(len(panels), len(metrics), figsize=(4.2 * len(metrics), 3.2 * len(panels)),
                             constrained_layout=True, squeeze=False)
    for row, ((model, data), part) in zip(axes, panels):
        for ax, metric in zip(row, metrics):
            for method, curve in part.groupby("method", sort=False):
                ax.errorbar(curve["alpha"], curve[metric], yerr=curve[f"{metric}_std"].fillna(0), marker="o",
                            markersize=3, capsize=2, label=method)
            ax.set_title(f"{model} on {data}: {STEERING_METRICS[metric]}", fontsize=9)
            ax.set_xlabel("steering strength alpha")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=6)
    save_figure(fig, pdf_path, png_path)


def sorted_scores(tidy: pd.DataFrame) -> pd.DataFrame:
    """HET Fig. 8's curves: per (model, evaluation set, SAE, side) the MS of scored latents sorted in
    descending order within each seed, then averaged over seeds rank by rank, up to the shortest
    seed's count."""
    keys = ["model", "dataset", "eval_dataset", "sae", "component"]
    tidy = tidy[np.isfinite(tidy["value"])].sort_values("value", ascending=False)
    tidy = tidy.assign(rank=tidy.groupby(keys + ["seed"]).cumcount())
    curves = tidy.groupby(keys + ["rank"]).agg(ms=("value", "mean"), seeds=("seed", "nunique")).reset_index()
    all_seeds = tidy.groupby(keys)["seed"].nunique().rename("all_seeds").reset_index()
    curves = curves.merge(all_seeds, on=keys)  # ranks every seed reaches: no jumps where one seed's curve ends
    return curves[curves["seeds"] == curves["all_seeds"]].drop(columns=["seeds", "all_seeds"]).reset_index(drop=True)


def monosemanticity_table(tidy: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per (model, evaluation set, SAE, side): latents on the mean curve, their median MS, and the mean MS
    of each seed's scored latents, mean ± std over seeds."""
    keys = ["model", "dataset", "eval_dataset", "sae", "component"]
    per_seed = tidy[np.isfinite(tidy["value"])].groupby(keys + ["seed"], sort=False)["value"].mean()
    spread = per_seed.groupby(keys, sort=False).agg(mean_ms="mean", mean_ms_std="std").reset_index()
    shape = curves.groupby(keys, sort=False)["ms"].agg(latents="size", median_ms="median").reset_index()
    return shape.merge(spread, on=keys)


def plot_monosemanticity(curves: pd.DataFrame, pdf_path: str, png_path: str) -> None:
    """HET Fig. 8: sorted MS per SAE, one panel per (model, side)."""
    panels = list(curves.groupby(["model", "eval_dataset", "component"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), constrained_layout=True, squeeze=False)
    for ax, ((model, data, side), part) in zip(axes[0], panels):
        for sae, curve in part.groupby("sae", sort=False):
            ax.plot(curve["rank"], curve["ms"], label=sae)
        ax.set_title(f"{model} on {data}: {side} latents")
        ax.set_xlabel("latent (sorted)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("monosemanticity score")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, pdf_path, png_path)


TABLES = {  # report-table --kind: (table function, its heading)
    "iso_table6": (table6, "ISO Table 6: modality gap, recall and classification of the encoders"),
    "iso_table3": (table3, "ISO Table 3: metrics of the SAE zoo (mean ± std over seeds; per-side metrics averaged)"),
    "het_table1": (table1, "HET Table 1: retrieval and zero-shot on latent codes, per method (mean ± std over seeds)"),
    "het_table2": (table1, "HET Table 2: Table 1 at other TopK sparsity levels K (mean ± std over seeds)"),
    "het_table3": (table1, "HET Table 3: Table 1 on other VLM backbones (mean ± std over seeds)"),
    "het_table4": (table1, "HET Table 4: Table 1 with BatchTopK (mean ± std over seeds)"),
    "iso_main": (iso_main, "ISO main results: reconstruction and probing accuracy of the MP-SAE and SAE-A per VLM "
                           "(mean ± std over seeds; the paper's values beside)"),
    "iso_tables9_11": (partial(gap_table, kind="iso_tables9_11"),
                       "ISO Tables 9-11: removing the modality gap (recall@1 on caption sets, zero-shot on ImageNet)"),
    "iso_table12": (partial(gap_table, kind="iso_table12"), "ISO Table 12: baselines A-C against bimodal-only reconstruction"),
    "iso_tables7_8": (arithmetic_table, "ISO Tables 7-8: vector arithmetic, OOD score and (r@10 + r@50) / 2"),
}


def write_kind(kind: str, tidy: pd.DataFrame, csv_path: str, md_path: str) -> None:
    """The real-data table ``kind`` (:data:`TABLES`) of ``tidy`` rows, csv and markdown."""
    function, heading = TABLES[kind]
    write_table(function(tidy), csv_path, md_path, heading)


BETA_SWEEP_METRICS = {"mse": "MSE", "r2": "R^2", "bimodal_energy_share": "energy in bimodal latents",
                      "degenerate_energy_share": "energy in degenerate latents (f = 1)"}


def beta_sweep_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """ISO Figs. 7-8's numbers: per (model, training set, evaluation set) and SAE, in order of its Iso-Energy weight
    beta, the reconstruction (MSE, R^2, averaged over the two modalities) and the energy shares of bimodal and of
    degenerate latents, mean ± std over seeds."""
    keys = ["model", "dataset", "eval_dataset", "sae", "beta"]
    rows = tidy[tidy["metric"].isin(list(BETA_SWEEP_METRICS)) & (tidy["method"].fillna("") == "")]
    wide = _wide(_seed_stats(rows, keys), keys, "metric").sort_values(["model", "dataset", "eval_dataset", "beta"])
    return wide[keys + _columns(wide, BETA_SWEEP_METRICS)].reset_index(drop=True)


def plot_beta_sweep(table: pd.DataFrame, pdf_path: str, png_path: str) -> None:
    """ISO Fig. 7 (MSE and R^2 against beta) and Fig. 8 (energy share of bimodal and of degenerate latents against
    beta), one row of panels per (model, evaluation set); beta 0 (no alignment loss) is drawn at a tenth of the
    smallest positive beta and marked."""
    panels = list(table.groupby(["model", "eval_dataset"], sort=False))
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 3.4 * len(panels)), constrained_layout=True, squeeze=False)
    positive = table.loc[table["beta"] > 0, "beta"]
    zero_at = positive.min() / 10 if len(positive) else 1e-7
    for (ax_rec, ax_energy), ((model, eval_dataset), rows) in zip(axes, panels):
        beta = rows["beta"].where(rows["beta"] > 0, zero_at)
        for ax, metrics in ((ax_rec, ("mse",)), (ax_energy, ("bimodal_energy_share", "degenerate_energy_share"))):
            for metric in metrics:
                if metric in rows:
                    ax.errorbar(beta, rows[metric], yerr=rows[f"{metric}_std"].fillna(0), marker="o", capsize=3,
                                label=BETA_SWEEP_METRICS[metric])
            ax.set_xscale("log")
            ax.set_xlabel("beta (alignment weight)" + (f"; beta 0 drawn at {zero_at:g}" if (rows["beta"] == 0).any() else ""))
            ax.grid(alpha=0.3)
        if "r2" in rows:
            twin = ax_rec.twinx()
            twin.errorbar(beta, rows["r2"], yerr=rows["r2_std"].fillna(0), marker="s", color="tab:red", capsize=3, label="R^2")
            twin.set_ylabel("R^2", color="tab:red")
        ax_rec.set_ylabel("MSE")
        ax_rec.set_title(f"Fig. 7: reconstruction ({model}, {eval_dataset})", fontsize=10)
        ax_energy.set_ylabel("share of the energy")
        ax_energy.set_ylim(-0.02, 1.02)
        ax_energy.set_title(f"Fig. 8: energy shares ({model}, {eval_dataset})", fontsize=10)
        ax_energy.legend(fontsize=8)
    save_figure(fig, pdf_path, png_path)


KNN_FIGURES = {  # kind: (methods in the paper's order, what the queries and the targets are, heading)
    "iso_fig23": (["baseline_delta", "baseline_source", "Q", "Q_SAE"], ("queries", "targets"),
                  "ISO Fig. 23: distance of queries and of targets to their 10th nearest target (vector arithmetic)"),
    "iso_fig25": (["reconstruction", "center", "bimodal", "random", "shift"], ("captions (OOD)", "images (ID)"),
                  "ISO Fig. 25: distance of each caption and image to its 10th nearest image, per gap-removal method"),
}


def knn_table(tidy: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The K-NN distance histograms of ISO Figs. 23 / 25 (``knn_hist`` rows, :data:`~vlsae.metrics.arithmetic.KNN_BINS`):
    per (model, SAE, evaluation set, method, population) the counts per bin, mean over seeds, and the OOD score."""
    from ..metrics.arithmetic import KNN_BINS

    methods = KNN_FIGURES[kind][0]
    keys = ["model", "dataset", "sae", "eval_dataset", "method"]
    rows = tidy[(tidy["metric"] == "knn_hist") & tidy["method"].isin(methods)]
    counts = rows.groupby(keys + ["population", "bin"])["value"].mean().reset_index()
    counts["distance_from"] = KNN_BINS[counts["bin"].astype(int)]
    ood = tidy[(tidy["metric"] == "ood") & tidy["method"].isin(methods)].groupby(keys)["value"].mean().rename("ood")
    return counts.merge(ood.reset_index(), on=keys, how="left")[keys + ["ood", "population", "bin", "distance_from", "value"]]


def plot_knn(table: pd.DataFrame, kind: str, pdf_path: str, png_path: str) -> None:
    """One row of panels per (model, SAE, evaluation set), one panel per method: the two histograms and the OOD score."""
    from ..metrics.arithmetic import KNN_BINS

    methods, (query, target), _ = KNN_FIGURES[kind]
    groups = list(table.groupby(["model", "sae", "eval_dataset"], sort=False))
    fig, axes = plt.subplots(len(groups), len(methods), figsize=(3.2 * len(methods), 2.8 * len(groups)),
                             constrained_layout=True, squeeze=False)
    for row, ((model, sae, eval_dataset), rows) in zip(axes, groups):
        for ax, method in zip(row, methods):
            of = rows[rows["method"] == method]
            for population, label, color in (("query", query, "tab:orange"), ("target", target, "tab:blue")):
                counts = of[of["population"] == population].sort_values("bin")["value"]
                if len(counts):
                    ax.stairs(counts.to_numpy(), KNN_BINS, fill=True, alpha=0.5, color=color, label=label)
            ood = of["ood"].iloc[0] if len(of) else float("nan")
            ax.set_title(f"{method}\nOOD score {ood:.2f} ({model}, {sae}, {eval_dataset})", fontsize=8)
            ax.set_xlabel("distance to the 10th nearest neighbour", fontsize=8)
        row[0].legend(fontsize=7)
    save_figure(fig, pdf_path, png_path)


def write_figure(kind: str, tidy: pd.DataFrame, csv_path: str, md_path: str, pdf_path: str, png_path: str) -> None:
    """HET Fig. 7 (``het_fig7``, from eval-steering rows), Fig. 8 (``het_fig8``, eval-monosemanticity) or ISO Figs.
    7-8 (``iso_figs7_8``, eval-saes rows of the beta sweep)."""
    if kind in KNN_FIGURES:
        table = knn_table(tidy, kind)
        write_table(table, csv_path, md_path, KNN_FIGURES[kind][2],
                    "Counts per bin of the distance to the 10th nearest neighbour (bins of 0.05 from its left edge "
                    "`distance_from`; larger distances in the last bin), mean over seeds; `ood`: the accuracy of the best "
                    "threshold on these distances (0.5: indistinguishable).")
        plot_knn(table, kind, pdf_path, png_path)
    elif kind == "iso_figs7_8":
        table = beta_sweep_table(tidy)
        write_table(table, csv_path, md_path, "ISO Figs. 7-8: reconstruction and energy in bimodal and degenerate "
                    "latents against the alignment weight beta (mean ± std over seeds)",
                    "Degenerate latents fire on every image and every text of the evaluation set (frequency 1; ISO "
                    "App. B); beta 0 is the SAE without the alignment loss.")
        plot_beta_sweep(table, pdf_path, png_path)
    elif kind == "het_fig7":
        table = steering_table(tidy)
        write_table(table, csv_path, md_path, "HET Fig. 7: concept steering against its strength alpha "
                    "(mean over concepts, then mean ± std over seeds)")
        plot_steering(table, pdf_path, png_path)
    elif kind == "het_fig8":
        curves = sorted_scores(tidy)
        write_table(monosemanticity_table(tidy, curves), csv_path, md_path,
                    "HET Fig. 8: monosemanticity scores (latents: ranks scored in every seed; sorted, mean over seeds)")
        plot_monosemanticity(curves, pdf_path, png_path)
    else:
        raise ValueError(f"unknown figure kind {kind!r}; choose one of {FIGURES}")


FIGURES = ("het_fig7", "het_fig8", "iso_figs7_8", "iso_fig23", "iso_fig25")
