"""The SLURM profile: the sbatch resources one GPU rule and one CPU rule would request, captured by
stand-ins for the SLURM commands (sbatch records its arguments; sacct reports every job failed,
so the run ends once both are submitted); and a dry run of the paper config through the profile."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

FAKE_SLURM = {
    "sbatch": 'echo "$@" >> "$SBATCH_LOG"\ncat > /dev/null\necho 4242\n',
    # status queries (--format=JobIdRaw,State) see the job failed; the account guess sees one account
    "sacct": 'case "$*" in *JobIdRaw*) echo "4242|FAILED" ;; *) echo "testaccount" ;; esac\n',
    "sacctmgr": 'echo "testaccount"\n',
    "sinfo": "exit 0\n",
    "squeue": "exit 0\n",
    "scancel": "exit 0\n",
}


def _fake_slurm(folder: Path) -> Path:
    folder.mkdir()
    for name, body in FAKE_SLURM.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def _snakemake(repo, env, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *args],
                          cwd=repo, capture_output=True, text=True, env=env)


def test_sbatch_requests_of_a_gpu_rule_and_a_cpu_rule(repo, tmp_path):
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "SBATCH_LOG": str(log),
           "PATH": os.pathsep.join([str(_fake_slurm(tmp_path / "bin")), str(Path(sys.executable).parent), os.environ["PATH"]])}
    results = tmp_path / "results"
    gpu_target = f"{results}/embeddings/clip-b32/fashioniq-val/manifest.json"  # a real VLM: gpu = 1
    cpu_target = f"{results}/metrics/het_theory/rho0.5.parquet"
    out = _snakemake(repo, env, "--config", f"results={results}", "allow_external_results=True", "--retries", "0",
                     "--slurm-init-seconds-before-status-checks", "1", gpu_target, cpu_target)
    calls = {line.split("--comment ")[1].split()[0]: line.split(" --wrap=")[0].split()
             for line in log.read_text().splitlines()}
    assert set(calls) == {"rule_embed_wildcards_clip-b32_fashioniq-val", "rule_het_theory_theory_phases"}, out.stderr[-2000:]

    def option(args, flag):
        return args[args.index(flag) + 1]

    gpu = calls["rule_embed_wildcards_clip-b32_fashioniq-val"]
    assert "--gpus=1" in gpu and option(gpu, "-p") == "gpu"
    assert option(gpu, "--mem") == "16000" and option(gpu, "-t") == "1440"            # 16 GB, one day
    cpu = calls["rule_het_theory_theory_phases"]                                        # grouped (het_theory)
    assert not any(a.startswith("--gpus") for a in cpu) and option(cpu, "-p") == "cpu"
    assert option(cpu, "--mem") == "1000" and option(cpu, "-t") == "20" and "--cpus-per-task=1" in cpu


def test_paper_config_plans_through_the_slurm_profile(repo, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = _snakemake(repo, env, "-n", "--configfile", "config/paper.yaml", "--config", f"results={tmp_path}", "allow_external_results=True")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Job stats:" in out.stdout


def test_slurm_profile_names_only_rules_of_the_workflow(repo):
    """A renamed rule must not silently fall out of its partition or submission group."""
    listed = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=repo, capture_output=True, text=True)
    rules = set(listed.stdout.split())
    profile = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())
    named = {entry.split("=")[0] for entry in profile["groups"]} | {entry.split(":")[0] for entry in profile["set-resources"]}
    assert "train_het_fig6" in rules and named <= rules, sorted(named - rules)
