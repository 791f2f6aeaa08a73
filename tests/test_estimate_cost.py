"""The compute estimate of benchmarks/estimate_cost.py: hours by hand, and the paper plan."""

import json
import sys

import pytest
import yaml

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
from estimate_cost import dry_run, estimate, planned_jobs, sae_step_seconds  # noqa: E402

STEP = {"reference": {"d": 512, "m": 8192, "k": 32, "batch": 1024},
        "seconds": {"topk": 0.2, "mp": 2.0}, "mp_gram_share": 0.25}


def _training_job(specs, training):
    sae = " ".join(f"--sae '{json.dumps(s)}' --out x" for s in specs)
    return {"rule": "train_zoo", "wildcards": {"model": "m", "dataset": "d"},
            "command": f"vlsae train --data x {sae} --training '{json.dumps(training)}' --seed 0"}


def test_step_time_scales_from_the_reference():
    # an encoder SAE scales with batch x m x d: half the batch, twice m -> the same time
    assert sae_step_seconds({"architecture": "topk", "latents": 16384}, 512, 512, STEP) == pytest.approx(0.2)
    # expansion 2 of a 256-d store is m = 512: 1/16 of m, 1/2 of d
    assert sae_step_seconds({"architecture": "topk", "expansion": 2}, 256, 1024, STEP) == pytest.approx(0.2 / 32)
    # MP: Gram share x (m/m0)^2 (d/d0) + the rest x (batch k m) / (batch0 k0 m0); twice m, same k and batch
    assert sae_step_seconds({"architecture": "mp", "latents": 16384, "params": {"k": 32}}, 512, 1024, STEP) == \
        pytest.approx(2.0 * (0.25 * 4 + 0.75 * 2))


def test_hours_are_steps_times_step_time_for_training_and_jobs_times_cost_otherwise():
    costs = {"gpu_speedup": 10, "sae_step": STEP, "model_dims": {"m": 512}, "dataset_pairs": {"d": 10240},
             "rules": {"train_zoo": {"device": "gpu"}, "embed": {"device": "gpu", "hours": 1.0}},
             "default": {"device": "cpu", "hours": 0.5}}
    ref = {"architecture": "topk", "latents": 8192, "params": {"k": 32}}
    # 3 epochs x 10240 / 1024 pairs = 30 steps of two reference SAEs (0.4 s): 12 CPU-s, on a GPU 10x faster
    jobs = [_training_job([ref, ref], {"epochs": 3, "batch_size": 1024}), {"rule": "embed"}, {"rule": "embed"},
            {"rule": "report"}, {"rule": "all"}]
    rows = {r["rule"]: r for r in estimate([{"wildcards": {}, "command": "", **j} for j in jobs], costs, 10)}
    assert rows["train_zoo"]["hours"] == pytest.approx(12 / 3600 / 10)
    assert rows["embed"]["hours"] == 2.0 and rows["report"]["hours"] == 0.5 and "all" not in rows
    # `steps` overrides epochs
    rows = estimate([_training_job([ref], {"steps": 7, "batch_size": 1024})], costs, 10)
    assert rows[0]["hours"] == pytest.approx(7 * 0.2 / 3600 / 10)


def test_every_job_of_the_paper_plan_is_costed(repo):
    jobs = planned_jobs(dry_run("config/paper.yaml"))
    costs = yaml.safe_load((repo / "benchmarks/costs.yaml").read_text())
    rules = {j["rule"] for j in jobs}
    gpu_rules = {"embed", "train_zoo", "align_zoo", "evaluate_saes", "evaluate_bimodal_sae", "evaluate_steering",
                 "evaluate_monosemanticity"}
    assert gpu_rules <= rules and all(costs["rules"][r]["device"] == "gpu" for r in gpu_rules)
    rows = {r["rule"]: r for r in estimate(jobs, costs, costs["gpu_speedup"])}
    training = [j for j in jobs if j["rule"] == "train_zoo"]
    assert rows["train_zoo"]["jobs"] == len(training) > 0
    # every training store and encoder of the plan has its size; the protocols differ in cost
    assert {j["wildcards"]["dataset"] for j in training} <= set(costs["dataset_pairs"])
    assert {j["wildcards"]["model"] for j in training} <= set(costs["model_dims"])
    assert {j["wildcards"]["protocol"] for j in training} == {"default", "iso", "het_e1"}
