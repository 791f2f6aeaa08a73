"""Report functions on hand-made tidy metrics."""


import numpy as np
import pandas as pd
import pytest

from vlsae.metrics.synthetic import METRICS
from vlsae.report.het_fig6 import claims, wide_table
from vlsae.report.iso_toy import claims as iso_claims
from vlsae.report.iso_toy import table5


def _rows(method, sae_id, seed, recovery, alignment):
    values = dict.fromkeys(METRICS, 0.5) | {"feature_recovery_error": recovery, "alignment_error": alignment}
    return [{"method": method, "alpha": 0.5, "seed": seed, "sae_id": sae_id, "metric": k, "value": v}
            for k, v in values.items()]


SWEEP = {f"{loss}{mult}": [loss, mult] for loss in ("iso_energy", "group_sparse") for mult in (0.25, 4.0)}


def _tidy(post_hoc_recovery):
    rows = []
    for seed in (0, 1):
        rows += _rows("shared", "shared", seed, 0.05, 0.9)
        rows += _rows("modality-specific", "specific", seed, 0.02, 1.0)
        rows += _rows("modality-specific + post-hoc", "specific", seed, post_hoc_recovery, 0.4)
        for mult in (0.25, 4.0):
            rows += _rows("shared + iso_energy", f"iso_energy{mult}", seed, 0.03 * mult, 0.5 / mult)
            rows += _rows("shared + group_sparse", f"group_sparse{mult}", seed, 0.04, 0.7)
    return pd.DataFrame(rows)


def test_fig6_table_multipliers_and_claims():
    table = wide_table(_tidy(0.02), SWEEP)
    assert len(table) == 2 * (3 + 4)
    iso = table[table["loss"] == "iso_energy"]
    assert sorted(set(iso["multiplier"])) == [0.25, 4.0]
    assert table.loc[table["method"] == "shared", "multiplier"].isna().all()
    # best iso: recovery 0.0075 at x0.25, alignment 0.125 at x4 -> post-hoc (0.02, 0.4) loses both
    lines = claims(table)
    assert "0.0075" in lines[0] and "does not hold" in lines[0]
    assert "0.1250" in lines[1] and "does not hold" in lines[1]
    table = wide_table(_tidy(0.005), SWEEP)
    assert "**holds**" in claims(table)[0]
    # alignment errors: iso x0.25 2.0, x4 0.125; group 0.7; post-hoc 0.4 -> only iso x4 lies below 0.3
    assert len(claims(table)) == 2
    assert claims(table, floor=0.3)[2].endswith("below it (codes that drop modality-specific concepts): "
                                                "shared + iso_energy x4 (0.1250)")
    assert claims(table, floor=0.1)[2].endswith("none")


def _table5_rows(mma_exp2_sae_a, w_exp2_sae_a=0.2):
    """Tidy eval-iso rows: each experiment scored on its truth; the other truth gets worse values."""
    values = {("exp1", "SAE"): (0.2, 0.80), ("exp1", "SAE-A"): (0.2, 0.78),
              ("exp2", "SAE"): (0.4, 0.70), ("exp2", "SAE-A"): (w_exp2_sae_a, mma_exp2_sae_a)}
    scored = {"exp1": "unimodal", "exp2": "bimodal"}
    rows = []
    for (e, m), (w, mma) in values.items():
        for seed in (0, 1, 2):
            keys = {"experiment": e, "tau1": 0.5, "scored_truth": scored[e], "model": m, "seed": seed, "sae_id": "s"}
            rows += [{**keys, "truth": "", "metric": "r2", "value": 0.99}, {**keys, "truth": "", "metric": "l0", "value": 6.0}]
            for truth in ("bimodal", "unimodal"):
                worse = 0.0 if truth == scored[e] else 0.3
                rows += [{**keys, "truth": truth, "metric": metric, "value": value + 0.01 * seed}
                         for metric, value in (("W", w + worse), ("mma", mma - worse), ("W_as_coded", w),
                                               ("mma_as_coded", 0.1), ("W_hungarian", 0.5), ("mma_hungarian", 0.5))]
    return pd.DataFrame(rows)


def test_table5_means_over_seeds_and_claims(tmp_path):
    from vlsae.report.iso_toy import write_table5

    table = table5(_table5_rows(0.85))
    assert len(table) == 8 and table["scored"].sum() == 4  # 2 experiments x 2 models x 2 truths
    row = table[table["scored"]].set_index(["experiment", "model"]).loc[("exp2", "SAE-A")]
    assert row["truth"] == "bimodal" and row["seeds"] == 3 and row["r2_mean"] == pytest.approx(0.99)
    assert row["mma_mean"] == pytest.approx(0.86) and row["mma_std"] == pytest.approx(0.01)
    lines = iso_claims(table)
    assert "+0.150" in lines[0] and "**holds**" in lines[0]  # 0.86 - 0.71, on the scored truth only
    assert "0.020" in lines[1] and "**holds**" in lines[1]
    assert "does not hold" in iso_claims(table5(_table5_rows(0.75)))[0]  # margin 0.05 < 0.1
    assert "does not hold" in iso_claims(table5(_table5_rows(0.85, w_exp2_sae_a=0.5)))[0]  # W not lower
    write_table5(table, str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
    md = (tmp_path / "t.md").read_text()
    assert "W (paper)" in md and "W (authors' code)" in md and "0.860 ± 0.010" in md and "0.396" in md


def test_table5_authors_code_cells_are_mean_and_std_of_their_seeds(tmp_path, monkeypatch):
    import vlsae.report.iso_toy as iso_toy

    monkeypatch.setattr(iso_toy, "AUTHORS_CODE_TABLE5", {("exp2", "SAE"): {"0-2*": (0.225, 0.784)},
                                                          ("exp2", "SAE-A"): {"0": (0.1, 0.8), "1": (0.2, 0.9)}})
    iso_toy.write_table5(table5(_table5_rows(0.85)), str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
    side = {cells[2]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]]
                                          for line in (tmp_path / "t.md").read_text().splitlines()
                                          if line.startswith("| exp2") and line.count("±") >= 4)}
    assert side["SAE"][4] == "0.225 ± 0.032" and side["SAE"][7] == "0.784 ± 0.058"
    assert side["SAE-A"][4] == "0.150 ± 0.071 (2 seeds)" and side["SAE-A"][7] == "0.850 ± 0.071 (2 seeds)"
    assert (tmp_path / "t.md").read_text().count("not run") == 4  # Exp. 1: W and mma of both models


def test_monosemanticity_curves_average_sorted_seeds_up_to_the_shortest():
    from vlsae.report.real import monosemanticity_table, sorted_scores

    keys = {"model": "m", "dataset": "d", "eval_dataset": "e", "sae": "s", "component": "image", "metric": "ms"}
    values = {0: [0.2, 0.9, 0.5, np.nan], 1: [0.7, 0.1, np.inf]}  # NaN / inf: no pair to score, left out
    tidy = pd.DataFrame([{**keys, "seed": seed, "latent": i, "value": v} for seed, vs in values.items() for i, v in enumerate(vs)])
    curves = sorted_scores(tidy)
    assert curves["ms"].tolist() == pytest.approx([(0.9 + 0.7) / 2, (0.5 + 0.1) / 2])   # seed 1 has two scored latents
    table = monosemanticity_table(tidy, curves)
    # mean MS of each seed's scored latents: 1.6 / 3 and 0.4; then mean and std over the two seeds
    assert table["latents"].tolist() == [2] and table["mean_ms"].tolist() == pytest.approx([(1.6 / 3 + 0.4) / 2])
    assert table["mean_ms_std"].tolist() == pytest.approx([np.std([1.6 / 3, 0.4], ddof=1)])


def test_real_tables_report_mean_and_std_over_seeds():
    from vlsae.report.real import arithmetic_table, markdown_cells, table3

    keys = {"model": "m", "dataset": "d", "eval_dataset": "e", "sae": "s"}
    rows = [{**keys, "seed": seed, "method": "Q", "metric": "recall", "value": v} for seed, v in ((0, 0.5), (1, 0.7))]
    table = arithmetic_table(pd.DataFrame(rows))
    assert table["recall"].tolist() == pytest.approx([0.6]) and table["recall_std"].tolist() == pytest.approx([2 ** 0.5 / 10])
    assert markdown_cells(table)["recall"].tolist() == ["0.6 ± 0.1414"]
    # sides are averaged within a seed before the spread is taken; the across-seed stability (seed -1) has none
    sides = [{**keys, "seed": seed, "method": "", "component": side, "metric": "mse", "value": seed + (side == "text")}
             for seed in (0, 1) for side in ("image", "text")]
    stability = [{**keys, "seed": -1, "method": "", "component": "all", "metric": "stability", "value": 0.3}]
    table = table3(pd.DataFrame(sides + stability)).set_index("metric")
    assert (table.loc["mse", "s"], table.loc["mse", "s_std"]) == pytest.approx((1.0, 2 ** 0.5 / 2))
    assert np.isnan(table.loc["stability", "s_std"])
    assert markdown_cells(table.reset_index())["s"].tolist() == ["1 ± 0.7071", "0.3"]


def test_table1_has_no_rows_for_combinations_that_were_never_measured():
    from vlsae.report.real import table1

    keys = {"model": "m", "dataset": "d", "eval_dataset": "e", "component": "all"}
    rows = [{**keys, "sae": "shared", "method": "", "seed": 0, "metric": "i2t_r@1", "value": 0.5},
            {**keys, "sae": "pair", "method": "", "seed": 0, "metric": "i2t_r@1", "value": 0.2},
            {**keys, "sae": "pair", "method": "post-hoc", "seed": 0, "metric": "i2t_r@1", "value": 0.4}]
    assert table1(pd.DataFrame(rows))["method"].tolist() == ["shared", "pair", "pair + post-hoc"]


def test_fig6_notes_state_the_objective_data_and_metric_definitions():
    from vlsae.report.het_fig6 import settings_notes

    authors = settings_notes({"training": {"reconstruction": "fvu", "weight_decay": 1e-5, "weight_decay_biases": False,
                                           "grad_clip": 1.0, "grad_clip_scope": "model"},
                              "losses": {"iso_energy": {"weight": 0.03, "mask_top1": True}},
                              "dgp": {"shared_codes": "independent", "min_active": 1},
                              "metrics": {"reconstruction": "fvu", "feature_recovery": "top1"}, "matching": "absolute"})
    assert "per-batch FVU" in authors[0] and "weight decay 1e-05 on weights only" in authors[0]
    assert "gradient clip 1 (model)" in authors[0] and "with the top-1 mask" in authors[0]
    assert "independent" in authors[1] and "top-1 latent" in authors[2] and "sum |C|" in authors[2]
    paper = settings_notes({"training": {}, "losses": {"iso_energy": {"weight": 0.03}}, "dgp": {}, "metrics": {},
                            "matching": "signed"})
    assert "HET eq. 4" in paper[0] and "no gradient clip" in paper[0] and "without the top-1 mask" in paper[0]
    assert "HET eq. 1" in paper[1] and "E.3 ii" in paper[2] and "tr(C P)" in paper[2]


def test_beta_sweep_orders_by_beta_averages_sides_and_draws(tmp_path):
    """ISO Figs. 7-8: one row per SAE in order of beta; MSE averaged over the two sides within a seed, then mean ± std
    over seeds; the energy shares as measured; the figure is written."""
    from vlsae.report.real import beta_sweep_table, plot_beta_sweep

    keys = {"model": "m", "dataset": "d", "eval_dataset": "e", "method": ""}
    rows = []
    for sae, beta in (("strong", 1e-2), ("none", 0.0), ("weak", 1e-5)):
        for seed in (0, 1):
            rows += [{**keys, "sae": sae, "beta": beta, "seed": seed, "component": side, "metric": "mse",
                      "value": beta * 100 + seed + (side == "text")} for side in ("image", "text")]
            rows.append({**keys, "sae": sae, "beta": beta, "seed": seed, "component": "all",
                         "metric": "degenerate_energy_share", "value": 0.5 if beta > 1e-3 else 0.0})
            rows.append({**keys, "sae": sae, "beta": beta, "seed": seed, "component": "all", "metric": "p_acc", "value": 1.0})
    table = beta_sweep_table(pd.DataFrame(rows))
    assert table["sae"].tolist() == ["none", "weak", "strong"] and "p_acc" not in table
    assert table["mse"].tolist() == pytest.approx([1.0, 1.001, 2.0])      # (seed + side) averaged: 0.5, 1.5 -> 1.0
    assert table["mse_std"].tolist() == pytest.approx([2 ** 0.5 / 2] * 3)
    assert table["degenerate_energy_share"].tolist() == [0.0, 0.0, 0.5]
    plot_beta_sweep(table, str(tmp_path / "f.pdf"), str(tmp_path / "f.png"))
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_report_commands_keep_only_the_named_saes_and_models_in_order(tmp_path):
    from vlsae.cli.report import _selected

    tidy = pd.DataFrame({"sae": ["a", "b", "c", "a"], "model": ["m", "m", "m", "n"], "value": [1, 2, 3, 4]})
    assert _selected(tidy, ["c", "a"], [])["value"].tolist() == [3, 1, 4]
    assert _selected(tidy, ["c", "a"], ["m"])["value"].tolist() == [3, 1]
    assert len(_selected(tidy, [], [])) == 4
    with pytest.raises(ValueError, match=r"--sae \['z'\]: no rows"):
        _selected(tidy, ["a", "z"], [])
    with pytest.raises(ValueError, match=r"--model \['q'\]: no rows"):
        _selected(tidy, [], ["q"])


def test_iso_main_labels_by_beta_and_puts_the_papers_values_beside():
    from vlsae.report.real import iso_main, table1

    rows = []
    for sae, beta, mse in (("a", 1e-4, 0.2), ("plain", 0.0, 0.1)):
        for seed in (0, 1):
            for side in ("image", "text"):
                rows.append({"model": "clip-b32", "dataset": "d", "eval_dataset": "e", "method": "", "sae": sae, "beta": beta,
                             "seed": seed, "component": side, "metric": "mse", "value": mse + 0.1 * seed})
            rows.append({"model": "clip-b32", "dataset": "d", "eval_dataset": "e", "method": "", "sae": sae, "beta": beta,
                         "seed": seed, "component": "all", "metric": "p_acc", "value": 0.9})
    table = iso_main(pd.DataFrame(rows))
    assert table["SAE"].tolist() == ["SAE-A", "SAE"] and table["sae"].tolist() == ["a", "plain"]  # selection order
    assert table["mse"].tolist() == pytest.approx([0.25, 0.15])
    assert table["mse (paper)"].tolist() == [0.163, 0.141] and table["p_acc (paper)"].tolist() == [0.915, 0.847]
    # HET Tables 2-4: each SAE's section is its architecture and K
    het = pd.DataFrame(rows).assign(architecture="topk", k=4.0)
    assert set(table1(het)["section"]) == {"topk, K = 4"}


def test_fig10_pca_of_two_separated_modalities(tmp_path):
    """Images at +e1 and texts at -e1 (unit vectors, small spread on e2): PC1 carries the gap, the modality means project
    to +-1 on it, DiM = 2 and W = 2 exactly up to the spread."""
    from vlsae.report.iso_toy import pca_panel, pca_table, plot_pca
    from vlsae.store import EmbeddingStore, StoreWriter

    rng = np.random.default_rng(0)
    n, d = 400, 8
    spread = 0.01 * rng.normal(size=(n, 1))
    image = np.zeros((n, d)); image[:, 0] = 1.0; image[:, 1] = spread[:, 0]
    text = -image
    with StoreWriter(tmp_path / "s", d) as w:
        w.add(np.arange(n), image.astype(np.float32), text.astype(np.float32))
    panel = pca_panel(EmbeddingStore(tmp_path / "s"), 300)
    assert panel["n"] == 300 and panel["explained"][0] > 0.999
    assert abs(panel["means"]["image"][0]) == pytest.approx(1.0, abs=1e-3) and panel["means"]["global"] == pytest.approx([0, 0], abs=1e-9)
    assert panel["means"]["image"][0] == pytest.approx(-panel["means"]["text"][0])
    assert panel["dim"] == pytest.approx(2.0, abs=1e-3) and panel["wasserstein"] == pytest.approx(2.0, abs=1e-3)
    assert pca_table({"m": panel})["gap_dim"].tolist() == pytest.approx([panel["dim"]])
    plot_pca({"m": panel}, str(tmp_path / "f.pdf"), str(tmp_path / "f.png"))
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_feature_figures_classes_bridge_shares_and_the_latents_of_fig15():
    """Three latents: 0 image-only (mu 1), 1 bimodal (mu 0.5), 2 text-only (mu 0). With unit cross moment and orthonormal
    atoms, |B_Sigma| is the identity: one unit of mass on each latent's own pair, so at tau = 0.05 the bimodal-adjacent,
    image-image and text-text pairs hold a third each; at tau = 0 every live latent but mu in [0, 1] is bimodal."""
    from vlsae.report.features import bridge_shares, extreme_bimodal, latent_classes

    mu = np.array([1.0, 0.5, 0.0, np.nan])
    assert latent_classes(mu, 0.05).tolist() == ["image-only", "bimodal", "text-only", "dead"]
    stats = {"cross": np.ones((3, 3)), "atoms": np.eye(3), "mu": mu[:3]}
    shares = bridge_shares(stats, taus=[0.05, 0.0]).set_index(["tau", "pairs"])["share"]
    assert shares[(0.05, "bimodal-adjacent")] == pytest.approx(1 / 3) and shares[(0.05, "image-image")] == pytest.approx(1 / 3)
    assert shares[(0.05, "image-text")] == 0 and shares[(0.0, "bimodal-adjacent")] == pytest.approx(1.0)
    # Fig. 15: the highest- and lowest-energy bimodal latents; without one, the live latents nearest mu = 0.5
    stats = {"total": np.array([5.0, 1.0, 3.0, 0.0]), "class": np.array(["bimodal", "bimodal", "bimodal", "dead"]),
             "mu": np.array([0.5, 0.4, 0.6, np.nan])}
    assert extreme_bimodal(stats) == [("high energy", 0, True), ("low energy", 1, True)]
    stats["class"] = np.array(["image-only", "text-only", "image-only", "dead"])
    assert [latent for _, latent, banded in extreme_bimodal(stats)] == [0, 1] and not extreme_bimodal(stats)[0][2]
