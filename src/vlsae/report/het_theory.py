"""HET theory figure: phase of the global minimiser against lambda and rho (Props. 3 and 4).

Input: rows of :func:`vlsae.theory.phase_boundaries` (``loss, boundary, rho, lambda_found,
lambda_closed_form, relative_error``). Output: the table (csv + markdown) and a two-panel figure,
one panel per auxiliary loss, with the closed-form thresholds as lines, the numerically found
boundaries as markers, and the phases shaded.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import write_frame, write_text  # noqa: E402
from . import save_figure  # noqa: E402
from ..theory import exp_quantiles, group_sparse_thresholds, iso_threshold, lambda_dag  # noqa: E402

PHASE_COLORS = {"separate": "#dbe9f6", "shared": "#fde0c5", "dead": "#e0e0e0"}


def write_table(table: pd.DataFrame, csv_path: str, md_path: str) -> None:
    table = table.sort_values(["loss", "boundary", "rho"]).reset_index(drop=True)
    write_frame(csv_path, table)
    worst = table["relative_error"].max()
    write_text(md_path, "# HET theory: phase boundaries, numerical vs closed form (Props. 3 and 4)\n\n"
               f"Largest relative error: {worst:.2%}.\n\n" + table.to_markdown(index=False, floatfmt=".4f") + "\n")


def plot(table: pd.DataFrame, pdf_path: str, png_path: str) -> None:
    rho = np.linspace(0.02, 0.98, 200)
    l_dag = lambda_dag(exp_quantiles())
    iso = np.array([iso_threshold(r) for r in rho])
    gs_star, gs_dead = np.array([group_sparse_thresholds(r, l_dag) for r in rho]).T
    fig, (ax_iso, ax_gs) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    top = 1.6 * max(iso.max(), gs_dead.max())  # head room for the legend
    ax_iso.fill_between(rho, 0, iso, color=PHASE_COLORS["separate"], label="separate [phi psi]")
    ax_iso.fill_between(rho, iso, top, color=PHASE_COLORS["shared"], label="shared (phi+psi)/|phi+psi|")
    ax_iso.plot(rho, iso, "k-", label="closed form 2(1-rho)/(1+rho)")
    ax_gs.fill_between(rho, 0, gs_star, color=PHASE_COLORS["separate"], label="separate")
    ax_gs.fill_between(rho, gs_star, gs_dead, color=PHASE_COLORS["shared"], label="shared")
    ax_gs.fill_between(rho, gs_dead, top, color=PHASE_COLORS["dead"], label="dead")
    ax_gs.plot(rho, gs_star, "k-", label="closed form lambda*")
    ax_gs.plot(rho, gs_dead, "k--", label="closed form sqrt(1+rho) l_dag")
    for ax, loss, title in ((ax_iso, "iso_energy", "Iso-Energy (Prop. 4)"), (ax_gs, "group_sparse", "Group-sparse (Prop. 3)")):
        found = table[table["loss"] == loss]
        ax.plot(found["rho"], found["lambda_found"], "o", color="tab:red", label="numerical minimiser")
        ax.set(title=title, xlabel="rho = phi . psi", ylabel="lambda", xlim=(0, 1), ylim=(0, top))
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    save_figure(fig, pdf_path, png_path)
