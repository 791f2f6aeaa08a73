"""Runs the real Snakefile on the tiny `.test` config, end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.workflow


def snakemake(repo, results, *args, configfile=".test/config/config.yaml"):
    """Run the repo's Snakefile with ``configfile``, writing under ``results``; return its output."""
    cmd = [sys.executable, "-m", "snakemake", *args, "--cores", "2",
           "--configfile", str(repo / configfile), "--config", f"results={results}", "allow_external_results=True"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def job_counts(plan):
    """The ``Job stats`` table of a dry run as ``{rule: count}``."""
    block = plan.split("Job stats:")[1].split("\n\n")[0]
    return dict(line.split() for line in block.splitlines()[3:])


def test_tiny_config_end_to_end(repo, tmp_path):
    results = tmp_path / "results"
    figure = f"{results}/figures/het_fig5_alpha_sweep.png"
    # naming one figure plans only what it needs: 2 alphas x 1 seed x (data, its verification, one pass
    # training both references, 1 alignment, one evaluation of both) + report, no rule all
    plan = snakemake(repo, results, "-n", figure)
    assert job_counts(plan) == {"synth_het": "2", "verify_het_store": "2", "train_het_references": "2",
                                "align_synthetic": "2", "evaluate_het_references": "2", "report_het_fig5": "1",
                                "total": "11"}
    snakemake(repo, results)
    table = pd.read_csv(results / "tables/het_fig5_alpha_sweep.csv")
    assert len(table) == 3 * 2  # (method, alpha, seed) rows
    assert set(table["method"]) == {"shared", "modality-specific", "modality-specific + post-hoc"}
    assert {"reconstruction_error", "feature_recovery_error", "alignment_error", "feature_alignment_error",
            "collapse_rate"} <= set(table.columns)
    assert table[["reconstruction_error", "collapse_rate"]].notna().all().all()
    for ext in ("pdf", "png"):
        assert (results / f"figures/het_fig5_alpha_sweep.{ext}").stat().st_size > 1000
    assert "|" in (results / "tables/het_fig5_alpha_sweep.md").read_text()
    assert "train topk-k2-m64-shared, topk-k2-m64-specific" in (results / "logs/train/het-alpha0.0/references-seed0.log").read_text()
    theory = pd.read_csv(results / "tables/het_theory_phases.csv")
    assert len(theory) == 3 and (theory["relative_error"] < 0.05).all()
    assert (results / "figures/het_theory_phases.png").stat().st_size > 1000
    fig6 = pd.read_csv(results / "tables/het_fig6_lambda_sweep.csv")
    assert set(fig6["method"]) == {"shared", "modality-specific", "modality-specific + post-hoc",
                                   "shared + iso_energy", "shared + group_sparse"}
    assert set(fig6["multiplier"].dropna()) == {1.0} and set(fig6["loss"].dropna()) == {"iso_energy", "group_sparse"}
    assert "post-hoc feature_recovery_error" in (results / "tables/het_fig6_lambda_sweep.md").read_text()
    table5 = pd.read_csv(results / "tables/iso_table5_toy_dgp.csv")
    assert set(zip(table5["experiment"], table5["model"])) == {(e, m) for e in ("exp1", "exp2") for m in ("SAE", "SAE-A")}
    assert table5[["W_mean", "mma_mean", "r2_mean"]].notna().all().all() and (table5["l0_mean"] <= 3).all()
    assert set(table5["truth"]) == {"bimodal", "unimodal"}                         # both truths, each scored
    assert set(table5.loc[table5["scored"] & (table5["experiment"] == "exp2"), "truth"]) == {"bimodal"}
    assert "W (paper)" in (results / "tables/iso_table5_toy_dgp.md").read_text()
    assert '"latents": 56' in (results / "saes/synthetic/iso-exp2/sae/seed0/config.json").read_text()  # 14k, k = 4
    cosines = pd.read_csv(results / "tables/iso_fig9_toy_cosines.csv").set_index(["panel", "pairs"])
    assert cosines.loc[("exp1", "IT (aligned)"), "mean"] == pytest.approx(0.4, abs=1e-5)  # tau2, by construction
    assert (results / "figures/iso_fig9_toy_cosines.png").stat().st_size > 1000
    # real-VLM path on the toy dataset: 24 images x 2 captions, 1 truncated JPEG and 1 blank caption
    for model in ("toy-clip", "toy-siglip"):
        store = results / f"embeddings/{model}/toy-coco"
        manifest = json.loads((store / "manifest.json").read_text())
        assert manifest["n_pairs"] == 48 - 2 and len(manifest["shards"]) == 3
        assert manifest["metadata"]["skipped_by_side"] == {"image": 2, "text": 1}
        assert len(pd.read_csv(store / "skipped.csv")) == 3
    # evaluation suite: 3 zoo SAEs x 2 seeds per model, every table and figure
    encoders = pd.read_csv(results / "tables/iso_table6_encoders.csv")
    assert set(encoders["model"]) == {"toy-clip", "toy-siglip"} and encoders["recall@1"].between(0, 1).all()
    zoo = pd.read_csv(results / "tables/iso_table3_sae_zoo.csv")
    assert list(zoo.columns[-6:]) == ["mp", "mp_std", "mp-a", "mp-a_std", "topk-specific", "topk-specific_std"]  # over seeds
    rows = zoo.set_index(["model", "eval_dataset", "metric"])
    clip = ("toy-clip", "toy-coco")
    assert rows.loc[(*clip, "l0"), "mp"] <= 2 and np.isfinite(rows.loc[(*clip, "stability"), "mp"])
    assert np.isfinite(rows.loc[(*clip, "p_acc"), "mp"]) and np.isnan(rows.loc[(*clip, "p_acc"), "topk-specific"])
    het = pd.read_csv(results / "tables/het_table1_retrieval.csv")
    assert set(het["method"]) == {"topk-specific", "topk-specific + post-hoc"}     # selections.het_table1, on toy-clip
    assert set(het["model"]) == {"toy-clip"} and set(het["section"]) == {"topk, K = 2"}
    on_coco = het["eval_dataset"] == "toy-coco"
    assert het.loc[on_coco, ["i2t_r@1", "t2i_r@10", "mse"]].notna().all().all()
    assert het.loc[~on_coco, ["zero_shot@1", "mse"]].notna().all().all()          # toy-imagenet rows
    imagenet = encoders[encoders["dataset"] == "toy-imagenet"]
    assert len(imagenet) == 2 and imagenet[["zero_shot@1", "linear_probe"]].notna().all().all()
    gap = pd.read_csv(results / "tables/iso_tables9_11_gap_removal.csv").set_index(["model", "eval_dataset", "method"])
    assert len(gap) == 2 * 2 * 5 and gap.loc[("toy-clip", "toy-imagenet"), "zero_shot@1"].between(0, 1).all()
    assert gap.loc[("toy-clip", "toy-coco"), "recall@1"].between(0, 1).all()
    baselines = pd.read_csv(results / "tables/iso_table12_gap_baselines.csv")
    assert baselines["separability"].between(0, 1).all() and baselines["ood"].between(0, 1).all()
    arithmetic = pd.read_csv(results / "tables/iso_tables7_8_vector_arithmetic.csv")
    assert list(arithmetic["method"][:4]) == ["baseline_delta", "baseline_source", "Q", "Q_SAE"]
    assert arithmetic["recall"].between(0, 1).all() and arithmetic["eval_dataset"].eq("toy-fashioniq").all()
    steering = pd.read_csv(results / "tables/het_fig7_steering.csv")
    assert set(steering["method"]) == {"mp", "mp-a", "topk-specific", "topk-specific + post-hoc"}
    assert steering[["map", "mrr"]].stack().between(0, 1).all() and set(steering["alpha"]) == {0.0, 0.1, 0.25, 0.5, 1.0, 2.0}
    assert steering[["delta_cos", "preserve"]].notna().all().all()   # at alpha 0: the SAE's own reconstruction
    ms = pd.read_csv(results / "tables/het_fig8_monosemanticity.csv")
    assert set(ms["component"]) == {"image", "text"} and ms["mean_ms"].between(-1, 1).all()
    for name in ("iso_fig11_cosines", "het_fig2_directions", "het_fig7_steering", "het_fig8_monosemanticity"):
        assert (results / f"figures/{name}.png").stat().st_size > 1000
    assert (results / "saes/toy-clip/toy-coco/topk-specific/seed1/alignment.npz").stat().st_size > 0
    assert not (results / "saes/toy-siglip/toy-coco/topk-specific").exists()     # the member trains on toy-clip only
    assert set(steering.loc[steering["model"] == "toy-siglip", "method"]) == {"mp", "mp-a"}
    # the claims scorecard: synthetic claims checked, real-data claims not testable on the toy stores
    card = pd.read_csv(results / "tables/claims.csv", keep_default_na=False)
    assert set(card["status"]) <= {"holds", "fails", "not testable here"}
    assert (card.loc[card["group"] == "Real data", "ours"] == "toy stores").all()
    assert card.loc[card["group"] == "HET theory", "status"].eq("holds").all()
    assert card.loc[card["group"] == "ISO Table 5", "status"].isin(["holds", "fails"]).all()
    assert "# Claims scorecard" in (results / "tables/claims.md").read_text()
    # nothing left to do afterwards
    assert "Nothing to be done" in snakemake(repo, results, "-n")
    # the HTML report holds every indexed artifact (figures as png, tables as csv) with its caption
    snakemake(repo, results, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    for entry in yaml.safe_load((repo / "workflow/artifacts.yaml").read_text()):
        assert f"{entry['stem']}.{'png' if entry['kind'] == 'figure' else 'csv'}" in html, entry["artifact"]
    assert "concept steering" in html and "Real data" in html


def test_paper_config_plans(repo):
    plan = snakemake(repo, "/nonexistent-results", "-n", configfile="config/paper.yaml")
    assert "topk-k16-m8192-shared" in plan and "d\": 256" in plan
    counts = job_counts(plan)
    assert counts["total"] == "645" and counts["theory_phases"] == "9" and counts["report_claims"] == "1"
    # one latent browser per (model, training store) and image-text evaluation store, and the five galleries
    assert (counts["browse"], counts["report_gallery"]) == ("72", "5")
    # every training store is verified before training: 21 HET, 6 ISO, 18 real (6 LAION, 4 CC3M, 4 + 4 COCO)
    assert (counts["verify_het_store"], counts["verify_iso_store"], counts["verify_store"]) == ("21", "6", "18")
    # real embeddings: 9 models x 7 datasets; GPU declared for real models
    assert counts["embed"] == "63" and "gpu=1" in plan.split("rule embed:")[1].split("rule ")[0]
    # real SAE grids, one pass per (model, training set, protocol, seed): ISO on LAION with 6 encoders, HET
    # on CC3M with 4, HET Figs. 2 and 9 on COCO with 4 + 4, 3 seeds; sizes by expansion (ISO x8 and x64, HET m/d = 16)
    assert counts["train_zoo"] == counts["align_zoo"] == str((6 + 4 + 4 + 4) * 3)
    assert '"expansion": 64' in plan and '"expansion": 16' in plan and "--run het-batchtopk-k64-specific 2" in plan
    # each study's own protocol: ISO's (the authors' code), HET E.4 with 10 epochs, HET E.1 (30 epochs, K = 8)
    jobs = {block.split("wildcards: ")[1].split("\n")[0]: block.split("\n\n")[0]
            for block in plan.split("\nrule train_zoo:")[1:]}
    iso = jobs["model=clip-b32, dataset=laion-1m, seed=0, protocol=iso"]
    assert '"schedule": "onecycle"' in iso and '"epochs": 5' in iso and '"batch_size": 512' in iso
    assert '"reconstruction": "element_mean"' in iso and '"target_l0": 20' in iso and '"target_l0": 50' in iso
    het = jobs["model=clip-b32, dataset=cc3m, seed=0, protocol=default"]
    assert '"epochs": 10' in het and '"weight_decay": 1e-05' in het and '"iso_energy": {"weight": 0.0001}' in het
    assert '"group_sparse": {"weight": 0.05}' in het
    fig2 = jobs["model=metaclip2-b32, dataset=coco-train, seed=0, protocol=het_e1"]
    assert '"epochs": 30' in fig2 and '"k": 8' in fig2 and fig2.count("--sae ") == 1
    # ISO Table 5: 2 experiments x 3 seeds, each one dataset, one job training SAE and SAE-A, one evaluation
    assert counts["synth_iso"] == counts["train_iso_toy"] == counts["evaluate_iso_toy"] == "6"
    # HET: one pass per (alpha, seed), the 2 references at 6 alphas and, at Fig. 6's alpha 0.5 (not
    # one of Fig. 5's), the references + 2 losses x 5 weights; 3 seeds; evaluation grouped the same way
    assert counts["train_het_references"] == counts["evaluate_het_references"] == str(6 * 3)
    assert counts["train_het_fig6"] == counts["evaluate_het_fig6"] == "3" and counts["report_het_fig6"] == "1"
    fig6 = plan.split("\nrule train_het_fig6:")[1].split("\nrule ")[0]  # the HET authors' objective
    assert '"reconstruction": "fvu"' in fig6 and '"weight_decay": 1e-05' in fig6 and '"mask_top1": true' in fig6
    het_training = [job for job in plan.split("\nrule ") if job.startswith("train_het")]
    assert sum(job.count("--sae ") for job in het_training) == 6 * 3 * 2 + 3 * 12
