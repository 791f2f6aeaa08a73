# Config validation and target enumeration. No science lives here.
import json
import os
import re
from dataclasses import asdict

from snakemake.utils import validate

from vlsae.sae import SAESpec
from vlsae.synth.iso import iso_dictionary_size


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

RESULTS = config["results"]
HET = config["het_synthetic"]
FIG5 = config["het_fig5"]
THEORY = config["het_theory"]

FIG6 = config["het_fig6"]
ISO = config["iso_toy"]

# SAE specs addressable by their slug (the {sae_id} wildcard).
REFERENCE_SPECS = [SAESpec(**{**HET["sae"], "arrangement": arr}) for arr in ("shared", "specific")]
FIG6_SPECS = [
    SAESpec(**{**HET["sae"], "arrangement": "shared",
               "aux": {**HET["sae"]["aux"], loss: {**options, "weight": options["weight"] * multiplier}}})
    for loss, options in FIG6["losses"].items()
    for multiplier in FIG6["multipliers"]
]
SAE_SPECS = {spec.slug: spec for spec in REFERENCE_SPECS + FIG6_SPECS}

# ISO Table 5: SAE (MP) and SAE-A per experiment, with the atom count of the experiment's
# ground-truth dictionary and the DGP's sparsity L (see iso_dictionary_size).
ISO_MODEL_NAMES = ("sae", "sae_a")


def iso_models(experiment):
    truth = ISO["experiments"][experiment]["truth"]
    mp = SAESpec(architecture="mp", latents=iso_dictionary_size(truth, ISO["dgp"]["k"]), params={"k": ISO["dgp"]["L"]})
    return {"sae": mp, "sae_a": SAESpec(**{**asdict(mp), "aux": {"iso_energy": ISO["alignment"]}})}


wildcard_constraints:
    alpha=r"[0-9.]+",
    rho=r"0\.[0-9]+",
    seed=r"\d+",
    sae_id="|".join(map(re.escape, SAE_SPECS)),
    experiment="|".join(ISO["experiments"]),


def sae_json(wildcards):
    return json.dumps(asdict(SAE_SPECS[wildcards.sae_id]))


def het_dgp_json(wildcards):
    return json.dumps({**HET["dgp"], "alpha": float(wildcards.alpha)})


def iso_dgp_json(wildcards):
    return json.dumps({**ISO["dgp"], "tau1": ISO["experiments"][wildcards.experiment]["tau1"]})


def iso_train_args(wildcards, output):
    """One ``--sae SPEC --out FOLDER`` per model: SAE and SAE-A train in one pass over the data."""
    models = iso_models(wildcards.experiment)
    return " ".join(f"--sae '{json.dumps(asdict(models[name]))}' --out {os.path.dirname(weights)}"
                    for name, weights in zip(ISO_MODEL_NAMES, output.weights))


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


def iso_metric_files():
    return expand(rules.evaluate_iso_toy.output[0], experiment=ISO["experiments"], seed=ISO["seeds"])


def iso_fig9_stores():
    """Evaluation store of the first seed of each experiment, one histogram panel each."""
    return {name: expand(rules.synth_iso.output.eval, experiment=name, seed=ISO["seeds"][0])[0]
            for name in ISO["experiments"]}


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
    if ISO["enabled"]:
        targets += expand(f"{RESULTS}/tables/iso_table5_toy_dgp.{{ext}}", ext=("csv", "md"))
        targets += expand(f"{RESULTS}/figures/iso_fig9_toy_cosines.{{ext}}", ext=("pdf", "png"))
    if FIG5["enabled"]:
        targets += expand(f"{RESULTS}/tables/het_fig5_alpha_sweep.{{ext}}", ext=("csv", "md"))
        targets += expand(f"{RESULTS}/figures/het_fig5_alpha_sweep.{{ext}}", ext=("pdf", "png"))
    return targets
