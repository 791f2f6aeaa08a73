"""ISO App. C: Table 5 (dictionary recovery, SAE vs SAE-A) and Fig. 9 (cosine histograms of the toy DGP).

Table 5 input: tidy rows of ``eval-iso`` (``experiment, tau1, scored_truth, model, seed, truth, metric,
value``; metrics of :func:`vlsae.metrics.dictionary.evaluate_recovery`). Output: one row per experiment,
model and truth with the mean and std over seeds of every metric (csv), and a markdown copy: the
paper, the authors' code run here and ours side by side on each experiment's truth (Exp. 1 against
D2, Exp. 2 against D1, C.1), the claims of C.2 checked, then every metric against both truths.

Fig. 10 (the same helpers serve the real stores): PCA of each encoder's image and text embeddings with the
modality gap (DiM, W) and the modality-wise and global means.

Fig. 9 input: the evaluation stores of the toy DGP. Cosines of random image-image (II), text-text
(TT) and image-text (IT) pairs, of matching pairs (IT aligned), and of random unit vectors in
``R^d`` (Random) for reference; one panel per experiment, and their mean and std as a table.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import write_frame, write_text  # noqa: E402
from ..store import EmbeddingStore  # noqa: E402
from ..metrics.encoder import cosine_samples, difference_in_means, wasserstein  # noqa: E402
from . import save_figure  # noqa: E402

PAPER_TABLE5 = {("exp1", "SAE"): (0.197, 0.83), ("exp1", "SAE-A"): (0.185, 0.81),
                ("exp2", "SAE"): (0.396, 0.29), ("exp2", "SAE-A"): (0.184, 0.52)}
# The authors' code (0_DGP.ipynb: ToyGeneral, overcomplete's MpSAE, their train_multimodal_sae and alignment penalty;
# 500 epochs, np.random.seed(s) and torch.manual_seed(s)) run on this machine at the same settings and scored with the
# corrected metrics of vlsae.metrics.dictionary on each experiment's truth: seed -> (W, mma). README, "ISO toy DGP",
# tells how. Seeds marked * were run on 2026-12-02 by an earlier session, whose notes kept only their mean and std
# (3 decimals); the two values here are the pair with that mean and std. Their ToyGeneral raises on seed 2 at
# tau1 = 0.5 (two positive roots of its quartic), so Exp. 1 uses seeds 0, 1, 3.
AUTHORS_CODE_TABLE5: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("exp1", "SAE"): {"0*": (0.183, 0.731), "1": (0.145, 0.756)},
    ("exp1", "SAE-A"): {"0": (0.193, 0.704), "1": (0.165, 0.724), "3": (0.180, 0.756)},
    ("exp2", "SAE"): {"0-2*": (0.225, 0.784)},  # three seeds: mean 0.225 ± 0.032, 0.784 ± 0.058
    ("exp2", "SAE-A"): {"0*": (0.142, 0.833), "1*": (0.148, 0.869), "2": (0.119, 0.890)},
}
AUTHORS_EXP2_SAE_STD = (0.032, 0.058, 3)  # the earlier session's three Exp. 2 SAE seeds, kept as mean and std only
METRICS5 = ("W", "mma", "W_as_coded", "mma_as_coded", "W_hungarian", "mma_hungarian")
MMA_GAIN_EXP2, MMA_TOLERANCE_EXP1 = 0.1, 0.05
PAIR_TYPES = {"II": "tab:blue", "TT": "tab:orange", "IT": "tab:green", "IT (aligned)": "tab:red", "Random": "grey"}


def model_label(spec) -> str:
    """Table 5's name of an SAE: ``SAE-A`` when it trains with the Iso-Energy alignment loss, else ``SAE``."""
    return "SAE-A" if "iso_energy" in spec.aux else "SAE"


def table5(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, model, truth): ``{metric}_mean``, ``{metric}_std`` over seeds, R^2 and L0,
    the seed count, and whether the truth is the one the experiment is scored against."""
    keys = ["experiment", "tau1", "scored_truth", "model"]
    per_truth = tidy[tidy["truth"] != ""]
    stats = per_truth.groupby(keys + ["truth", "metric"])["value"].agg(["mean", "std"]).unstack("metric")
    stats.columns = [f"{metric}_{stat}" for stat, metric in stats.columns]
    shared = tidy[tidy["truth"] == ""].groupby(keys + ["metric"])["value"].agg(["mean", "std"]).unstack("metric")
    shared.columns = [f"{metric}_{stat}" for stat, metric in shared.columns]
    table = stats.reset_index().merge(shared.reset_index(), on=keys)
    table["seeds"] = table.merge(tidy.groupby(keys)["seed"].nunique().rename("n").reset_index(), on=keys)["n"]
    table["scored"] = table["truth"] == table["scored_truth"]
    order = [f"{m}_{s}" for m in (*METRICS5, "r2", "l0") for s in ("mean", "std")]
    return table[["experiment", "tau1", "model", "truth", "scored", *order, "seeds"]]


def claims(table: pd.DataFrame) -> list[str]:
    """ISO C.2 on each experiment's truth: in Exp. 2 SAE-A reaches the lower W and an mma higher by >= 0.1;
    in Exp. 1 the two models' mma agree within 0.05."""
    t = table[table["scored"]].set_index(["experiment", "model"])
    lines = []
    if {("exp2", "SAE"), ("exp2", "SAE-A")} <= set(t.index):
        sae, sae_a = t.loc[("exp2", "SAE")], t.loc[("exp2", "SAE-A")]
        gain = sae_a["mma_mean"] - sae["mma_mean"]
        holds = gain >= MMA_GAIN_EXP2 and sae_a["W_mean"] < sae["W_mean"]
        lines.append(f"- Exp. 2 (Iso-Energy holds): SAE-A mma - SAE mma = {gain:+.3f} (need >= {MMA_GAIN_EXP2}), "
                     f"W {sae_a['W_mean']:.3f} vs {sae['W_mean']:.3f} (need lower): **{'holds' if holds else 'does not hold'}**")
    if {("exp1", "SAE"), ("exp1", "SAE-A")} <= set(t.index):
        gap = abs(t.loc[("exp1", "SAE-A"), "mma_mean"] - t.loc[("exp1", "SAE"), "mma_mean"])
        lines.append(f"- Exp. 1 (Iso-Energy violated): |SAE-A mma - SAE mma| = {gap:.3f} (need < {MMA_TOLERANCE_EXP1}): "
                     f"**{'holds' if gap < MMA_TOLERANCE_EXP1 else 'does not hold'}**")
    return lines


def _cell(mean, std) -> str:
    return f"{mean:.3f} ± {0.0 if pd.isna(std) else std:.3f}"


def authors_stats(experiment: str, model: str) -> tuple[float, float, float, float, int] | None:
    """``(W mean, W std, mma mean, mma std, seeds)`` of the authors' code (:data:`AUTHORS_CODE_TABLE5`)."""
    runs = AUTHORS_CODE_TABLE5.get((experiment, model))
    if not runs:
        return None
    if (experiment, model) == ("exp2", "SAE"):
        (w, mma), = runs.values()
        return w, AUTHORS_EXP2_SAE_STD[0], mma, AUTHORS_EXP2_SAE_STD[1], AUTHORS_EXP2_SAE_STD[2]
    values = np.array(list(runs.values()))
    std = values.std(0, ddof=1) if len(values) > 1 else np.zeros(2)
    return values[:, 0].mean(), std[0], values[:, 1].mean(), std[1], len(values)


def _authors(experiment: str, model: str, at: int) -> str:
    """The authors'-code cell of one metric (``at``: 0 for W, 2 for mma), its seed count if not 3."""
    row = authors_stats(experiment, model)
    if row is None:
        return "not run"
    return _cell(row[at], row[at + 1]) + ("" if row[4] == 3 else f" ({row[4]} seed{'s' if row[4] > 1 else ''})")


def write_table5(table: pd.DataFrame, csv_path: str, md_path: str) -> None:
    write_frame(csv_path, table)
    scored = table[table["scored"]]
    side = pd.DataFrame({
        "experiment": scored["experiment"], "truth": scored["truth"], "model": scored["model"],
        "W (paper)": [PAPER_TABLE5.get((e, m), (np.nan,))[0] for e, m in zip(scored["experiment"], scored["model"])],
        "W (authors' code)": [_authors(e, m, 0) for e, m in zip(scored["experiment"], scored["model"])],
        "W (ours)": [_cell(m, s) for m, s in zip(scored["W_mean"], scored["W_std"])],
        "mma (paper)": [PAPER_TABLE5.get((e, m), (np.nan, np.nan))[1] for e, m in zip(scored["experiment"], scored["model"])],
        "mma (authors' code)": [_authors(e, m, 2) for e, m in zip(scored["experiment"], scored["model"])],
        "mma (ours)": [_cell(m, s) for m, s in zip(scored["mma_mean"], scored["mma_std"])],
        "R2": scored["r2_mean"].map("{:.4f}".format), "seeds": scored["seeds"]})
    every = table.assign(**{m: [_cell(a, b) for a, b in zip(table[f"{m}_mean"], table[f"{m}_std"])] for m in METRICS5})
    every = every[["experiment", "model", "truth", *METRICS5]]
    write_text(md_path, "# ISO Table 5: dictionary recovery on the toy DGP (mean ± std over seeds)\n\n"
               "Each experiment on its truth (Exp. 1 against D2, the unimodal truth; Exp. 2 against D1, the bimodal "
               "truth): the paper, the authors' code run here, ours. Both SAEs are Matching Pursuit as in the authors' "
               "run (overcomplete's signed selection and full decoder gradient: `iso_toy.sae.selection`, "
               "`iso_toy.training.decoder_grad`); the authors'-code cells are that code run on this machine and scored with "
               "these metrics (README.md, \"ISO toy DGP\").\n\n"
               + "\n".join(claims(table)) + "\n\n" + side.to_markdown(index=False) + "\n\n"
               "Every metric against both truths (`_as_coded`: the notebook's truth energies and row order; "
               "`_hungarian`: one-to-one matching of the identifiable truth's atoms):\n\n"
               + every.to_markdown(index=False) + "\n")


def pair_cosines(store: EmbeddingStore, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Cosines of each pair type over the first ``n`` pairs of ``store``."""
    head = next(store.iter_batches(n))
    return cosine_samples(head.image, head.text, seed)


def cosine_table(cosines: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """Mean and std of each pair type's cosines, per experiment."""
    return pd.DataFrame([{"panel": e, "pairs": p, "mean": float(c.mean()), "std": float(c.std()), "n": len(c)}
                         for e, by_type in cosines.items() for p, c in by_type.items()])


def write_cosine_table(table: pd.DataFrame, csv_path: str, md_path: str, heading: str) -> None:
    write_frame(csv_path, table)
    write_text(md_path, f"# {heading}\n\n"
               + table.to_markdown(index=False, floatfmt=".3f") + "\n")


def panel_titles(stores: dict[str, EmbeddingStore]) -> dict[str, str]:
    """A toy-DGP store's panel names its tau1 and tau2; any other store keeps its name."""
    return {name: f"toy DGP, {name} (tau1 = {store.metadata['tau1']:g}, tau2 = {store.metadata['tau2']:g})"
            if "tau1" in store.metadata else name for name, store in stores.items()}


def plot_cosines(cosines: dict[str, dict[str, np.ndarray]], titles: dict[str, str], pdf_path: str, png_path: str) -> None:
    fig, axes = plt.subplots(1, len(cosines), figsize=(5 * len(cosines), 3.4), constrained_layout=True, squeeze=False)
    bins = np.linspace(-0.4, 1.0, 71)
    for ax, (experiment, by_type) in zip(axes[0], cosines.items()):
        for pairs, values in by_type.items():
            ax.hist(values, bins=bins, density=True, histtype="stepfilled", alpha=0.35, color=PAIR_TYPES[pairs],
                    label=pairs)
        ax.set_title(titles[experiment])
        ax.set_xlabel("cosine similarity")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, pdf_path, png_path)


def pca_panel(store: EmbeddingStore, n: int) -> dict:
    """ISO Fig. 10 for one store: the first ``n`` pairs' image and text embeddings projected on the first two principal
    components of both together (centred on their joint mean), the projected image, text and global means, the
    modality gap of the sample as DiM and W (:mod:`vlsae.metrics.encoder`), and each component's share of the variance."""
    head = next(store.iter_batches(n))
    image, text = head.image.astype(np.float64), head.text.astype(np.float64)
    both = np.concatenate([image, text])
    centre = both.mean(0)
    _, singular, components = np.linalg.svd(both - centre, full_matrices=False)
    project = lambda x: (x - centre) @ components[:2].T  # noqa: E731
    return {"image": project(image), "text": project(text),
            "means": {"image": project(image.mean(0, keepdims=True))[0], "text": project(text.mean(0, keepdims=True))[0],
                      "global": project(centre[None])[0]},
            "dim": difference_in_means(image.mean(0), text.mean(0)), "wasserstein": wasserstein(image, text),
            "explained": (singular[:2] ** 2 / (singular ** 2).sum()).tolist(), "n": len(image)}


def pca_table(panels: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"panel": name, "pairs": p["n"], "gap_dim": p["dim"], "gap_wasserstein": p["wasserstein"],
                          "pc1_variance": p["explained"][0], "pc2_variance": p["explained"][1]} for name, p in panels.items()])


def plot_pca(panels: dict[str, dict], pdf_path: str, png_path: str) -> None:
    """ISO Fig. 10: per encoder, images (blue) and texts (yellow) on the first two principal components; crosses mark the
    image, text and global means; the title states DiM and W."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), constrained_layout=True, squeeze=False)
    for ax, (name, p) in zip(axes[0], panels.items()):
        ax.scatter(*p["image"].T, s=4, alpha=0.4, color="tab:blue", label="image")
        ax.scatter(*p["text"].T, s=4, alpha=0.4, color="gold", label="text")
        for which, color in (("image", "navy"), ("text", "darkgoldenrod"), ("global", "black")):
            ax.scatter(*p["means"][which], marker="x", s=90, linewidths=2.5, color=color, label=f"{which} mean")
        ax.set_title(f"{name}\nDiM = {p['dim']:.3f}, W = {p['wasserstein']:.3f}", fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * p['explained'][0]:.0f}%)")
        ax.set_ylabel(f"PC2 ({100 * p['explained'][1]:.0f}%)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    save_figure(fig, pdf_path, png_path)
