# Config validation and target enumeration. No science lives here.
import json
import os
import re
from dataclasses import asdict

from snakemake.utils import validate

from vlsae.sae import SAESpec
from vlsae.embed.toy import TOY_COCO_OPTIONS
from vlsae.synth.iso import iso_dictionary_size


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

RESULTS = config["results"]
HET = config["het_synthetic"]
FIG5 = config["het_fig5"]
THEORY = config["het_theory"]

FIG6 = config["het_fig6"]
ISO = config["iso_toy"]
MODELS = config["models"]
DATASETS = config["datasets"]
EMBED = config["embeddings"]
REAL = config["real_saes"]

DOWNLOADS = config["downloads"]
DOWNLOADED = "resources/downloads"

_REFERENCES = [("embeddings.models", EMBED["models"], MODELS), ("embeddings.datasets", EMBED["datasets"], DATASETS),
               *((f"datasets.{d}.download", DATASETS[d]["download"], DOWNLOADS) for d in DATASETS)]
if REAL["enabled"]:
    _REFERENCES += [(f"real_saes.{key}", REAL[key], EMBED["datasets"]) for key in ("train_on", "evaluate_on")]
for key, names, registry in _REFERENCES:
    unknown = sorted(set(names) - set(registry))
    if unknown:
        raise ValueError(f"config key {key}: {unknown} not defined (defined: {sorted(registry)})")
if "synthetic" in MODELS:
    raise ValueError("config key models.synthetic: the name `synthetic` is reserved for the synthetic stores")

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


def _one_of(names):
    """A wildcard regex matching exactly these names (and nothing when there are none)."""
    return "|".join(map(re.escape, names)) or r"(?!x)x"


wildcard_constraints:
    model=_one_of(MODELS),
    dataset=_one_of(DATASETS),
    toy="clip|siglip",
    archive=_one_of(DOWNLOADS),
    alpha=r"[0-9.]+",
    rho=r"0\.[0-9]+",
    seed=r"\d+",
    sae_id=_one_of(SAE_SPECS),
    experiment=_one_of(ISO["experiments"]),
    eval_dataset=_one_of(DATASETS),


# Real embeddings: store paths, the toy resources they need, and the SAE pair trained on each.
TOY = f"{RESULTS}/toy"
ZOO = {entry["name"]: SAESpec(**entry["sae"]) for entry in REAL["zoo"]}
if len(ZOO) < len(REAL["zoo"]):
    raise ValueError(f"config key real_saes.zoo: names must be unique, got {[e['name'] for e in REAL['zoo']]}")


def toy_model_folder(toy):
    return f"{TOY}/models/{toy}"


def toy_dataset_folder(dataset):
    return f"{TOY}/datasets/{dataset}"


def model_json(wildcards):
    entry = dict(MODELS[wildcards.model])
    if "toy" in entry:
        entry["source"] = toy_model_folder(entry.pop("toy"))
    return json.dumps({"name": wildcards.model, **entry})


def dataset_json(wildcards):
    entry = DATASETS[wildcards.dataset]
    if "toy" in entry:
        return json.dumps({"format": "coco", "root": toy_dataset_folder(wildcards.dataset), "options": TOY_COCO_OPTIONS})
    return json.dumps({"format": entry["format"], "root": entry["root"], "options": entry["options"]})


def toy_inputs(wildcards):
    """The toy model folder and toy dataset an embed job needs, if it uses them."""
    inputs = []
    if "toy" in MODELS[wildcards.model]:
        inputs.append(toy_model_folder(MODELS[wildcards.model]["toy"]))
    if "toy" in DATASETS[wildcards.dataset]:
        inputs.append(rules.toy_dataset.output[0].format(dataset=wildcards.dataset))
    return inputs


def downloaded(wildcards):
    """Unpack markers of the archives the dataset lists under `download:`."""
    return expand(rules.unpack.output[0], archive=DATASETS[wildcards.dataset].get("download", []))


def model_gpus(wildcards):
    """GPUs a job on this model's embeddings asks for: none for the toy models."""
    return 0 if "toy" in MODELS[wildcards.model] else 1


def real_sae_folder(model, dataset, name, seed):
    return f"{RESULTS}/saes/{model}/{dataset}/{name}/seed{seed}"


def train_args(specs, weights):
    """One ``--sae SPEC --out FOLDER`` per SAE: all of them train in one pass over the data."""
    return " ".join(f"--sae '{json.dumps(asdict(spec))}' --out {os.path.dirname(path)}" for spec, path in zip(specs, weights))


def zoo_train_args(wildcards, output):
    return train_args(ZOO.values(), output.weights)


ZOO_RUNS = [(name, seed) for name in ZOO for seed in REAL["seeds"]]


def zoo_alignments(wildcards):
    """Every trained zoo SAE of one (model, training dataset), marked complete by its alignment."""
    return [f"{real_sae_folder(wildcards.model, wildcards.dataset, name, seed)}/alignment.npz" for name, seed in ZOO_RUNS]


def zoo_run_args(wildcards):
    return " ".join(f"--run {name} {seed} {real_sae_folder(wildcards.model, wildcards.dataset, name, seed)}"
                    for name, seed in ZOO_RUNS)


def encoder_metric_files():
    return expand(rules.evaluate_encoder.output[0], model=EMBED["models"], dataset=REAL["evaluate_on"])


def sae_metric_files():
    return expand(rules.evaluate_saes.output[0], model=EMBED["models"], dataset=REAL["train_on"],
                  eval_dataset=REAL["evaluate_on"])


def real_fig11_stores():
    """One panel per model: its store of the first evaluation dataset."""
    if not (REAL["enabled"] and REAL["evaluate_on"]):
        return {}
    return {m: rules.embed.output[0].format(model=m, dataset=REAL["evaluate_on"][0]) for m in EMBED["models"]}


def _fig2_runs():
    """(panel, alignment) of every modality-specific zoo pair: one panel per model and zoo name, seeds pooled."""
    return [(f"{model}/{name}", f"{real_sae_folder(model, dataset, name, seed)}/alignment.npz")
            for model in EMBED["models"] for dataset in REAL["train_on"] for name, spec in ZOO.items()
            if spec.arrangement == "specific" for seed in REAL["seeds"]]


def fig2_alignments():
    return [path for _, path in _fig2_runs()]


def fig2_panels():
    return [panel for panel, _ in _fig2_runs()]


def real_report_targets():
    """Tables and figures of the evaluation suite."""
    stems = ["tables/iso_table6_encoders", "tables/iso_table3_sae_zoo", "tables/het_table1_retrieval"]
    figures = ["figures/iso_fig11_cosines"] + (["figures/het_fig2_directions"] if fig2_alignments() else [])
    return [f"{RESULTS}/{stem}.{ext}" for stem in stems for ext in ("csv", "md")] + \
        [f"{RESULTS}/{stem}.{ext}" for stem in figures for ext in ("pdf", "png")]


def real_targets():
    """Every configured store, and the evaluation suite's reports when the zoo is enabled."""
    stores = expand(rules.embed.output[0], model=EMBED["models"], dataset=EMBED["datasets"])
    return stores + (real_report_targets() if REAL["enabled"] and ZOO else [])


def sae_json(wildcards):
    return json.dumps(asdict(SAE_SPECS[wildcards.sae_id]))


def het_dgp_json(wildcards):
    return json.dumps({**HET["dgp"], "alpha": float(wildcards.alpha)})


def iso_dgp_json(wildcards):
    return json.dumps({**ISO["dgp"], "tau1": ISO["experiments"][wildcards.experiment]["tau1"]})


def iso_train_args(wildcards, output):
    """SAE and SAE-A of one experiment, in one pass."""
    models = iso_models(wildcards.experiment)
    return train_args([models[name] for name in ISO_MODEL_NAMES], output.weights)


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
    targets += real_targets()
    if FIG5["enabled"]:
        targets += expand(f"{RESULTS}/tables/het_fig5_alpha_sweep.{{ext}}", ext=("csv", "md"))
        targets += expand(f"{RESULTS}/figures/het_fig5_alpha_sweep.{{ext}}", ext=("pdf", "png"))
    return targets
