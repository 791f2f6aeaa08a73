"""Estimated compute of a configuration before it is launched, from Snakemake's own dry run.

Every rule but SAE training costs its jobs times the hours per job of benchmarks/costs.yaml (with
their derivations). A training job is costed from what it will run, read off its planned command:
its steps (``epochs`` x pairs of its store / ``batch_size``, from the job's ``--training``) times the
summed step time of its SAEs (each ``--sae``), scaled from the step times measured by
benchmarks/sae_speed.py at one reference size (``sae_step`` in costs.yaml).

    python benchmarks/estimate_cost.py                      # config/paper.yaml
    python benchmarks/estimate_cost.py --configfile config/config.yaml --gpu-speedup 50
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TRAINING_RULES = ("train_zoo",)


def dry_run(configfile: str) -> str:
    """The printed plan (rules, wildcards and shell commands) of a dry run from an empty results folder."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", configfile,
                          "--config", "results=.cost-estimate-results", "--cores", "1"],
                         cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return out.stdout


def job_counts(configfile: str) -> dict[str, int]:
    """``{rule: jobs}`` of the dry run (the whole DAG)."""
    block = dry_run(configfile).split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(n) for rule, n in (line.split() for line in block) if rule not in ("total", "all")}


def planned_jobs(plan: str) -> list[dict]:
    """``{"rule", "wildcards", "command"}`` of every job in a dry run's printed plan."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", plan):
        head = re.match(r"rule (\w+):\n", block)
        if not head:
            continue
        wildcards = re.search(r"\n\s+wildcards: (.*)\n", block)
        command = re.search(r"\nShell command: (.*)", block)
        jobs.append({"rule": head.group(1),
                     "wildcards": dict(kv.split("=", 1) for kv in wildcards.group(1).split(", ")) if wildcards else {},
                     "command": command.group(1) if command else ""})
    return jobs


def sae_step_seconds(spec: dict, dim: int, batch: int, step: dict) -> float:
    """CPU seconds of one training step of one SAE (``--sae`` JSON) on ``batch`` pairs of ``dim``-d data.

    Encoder SAEs scale with ``batch x m x d`` (the dense encoder); Matching Pursuit with its Gram matrix
    ``m^2 d`` (share ``mp_gram_share`` at the reference size) and its greedy selection ``batch x k x m``.
    """
    ref, arch = step["reference"], spec["architecture"]
    m = round(spec["expansion"] * dim) if "expansion" in spec else spec["latents"]
    k = spec.get("params", {}).get("k", ref["k"])
    seconds = step["seconds"][arch]
    if arch != "mp":
        return seconds * (batch * m * dim) / (ref["batch"] * ref["m"] * ref["d"])
    gram = step["mp_gram_share"] * (m * m * dim) / (ref["m"] * ref["m"] * ref["d"])
    greedy = (1 - step["mp_gram_share"]) * (batch * k * m) / (ref["batch"] * ref["k"] * ref["m"])
    return seconds * (gram + greedy)


def training_cpu_hours(job: dict, costs: dict) -> float:
    """CPU hours of one training job: steps x the summed step time of its SAEs."""
    command = job["command"]
    specs = [json.loads(s) for s in re.findall(r"--sae '([^']*)'", command)]
    training = json.loads(re.search(r"--training '([^']*)'", command).group(1))
    wildcards = job["wildcards"]
    dim, pairs = costs["model_dims"][wildcards["model"]], costs["dataset_pairs"][wildcards["dataset"]]
    batch = training.get("batch_size", 256)
    steps = training["steps"] if training.get("steps") else training.get("epochs", 10) * (pairs // batch)
    return steps * sum(sae_step_seconds(s, dim, batch, costs["sae_step"]) for s in specs) / 3600


def estimate(jobs: list[dict], costs: dict, gpu_speedup: float) -> list[dict]:
    """Rows ``{rule, jobs, device, hours_per_job, hours}``, one per rule."""
    by_rule: dict[str, dict] = {}
    for job in jobs:
        rule = job["rule"]
        if rule == "all":
            continue
        cost = costs["rules"].get(rule, costs["default"])
        if rule in TRAINING_RULES:
            hours = training_cpu_hours(job, costs) / (gpu_speedup if cost["device"] == "gpu" else 1)
        else:
            hours = cost["hours"] if "hours" in cost else cost["cpu_hours"] / gpu_speedup
        row = by_rule.setdefault(rule, {"rule": rule, "jobs": 0, "device": cost["device"], "hours": 0.0})
        row["jobs"] += 1
        row["hours"] += hours
    return [{**r, "hours_per_job": r["hours"] / r["jobs"]} for r in by_rule.values()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="config/paper.yaml")
    parser.add_argument("--costs", default=str(REPO / "benchmarks/costs.yaml"))
    parser.add_argument("--gpu-speedup", type=float, help="override costs.yaml's assumed GPU speedup over its CPU")
    a = parser.parse_args(argv)
    costs = yaml.safe_load(Path(a.costs).read_text())
    rows = estimate(planned_jobs(dry_run(a.configfile)), costs, a.gpu_speedup or costs["gpu_speedup"])
    print(f"{'rule':28s} {'jobs':>6s} {'device':>6s} {'h/job':>8s} {'hours':>9s}")
    for r in sorted(rows, key=lambda r: -r["hours"]):
        print(f"{r['rule']:28s} {r['jobs']:6d} {r['device']:>6s} {r['hours_per_job']:8.3f} {r['hours']:9.1f}")
    for device in ("gpu", "cpu"):
        part = [r for r in rows if r["device"] == device]
        print(f"total {device.upper()}: {sum(r['jobs'] for r in part)} jobs, {sum(r['hours'] for r in part):.1f} {device.upper()}-hours")


if __name__ == "__main__":
    main()
