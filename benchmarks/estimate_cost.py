"""Estimated compute of a configuration before it is launched: jobs per rule (from Snakemake's own
dry run) times hours per job (benchmarks/costs.yaml, with its derivations).

    python benchmarks/estimate_cost.py                      # config/paper.yaml
    python benchmarks/estimate_cost.py --configfile config/config.yaml --gpu-speedup 50
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def job_counts(configfile: str) -> dict[str, int]:
    """``{rule: jobs}`` of a dry run from an empty results folder (the whole DAG)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", configfile,
                          "--config", "results=.cost-estimate-results", "--cores", "1"],
                         cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    block = out.stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(n) for rule, n in (line.split() for line in block) if rule not in ("total", "all")}


def estimate(counts: dict[str, int], costs: dict, gpu_speedup: float) -> list[dict]:
    rows = []
    for rule, jobs in counts.items():
        cost = costs["rules"].get(rule, costs["default"])
        hours = cost["hours"] if "hours" in cost else cost["cpu_hours"] / gpu_speedup
        rows.append({"rule": rule, "jobs": jobs, "device": cost["device"], "hours_per_job": hours, "hours": jobs * hours})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="config/paper.yaml")
    parser.add_argument("--costs", default=str(REPO / "benchmarks/costs.yaml"))
    parser.add_argument("--gpu-speedup", type=float, help="override costs.yaml's assumed GPU speedup over its CPU")
    a = parser.parse_args(argv)
    costs = yaml.safe_load(Path(a.costs).read_text())
    rows = estimate(job_counts(a.configfile), costs, a.gpu_speedup or costs["gpu_speedup"])
    print(f"{'rule':28s} {'jobs':>6s} {'device':>6s} {'h/job':>8s} {'hours':>9s}")
    for r in sorted(rows, key=lambda r: -r["hours"]):
        print(f"{r['rule']:28s} {r['jobs']:6d} {r['device']:>6s} {r['hours_per_job']:8.3f} {r['hours']:9.1f}")
    for device in ("gpu", "cpu"):
        part = [r for r in rows if r["device"] == device]
        print(f"total {device.upper()}: {sum(r['jobs'] for r in part)} jobs, {sum(r['hours'] for r in part):.1f} {device.upper()}-hours")


if __name__ == "__main__":
    main()
