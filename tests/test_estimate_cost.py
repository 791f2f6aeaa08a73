"""The compute estimate of benchmarks/estimate_cost.py: hours by hand, and the paper plan."""

import sys

import yaml

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
from estimate_cost import estimate, job_counts  # noqa: E402


def test_hours_are_jobs_times_cost_per_job():
    costs = {"gpu_speedup": 10, "rules": {"train_zoo": {"device": "gpu", "cpu_hours": 5.0},
                                          "embed": {"device": "gpu", "hours": 1.0}},
             "default": {"device": "cpu", "hours": 0.5}}
    rows = {r["rule"]: r for r in estimate({"train_zoo": 2, "embed": 3, "report": 4}, costs, gpu_speedup=10)}
    assert rows["train_zoo"]["hours"] == 1.0 and rows["embed"]["hours"] == 3.0 and rows["report"]["hours"] == 2.0
    assert rows["report"]["device"] == "cpu"


def test_every_gpu_rule_of_the_paper_plan_is_costed(repo):
    counts = job_counts("config/paper.yaml")
    costs = yaml.safe_load((repo / "benchmarks/costs.yaml").read_text())
    assert counts["train_zoo"] > 0 and counts["embed"] > 0
    gpu_rules = {"embed", "train_zoo", "align_zoo", "evaluate_saes", "evaluate_bimodal_sae", "evaluate_steering",
                 "evaluate_monosemanticity"}
    assert gpu_rules <= set(counts) and all(costs["rules"][r]["device"] == "gpu" for r in gpu_rules)
