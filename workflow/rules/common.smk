# Config validation and target enumeration. No science lives here.
import json
import re
from dataclasses import asdict

from snakemake.utils import validate

from vlsae.sae import SAESpec


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

RESULTS = config["results"]
HET = config["het_synthetic"]
FIG5 = config["het_fig5"]
THEORY = config["het_theory"]

FIG6 = config["het_fig6"]

# SAE specs addressable by their slug (the {sae_id} wildcard).
REFERENCE_SPECS = [SAESpec(**{**HET["sae"], "arrangement": arr}) for arr in ("shared", "specific")]
FIG6_SPECS = [
    SAESpec(**{**HET["sae"], "arrangement": "shared",
               "aux": {**HET["sae"]["aux"], loss: {**options, "weight": options["weight"] * multiplier}}})
    for loss, options in FIG6["losses"].items()
    for multiplier in FIG6["multipliers"]
]
SAE_SPECS = {spec.slug: spec for spec in REFERENCE_SPECS + FIG6_SPECS}


wildcard_constraints:
    alpha=r"[0-9.]+",
    rho=r"0\.[0-9]+",
    seed=r"\d+",
    sae_id="|".join(map(re.escape, SAE_SPECS)),


def sae_json(wildcards):
    return json.dumps(asdict(SAE_SPECS[wildcards.sae_id]))


def het_dgp_json(wildcards):
    return json.dumps({**HET["dgp"], "alpha": float(wildcards.alpha)})


def alignment_if_specific(wildcards):
    """Modality-specific pairs are also evaluated after post-hoc alignment."""
    if SAE_SPECS[wildcards.sae_id].arrangement != "specific":
        return []
    return expand(rules.align_synthetic.output[0], **wildcards)


def het_metric_files(alphas, specs, seeds):
    return expand(rules.evaluate_het_synthetic.output[0], alpha=alphas, sae_id=[s.slug for s in specs], seed=seeds)


def fig5_metric_files():
    return het_metric_files(FIG5["alphas"], REFERENCE_SPECS, FIG5["seeds"])


def fig6_metric_files():
    return het_metric_files([FIG6["alpha"]], REFERENCE_SPECS + FIG6_SPECS, FIG6["seeds"])


def theory_boundary_files():
    return expand(rules.theory_phases.output[0], rho=THEORY["rhos"])


def all_targets():
    targets = []
    if THEORY["enabled"]:
        targets += expand(f"{RESULTS}/tables/het_theory_phases.{{ext}}", ext=("csv", "md"))
        targets += expand(f"{RESULTS}/figures/het_theory_phases.{{ext}}", ext=("pdf", "png"))
    if FIG6["enabled"]:
        targets += expand(f"{RESULTS}/tables/het_fig6_lambda_sweep.{{ext}}", ext=("csv", "md"))
        targets += expand(f"{RESULTS}/figures/het_fig6_lambda_sweep.{{ext}}", ext=("pdf", "png"))
    if FIG5["enabled"]:
        targets += expand(f"{RESULTS}/tables/het_fig5_alpha_sweep.{{ext}}", ext=("csv", "md"))
        targets += expand(f"{RESULTS}/figures/het_fig5_alpha_sweep.{{ext}}", ext=("pdf", "png"))
    return targets
