"""ISO Figs. 12-17: the latents of the MP-SAE and SAE-A seen one by one (App. E.2.2-E.3, G).

Input: the two SAEs of ``real_saes.selections.iso_main`` (first seed, first store that trains them) and the
first ``n`` pairs of an evaluation store. Per latent ``i``: the energies ``E_img, E_txt`` (eq. 5), the modality score
``mu``, its class at ``tau`` (bimodal, image-only, text-only), the frequency ``f`` (share of images and texts on which
it is non-zero), its accuracy as a modality probe (E.3, :func:`~vlsae.metrics.modality.probe_accuracy`).

* Fig. 12: the share of the bridge mass ``|B_Sigma|`` (``B_Sigma = Sigma * (D D^T)``, ``Sigma`` the paired cross
  moment of eq. 6) on pairs adjacent to a bimodal latent, between two image-only, two text-only, or an image-only and
  a text-only latent, as the threshold ``tau`` runs from 0 to 0.5. We plot absolute masses, so the shares add to 1;
  ``rho`` (Table 3) uses the signed sums.
* Fig. 13: FDA (eqs. 7-9) made visible: the atoms in the plane of their first two principal components (the paper
  draws 3-D projections), coloured by ``mu``, sized by image (left) and text (right) energy, and the heaviest moves of
  the transport plan ``Gamma`` between the two (centre).
* Fig. 14: each latent's probe accuracy against its ``mu``, sized by energy; the title gives ``p_acc``.
* Fig. 15: the scores ``A . D_i`` of images and texts for the highest- and the lowest-energy bimodal latent of SAE-A,
  dark where the latent is active on the image or its caption.
* Fig. 16: energy against ``mu`` (the domain-wise energy, log scale), and the cosines between the highest-energy
  unimodal atoms (the paper finds them nearly parallel: small variations around a modality bias).
* Fig. 17: energy and frequency of the latents sorted by energy, and ``E / f`` (the mean squared activation when active).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..metrics import modality  # noqa: E402
from ..metrics.real import SAERun  # noqa: E402
from ..store import MODALITIES, EmbeddingStore  # noqa: E402
from . import save_figure  # noqa: E402
from .real import write_table  # noqa: E402

STEMS = {12: "iso_fig12_bridge_threshold", 13: "iso_fig13_fda", 14: "iso_fig14_probe_accuracy",
         15: "iso_fig15_scores", 16: "iso_fig16_energy_domains", 17: "iso_fig17_energy_frequency"}
CLASSES = {"bimodal": "tab:green", "image-only": "tab:blue", "text-only": "goldenrod", "dead": "lightgrey"}
TAUS = np.linspace(0.0, 0.5, 26)
MU_COLORS = matplotlib.colors.LinearSegmentedColormap.from_list("mu", ["goldenrod", "tab:green", "tab:blue"])  # text -> image


def latent_classes(mu: np.ndarray, tau: float) -> np.ndarray:
    """``bimodal`` (``tau <= mu <= 1 - tau``), ``image-only`` (above), ``text-only`` (below) or ``dead`` (no energy)."""
    with np.errstate(invalid="ignore"):
        return np.select([np.isnan(mu), mu > 1 - tau, mu < tau], ["dead", "image-only", "text-only"], "bimodal")


def latent_stats(run: SAERun, image: np.ndarray, text: np.ndarray, tau: float = 0.05) -> dict:
    """Per-latent statistics of one SAE on paired ``image``, ``text`` embeddings (see the module docstring), its atoms,
    codes and the paired cross moment ``Sigma``."""
    codes = {side: run(side, x)[1].astype(np.float64) for side, x in zip(MODALITIES, (image, text))}
    atoms = run.atoms("image").astype(np.float64)
    atoms /= np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-12)
    energy = {side: modality.energy(z) for side, z in codes.items()}
    mu = modality.modality_score(energy["image"], energy["text"])
    total = (energy["image"] + energy["text"]) / 2
    fired = sum((z != 0).sum(0) for z in codes.values())
    live = total > 0
    accuracy = np.full(len(atoms), np.nan)
    accuracy[live] = modality.probe_accuracy(atoms[live], image, text, mu[live], tau)
    bimodal = modality.bimodal_mask(mu, tau)
    return {"atoms": atoms, "codes": codes, "energy": energy, "total": total, "mu": mu, "frequency": fired / (2 * len(image)),
            "accuracy": accuracy, "cross": codes["image"].T @ codes["text"] / len(image), "class": latent_classes(mu, tau),
            "p_acc": modality.probing_score(accuracy[live], bimodal[live], total[live]),
            "fda": modality.fda(modality.transport_plan(energy["image"], energy["text"], atoms), atoms, bimodal, total)}


def bridge_shares(stats: dict, taus=TAUS) -> pd.DataFrame:
    """Fig. 12's data: per ``tau``, the share of ``sum |B_Sigma|`` on each kind of latent pair."""
    bridge = np.abs(stats["cross"] * (stats["atoms"] @ stats["atoms"].T))
    rows = []
    for tau in taus:
        kind = latent_classes(stats["mu"], tau)
        one = {c: (kind == c).astype(float) for c in ("image-only", "text-only")}
        mass = {"image-image": one["image-only"] @ bridge @ one["image-only"],
                "text-text": one["text-only"] @ bridge @ one["text-only"],
                "image-text": one["image-only"] @ bridge @ one["text-only"] + one["text-only"] @ bridge @ one["image-only"]}
        mass["bimodal-adjacent"] = bridge.sum() - sum(mass.values())
        rows += [{"tau": float(tau), "pairs": k, "share": v / bridge.sum() if bridge.sum() > 0 else 0.0} for k, v in mass.items()]
    return pd.DataFrame(rows)


def extreme_bimodal(stats: dict) -> list[tuple[str, int, bool]]:
    """Fig. 15's two latents: the highest- and the lowest-energy live bimodal one; ``(label, latent, in the band)``.
    Without bimodal latents (toy embeddings) the live latents nearest ``mu = 0.5`` stand in, marked as such."""
    live = stats["total"] > 0
    pool = np.flatnonzero(live & (stats["class"] == "bimodal"))
    banded = len(pool) > 0
    if not banded:
        pool = np.flatnonzero(live)[np.argsort(np.abs(stats["mu"][live] - 0.5))[:10]]
    order = pool[np.argsort(-stats["total"][pool])]
    return [("high energy", int(order[0]), banded), ("low energy", int(order[-1]), banded)]


def _pca2(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    return centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T


def _scatter_classes(ax, x, y, stats, sizes=None):
    for name, color in CLASSES.items():
        keep = stats["class"] == name
        if keep.any():
            ax.scatter(x[keep], y[keep], s=8 if sizes is None else sizes[keep], color=color, alpha=0.7, label=name)


def write_figures(runs: dict[str, dict], tables: str, figures: str) -> None:
    """All six figures and their tables; ``runs`` maps an SAE's label (e.g. ``SAE``, ``SAE-A``) to :func:`latent_stats`."""
    names = list(runs)
    out = lambda n, ext: f"{figures if ext in ('pdf', 'png') else tables}/{STEMS[n]}.{ext}"  # noqa: E731

    def done(n, table, heading, note, fig):
        write_table(table, out(n, "csv"), out(n, "md"), heading, note)
        save_figure(fig, out(n, "pdf"), out(n, "png"))

    # Fig. 12
    shares = pd.concat([bridge_shares(s).assign(sae=n) for n, s in runs.items()])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), constrained_layout=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = shares[shares["sae"] == name].pivot(index="tau", columns="pairs", values="share")
        ax.stackplot(rows.index, rows.T.values, labels=rows.columns, alpha=0.8)
        ax.axvline(0.05, color="black", ls="--", lw=1)
        ax.set(title=f"{name}: bridge mass |B_Sigma| by latent pair", xlabel="unimodality threshold tau", ylabel="share",
               xlim=(0, 0.5), ylim=(0, 1))
    axes[0, 0].legend(fontsize=7, loc="lower left")
    done(12, shares[["sae", "tau", "pairs", "share"]], "ISO Fig. 12: bridge mass by latent pair against the threshold tau",
         "Shares of sum |B_Sigma| (absolute values; rho uses the signed sums); the dashed line is tau = 0.05.", fig)

    # Fig. 13
    fig, axes = plt.subplots(len(names), 3, figsize=(13, 4 * len(names)), constrained_layout=True, squeeze=False)
    rows = []
    for row, name in zip(axes, names):
        s = runs[name]
        xy, live = _pca2(s["atoms"]), s["total"] > 0
        plan = modality.transport_plan(s["energy"]["image"], s["energy"]["text"], s["atoms"])
        for ax, side in ((row[0], "image"), (row[2], "text")):
            e = s["energy"][side][live]
            ax.scatter(*xy[live].T, s=2 + 400 * e / max(e.max(), 1e-12), c=s["mu"][live], cmap=MU_COLORS, vmin=0, vmax=1,
                       alpha=0.7)
            ax.set(title=f"{name}: atoms sized by {side} energy", xlabel="PC1", ylabel="PC2")
        for flat in np.argsort(-plan.mass, axis=None)[:200]:
            i, j = np.unravel_index(flat, plan.mass.shape)
            a, b = xy[plan.rows[i]], xy[plan.cols[j]]
            row[1].plot([a[0], b[0]], [a[1], b[1]], color="grey", alpha=min(1.0, 0.2 + 5 * plan.mass[i, j]), lw=0.8)
        row[1].scatter(*xy[live].T, s=3, c=s["mu"][live], cmap=MU_COLORS, vmin=0, vmax=1)
        fda = f"FDA = {s['fda']:.3f}" if np.isfinite(s["fda"]) else "FDA undefined (no bimodal latent)"
        row[1].set(title=f"{name}: heaviest moves of Gamma, {fda}", xlabel="PC1")
        rows.append({"sae": name, "fda": s["fda"], "moves": int((plan.mass > 0).sum()),
                     "mass_on_same_atom": float(plan.mass[plan.rows[:, None] == plan.cols[None, :]].sum())})
    done(13, pd.DataFrame(rows), "ISO Fig. 13: FDA, the transport of image energy onto text energy",
         "Live atoms in the plane of their first two principal components (the paper draws 3-D projections), coloured by "
         "mu (blue: image, green: bimodal, gold: text); lines: the 200 heaviest moves of the optimal plan Gamma.", fig)

    # Fig. 14
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), constrained_layout=True, squeeze=False)
    per_latent = []
    for ax, name in zip(axes[0], names):
        s = runs[name]
        _scatter_classes(ax, s["mu"], s["accuracy"], s, 4 + 300 * s["total"] / max(s["total"].max(), 1e-12))
        ax.axhline(0.5, color="black", lw=0.8, ls=":")
        ax.set(title=f"{name}: p_acc = {s['p_acc']:.3f}", xlabel="modality score mu", ylabel="probe accuracy", xlim=(-0.02, 1.02))
        per_latent.append(pd.DataFrame({"sae": name, "latent": np.arange(len(s["mu"])), "mu": s["mu"], "class": s["class"],
                                        "accuracy": s["accuracy"], "energy": s["total"], "frequency": s["frequency"]}))
    axes[0, 0].legend(fontsize=7)
    latents = pd.concat(per_latent)
    done(14, latents[latents["energy"] > 0], "ISO Fig. 14: each latent as a modality probe",
         "Unimodal latents should reach accuracy 1, bimodal ones 0.5 (App. E.3); marker size: energy.", fig)

    # Fig. 15
    s, name = runs[names[-1]], names[-1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    rows = []
    for ax, (label, latent, banded) in zip(axes, extreme_bimodal(s)):
        active = (s["codes"]["image"][:, latent] != 0) | (s["codes"]["text"][:, latent] != 0)
        bins = np.linspace(min(v[:, latent].min() for v in s["scores"].values()),
                           max(v[:, latent].max() for v in s["scores"].values()), 50)
        for side, color in (("image", "tab:blue"), ("text", "gold")):
            scores = s["scores"][side][:, latent]
            ax.hist(scores[~active], bins=bins, color=color, alpha=0.3, label=f"{side}, inactive pairs")
            ax.hist(scores[active], bins=bins, color=color, alpha=0.9, label=f"{side}, active pairs", histtype="stepfilled",
                    edgecolor="black")
        flag = "" if banded else "\n(no bimodal latent: the nearest to mu = 0.5)"
        ax.set_title(f"{name}, {label} latent {latent}, E = {s['total'][latent]:.2g}, mu = {s['mu'][latent]:.2f}{flag}",
                     fontsize=9)
        ax.set(xlabel="score A . D_i", yscale="log")
        rows.append({"sae": name, "which": label, "latent": latent, "bimodal": banded, "energy": s["total"][latent],
                     "mu": s["mu"][latent], "active_pairs": int(active.sum())})
    axes[0].legend(fontsize=7)
    done(15, pd.DataFrame(rows), "ISO Fig. 15: scores of images and texts on a high- and a low-energy bimodal latent",
         "Dark: pairs on which the latent is active (image or caption); light: the others (log counts).", fig)

    # Fig. 16
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 3.8 * len(names)), constrained_layout=True, squeeze=False)
    rows = []
    for (ax_e, ax_c), name in zip(axes, names):
        s = runs[name]
        live = s["total"] > 0
        _scatter_classes(ax_e, s["mu"], np.where(live, s["total"], np.nan), s)
        ax_e.set(yscale="log", title=f"{name}: energy by modality score", xlabel="mu", ylabel="energy")
        unimodal = np.flatnonzero(live & np.isin(s["class"], ["image-only", "text-only"]))
        top = unimodal[np.argsort(-s["total"][unimodal])[:8]]
        cos = s["atoms"][top] @ s["atoms"][top].T
        image = cos[np.ix_(*(np.flatnonzero(s["class"][top] == "image-only"),) * 2)]
        text = cos[np.ix_(*(np.flatnonzero(s["class"][top] == "text-only"),) * 2)]
        mean_off = lambda c: float((c.sum() - np.trace(c)) / (c.size - len(c))) if len(c) > 1 else np.nan  # noqa: E731
        fig.colorbar(ax_c.imshow(cos, vmin=-1, vmax=1, cmap="RdBu_r"), ax=ax_c, label="cosine")
        ax_c.set(title=f"cosines of the {len(top)} highest-energy unimodal atoms", xticks=range(len(top)), yticks=range(len(top)),
                 xticklabels=[f"{i}{s['class'][i][0].upper()}" for i in top], yticklabels=[str(i) for i in top])
        ax_c.tick_params(labelsize=6)
        rows.append({"sae": name, "top_unimodal": ", ".join(map(str, top)), "mean_cos_image_only": mean_off(image),
                     "mean_cos_text_only": mean_off(text), "energy_share_of_top": float(s["total"][top].sum() / s["total"].sum())})
    axes[0, 0].legend(fontsize=7)
    done(16, pd.DataFrame(rows), "ISO Fig. 16: energy by modality, and the highest-energy unimodal atoms",
         "Mean cosine among the top image-only (text-only) atoms of the eight highest-energy unimodal ones.", fig)

    # Fig. 17
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), constrained_layout=True, squeeze=False)
    rows = []
    for ax, name in zip(axes[0], names):
        s = runs[name]
        order = np.argsort(-s["total"])
        order = order[s["total"][order] > 0]
        e, f = s["total"][order], s["frequency"][order]
        for values, label in ((e, "energy E"), (f, "frequency f"), (e / np.maximum(f, 1e-12), "E / f")):
            ax.plot(values, label=label)
        ax.set(yscale="log", title=f"{name}: latents sorted by energy", xlabel="rank")
        rows.append(pd.DataFrame({"sae": name, "rank": np.arange(len(order)), "latent": order, "energy": e, "frequency": f,
                                  "energy_per_frequency": e / np.maximum(f, 1e-12)}))
    axes[0, 0].legend(fontsize=7)
    done(17, pd.concat(rows), "ISO Fig. 17: energy and frequency of the latents, sorted by energy",
         "E / f is the mean squared activation when the latent is active.", fig)


def feature_runs(runs: list[tuple[str, str]], store: EmbeddingStore, pairs: int, tau: float = 0.05, device: str = "cpu"):
    """:func:`latent_stats` of each ``(label, run folder)`` on the first ``pairs`` pairs of ``store``, with the scores
    ``A . D_i`` of every image and text (Fig. 15)."""
    import torch

    from ..sae import load_paired_sae

    head = next(store.iter_batches(pairs))
    out = {}
    for label, folder in runs:
        run = SAERun(load_paired_sae(folder), torch.device(device))
        stats = latent_stats(run, head.image, head.text, tau)
        stats["scores"] = {side: getattr(head, side).astype(np.float64) @ stats["atoms"].T for side in MODALITIES}
        out[label] = stats
    return out
