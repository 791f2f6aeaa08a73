# Config validation and target enumeration. No science lives here.
import json
import os
import re
import shlex

import yaml
from dataclasses import asdict
from pathlib import Path

from snakemake.utils import validate

from vlsae import design
from vlsae.sae import SAESpec
from vlsae.embed.toy import TOY_CONCEPTS, TOY_MARKER, TOY_OPTIONS
from vlsae.synth.iso import iso_dictionary_size


validate(config, workflow.source_path("../schemas/config.schema.yaml"))
with open(workflow.source_path("../artifacts.yaml")) as _index:
    ARTIFACTS = yaml.safe_load(_index)  # the paper artifacts: rule all and README.md's table
CLAIMS_FILE = os.path.relpath(os.path.join(workflow.basedir, "workflow", "claims.yaml"))
with open(CLAIMS_FILE) as _claims:
    CLAIMS = yaml.safe_load(_claims)  # the papers' testable claims: the scorecard

RESULTS = config["results"]
design.check_results(RESULTS, os.getcwd(), config["allow_external_results"])  # the working directory
design.check_datasets(config["datasets"])
HET = config["het_synthetic"]
FIG5 = config["het_fig5"]
THEORY = config["het_theory"]

FIG6 = config["het_fig6"]
ISO = config["iso_toy"]
MODELS = config["models"]
DATASETS = config["datasets"]
EMBED = config["embeddings"]
REAL = config["real_saes"]
# Training protocols of the zoo: `real_saes.training` is the one named `default`; a member may name another.
PROTOCOLS = {"default": REAL["training"], **REAL["protocols"]}
ZOO_PROTOCOL = {e["name"]: e.get("protocol", "default") for e in REAL["zoo"]}

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
REFERENCE_SPECS = [design.sae_spec({**HET["sae"], "arrangement": arr}, "het_synthetic.sae") for arr in ("shared", "specific")]
FIG6_SPECS = [
    design.sae_spec({**HET["sae"], "arrangement": "shared",
                     "aux": {**HET["sae"]["aux"], loss: {**options, "weight": options["weight"] * multiplier}}},
                    f"het_fig6.losses.{loss}")
    for loss, options in FIG6["losses"].items()
    for multiplier in FIG6["multipliers"]
]
SAE_SPECS = {spec.slug: spec for spec in REFERENCE_SPECS + FIG6_SPECS}
# Every HET SAE of one study (Fig. 5, Fig. 6) and (alpha, seed) trains in one pass over that store: Fig. 5's
# reference pairs at each of its alphas; Fig. 6's references and sweep at its alpha, with Fig. 6's own
# training protocol, metric definitions and matching (its defaults: the HET authors' objective).
HET_SAE = f"{RESULTS}/saes/synthetic/het-alpha{{alpha}}/{{study}}/{{sae_id}}/seed{{seed}}"
HET_METRICS = f"{RESULTS}/metrics/het_synthetic/het-alpha{{alpha}}/{{study}}/{{sae_id}}/seed{{seed}}.parquet"
FIG6_TRAINED = REFERENCE_SPECS + FIG6_SPECS
STUDY = {  # per HET synthetic study: training protocol, metric definitions (HET E.3 by default), matching
    "fig5": {"training": HET["training"], "metrics": {}, "matching": "signed"},
    "fig6": {"training": FIG6["training"], "metrics": FIG6["metrics"], "matching": FIG6["matching"]},
}

# ISO Table 5: SAE (MP) and SAE-A per experiment, k = the DGP's sparsity L, with D1's atom count
# (iso_toy.sae.atoms: bimodal, the authors' run) or that of the experiment's scored truth.
ISO_MODEL_NAMES = ("sae", "sae_a")


def iso_models(experiment):
    truth = {"bimodal": "bimodal", "scored": ISO["experiments"][experiment]["truth"]}[ISO["sae"]["atoms"]]
    params = {"k": ISO["dgp"]["L"], "selection": ISO["sae"]["selection"]}
    mp = SAESpec(architecture="mp", latents=iso_dictionary_size(truth, ISO["dgp"]["k"]), params=params)
    return {"sae": mp, "sae_a": SAESpec(**{**asdict(mp), "aux": {"iso_energy": ISO["alignment"]}})}


MANIFEST, VERIFIED = "manifest.json", "verified.json"


def verified(manifest):
    """The marker ``vlsae verify-store`` writes beside a store's manifest once every shard checks out."""
    return manifest.replace(f"/{MANIFEST}", f"/{VERIFIED}")


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
    study="fig5|fig6",
    experiment=_one_of(ISO["experiments"]),
    eval_dataset=_one_of(DATASETS),
    protocol=_one_of(PROTOCOLS),


# Real embeddings: store paths, the toy resources they need, and the SAE pair trained on each.
TOY = f"{RESULTS}/toy"
ZOO_SAE = {entry["name"]: entry["sae"] for entry in REAL["zoo"]}  # as trained (`expansion` resolved by the store)
ZOO = {name: design.sae_spec(sae, f"real_saes.zoo[{name}].sae", dim=1024) for name, sae in ZOO_SAE.items()}  # a nominal dimension
if len(ZOO) < len(REAL["zoo"]):
    raise ValueError(f"config key real_saes.zoo: names must be unique, got {[e['name'] for e in REAL['zoo']]}")
# Where each member trains: its own `models` and `train_on`, else every embedded model and train_on set.
ZOO_WHERE = {e["name"]: (e.get("models", EMBED["models"]), e.get("train_on", REAL["train_on"])) for e in REAL["zoo"]}
if REAL["enabled"]:
    for e in REAL["zoo"]:
        for key, allowed in (("models", EMBED["models"]), ("train_on", REAL["train_on"])):
            unknown = sorted(set(e.get(key, [])) - set(allowed))
            if unknown:
                raise ValueError(f"config key real_saes.zoo[{e['name']}].{key}: {unknown} not among {sorted(allowed)}")
        if ZOO_PROTOCOL[e["name"]] not in PROTOCOLS:
            raise ValueError(f"config key real_saes.zoo[{e['name']}].protocol: {ZOO_PROTOCOL[e['name']]!r} not defined "
                             f"(defined: {sorted(PROTOCOLS)})")


def toy_model_folder(toy):
    return f"{TOY}/models/{toy}"


def toy_dataset_folder(dataset):
    return f"{TOY}/datasets/{dataset}"


def model_json(wildcards):
    entry = dict(MODELS[wildcards.model])
    if "toy" in entry:
        entry["source"] = toy_model_folder(entry.pop("toy"))
    return json.dumps({"name": wildcards.model, **entry})


def reader_json(dataset):
    """The dataset's reader arguments (format, root, options), the toy layouts included."""
    entry = DATASETS[dataset]
    if "toy" in entry:
        return json.dumps({"format": entry["format"], "root": toy_dataset_folder(dataset), "options": TOY_OPTIONS[entry["format"]]})
    return json.dumps({"format": entry["format"], "root": entry["root"], "options": entry["options"]})


def dataset_json(wildcards):
    return reader_json(wildcards.dataset)


def toy_dataset_inputs(dataset):
    return [rules.toy_dataset.output[0].format(dataset=dataset)] if "toy" in DATASETS[dataset] else []


def toy_inputs(wildcards):
    """The toy model folder and toy dataset an embed job needs, if it uses them."""
    model = MODELS[wildcards.model]
    return ([toy_model_folder(model["toy"])] if "toy" in model else []) + toy_dataset_inputs(wildcards.dataset)


def concept_files(dataset):
    """COCO instance files (under the dataset root) with the object categories of each image."""
    return [TOY_CONCEPTS] if "toy" in DATASETS[dataset] else DATASETS[dataset].get("concepts", [])


def downloaded(wildcards):
    """Unpack markers of the archives the dataset lists under `download:`."""
    return expand(rules.unpack.output[0], archive=DATASETS[wildcards.dataset].get("download", []))


def model_gpus(wildcards):
    """GPUs a job on this model's embeddings asks for: none for the toy models."""
    return 0 if "toy" in MODELS[wildcards.model] else 1


def real_sae_folder(model, dataset, name, seed):
    return f"{RESULTS}/saes/{model}/{dataset}/{name}/seed{seed}"


def shell_args(*tokens):
    """Command-line tokens, each shell-quoted: no config value reaches a shell unquoted."""
    return " ".join(shlex.quote(str(t)) for t in tokens)


def train_args(specs, weights):
    """One ``--sae SPEC --out FOLDER`` per SAE spec (a dict): all of them train in one pass over the data."""
    return shell_args(*(t for spec, path in zip(specs, weights) for t in ("--sae", json.dumps(spec), "--out", os.path.dirname(path))))


def zoo_members(model, dataset, names=None, protocol=None):
    """Zoo names trained on this (model, dataset), in zoo order, optionally only those in ``names`` or
    of one training ``protocol``."""
    return [n for n in ZOO if model in ZOO_WHERE[n][0] and dataset in ZOO_WHERE[n][1] and (names is None or n in names)
            and protocol in (None, ZOO_PROTOCOL[n])]


def zoo_protocols(model, dataset):
    """The training protocols of the members of one (model, dataset): one training pass each."""
    return list(dict.fromkeys(ZOO_PROTOCOL[n] for n in zoo_members(model, dataset)))


def zoo_pairs():
    """Every (model, training dataset) with at least one zoo member."""
    return [(m, d) for m in EMBED["models"] for d in REAL["train_on"] if zoo_members(m, d)]


def zoo_marker(model, dataset, seed, stage):
    """Written once every member of one (model, dataset, seed) is ``aligned``, or every member of one
    training protocol is ``trained`` (stage ``{protocol}.trained``)."""
    return f"{RESULTS}/saes/{model}/{dataset}/zoo-seed{seed}.{stage}"


def zoo_trained(wildcards):
    """The training markers of every protocol of one (model, dataset, seed)."""
    return [zoo_marker(wildcards.model, wildcards.dataset, wildcards.seed, f"{p}.trained")
            for p in zoo_protocols(wildcards.model, wildcards.dataset)]


def zoo_train_args(wildcards):
    names = zoo_members(wildcards.model, wildcards.dataset, protocol=wildcards.protocol)
    return train_args([ZOO_SAE[n] for n in names],
                      [f"{real_sae_folder(wildcards.model, wildcards.dataset, n, wildcards.seed)}/model.safetensors" for n in names])


ZOO_ALIGNED = {e["name"] for e in REAL["zoo"] if e.get("align", True)}  # members whose alignment is computed
if REAL["enabled"]:
    for name in ZOO:
        if ZOO[name].arrangement == "specific" and name not in ZOO_ALIGNED:
            raise design.ConfigError(f"real_saes.zoo[{name}].align", "a modality-specific pair needs its alignment "
                                     "(post-hoc rows, Fig. 2)")


def store_dim(manifest):
    """A store's dimension, read off its manifest once it exists (design.NOMINAL_DIM before)."""
    try:
        return json.loads(Path(manifest).read_text())["dim"]
    except FileNotFoundError:
        return design.NOMINAL_DIM


def zoo_specs(model, dataset, dim, names=None, protocol=None):
    """The specs (``expansion`` resolved at ``dim``) of the members of one (model, training dataset)."""
    return [SAESpec.from_dict(ZOO_SAE[n], dim) for n in zoo_members(model, dataset, names, protocol)]


def zoo_mb(stage):
    """``mem_mb`` of a zoo job from its own members and store (design.square_mb / train_mb)."""
    def mb(wildcards, input):
        dim = store_dim(input.data)
        if stage == "train":
            return design.train_mb(zoo_specs(wildcards.model, wildcards.dataset, dim, protocol=wildcards.protocol), dim,
                                   EMBED["shard_pairs"])
        names = sorted(ZOO_ALIGNED) if stage == "align" else None
        latents = [s.latents_per_sae for s in zoo_specs(wildcards.model, wildcards.dataset, dim, names)]
        per_pair = design.ALIGN_BYTES_PER_PAIR if stage == "align" else design.EVALUATE_BYTES_PER_PAIR
        return design.square_mb(latents, per_pair)
    return mb


def zoo_align_args(wildcards):
    folders = [real_sae_folder(wildcards.model, wildcards.dataset, n, wildcards.seed)
               for n in zoo_members(wildcards.model, wildcards.dataset, sorted(ZOO_ALIGNED))]
    return shell_args(*(t for folder in folders for t in ("--model", folder, "--out", f"{folder}/alignment.npz")))


BIMODAL_SAE = REAL["bimodal_sae"]
MS_ENCODER = REAL["monosemanticity_encoder"]
if REAL["enabled"] and BIMODAL_SAE is not None and (BIMODAL_SAE not in ZOO or ZOO[BIMODAL_SAE].arrangement != "shared"):
    raise ValueError(f"config key real_saes.bimodal_sae: {BIMODAL_SAE!r} is not a shared SAE of real_saes.zoo "
                     f"(shared: {[n for n, s in ZOO.items() if s.arrangement == 'shared']})")
if REAL["enabled"] and REAL["fig2_saes"] is not None:
    not_specific = sorted(set(REAL["fig2_saes"]) - {n for n, s in ZOO.items() if s.arrangement == "specific"})
    if not_specific:
        raise ValueError(f"config key real_saes.fig2_saes: {not_specific} are not modality-specific zoo members")
if REAL["enabled"] and MS_ENCODER is not None and MS_ENCODER not in MODELS:
    raise ValueError(f"config key real_saes.monosemanticity_encoder: {MS_ENCODER!r} not defined (defined: {sorted(MODELS)})")


def zoo_alignments(wildcards):
    """The aligned zoo of one (model, training dataset), every seed."""
    return [zoo_marker(wildcards.model, wildcards.dataset, seed, "aligned") for seed in REAL["seeds"]]


def zoo_run_args(wildcards, names=None):
    """``--run NAME SEED FOLDER`` of every member (or of ``names``) of one (model, training dataset)."""
    return shell_args(*(t for name in zoo_members(wildcards.model, wildcards.dataset, names) for seed in REAL["seeds"]
                        for t in ("--run", name, seed, real_sae_folder(wildcards.model, wildcards.dataset, name, seed))))


_ROLES = {  # which evaluate_on stores each suite runs on, by their layout
    "pairs": lambda d: DATASETS[d]["format"] != "fashioniq",           # encoder, SAE zoo and gap metrics
    "triplets": lambda d: DATASETS[d]["format"] == "fashioniq",        # vector arithmetic
    "concepts": lambda d: DATASETS[d]["format"] == "coco" and bool(concept_files(d)),  # concept steering
    "captions": lambda d: DATASETS[d]["format"] in ("coco", "img2dataset"),             # monosemanticity
}


def eval_sets(role):
    return [d for d in REAL["evaluate_on"] if _ROLES[role](d)]


def encoder_metric_files():
    return expand(rules.evaluate_encoder.output[0], model=EMBED["models"], dataset=eval_sets("pairs"))


def suite_metric_files(suite, role, members=None, enabled=True):
    """Metric files of one suite (a ``metrics/real/{model}/{dataset}/{suite}-on-{eval_dataset}`` rule),
    for every (model, training dataset) where a zoo member (of ``members``, if given) is trained."""
    if not enabled:
        return []
    return [f"{RESULTS}/metrics/real/{model}/{dataset}/{suite}-on-{eval_dataset}.parquet"
            for model, dataset in zoo_pairs() if zoo_members(model, dataset, members) for eval_dataset in eval_sets(role)]


REAL_TABLES = {  # table file stem: (report-table --kind, its metric files)
    "iso_table6_encoders": ("iso_table6", encoder_metric_files),
    "iso_table3_sae_zoo": ("iso_table3", lambda: suite_metric_files("saes", "pairs")),
    "het_table1_retrieval": ("het_table1", lambda: suite_metric_files("saes", "pairs")),
    "iso_tables9_11_gap_removal": ("iso_tables9_11", lambda: suite_metric_files("gap", "pairs", [BIMODAL_SAE])),
    "iso_table12_gap_baselines": ("iso_table12", lambda: suite_metric_files("gap", "pairs", [BIMODAL_SAE])),
    "iso_tables7_8_vector_arithmetic": ("iso_tables7_8", lambda: suite_metric_files("arithmetic", "triplets", [BIMODAL_SAE])),
}
REAL_FIGURES = {  # figure file stem: (report-{kind} command, its metric files)
    "het_fig7_steering": ("het-fig7", lambda: suite_metric_files("steering", "concepts")),
    "het_fig8_monosemanticity": ("het-fig8", lambda: suite_metric_files("monosemanticity", "captions", enabled=MS_ENCODER is not None)),
}


def real_fig11_stores():
    """One panel per model: its store of the first evaluation dataset."""
    if not (REAL["enabled"] and eval_sets("pairs")):
        return {}
    return {m: rules.embed.output[0].format(model=m, dataset=eval_sets("pairs")[0]) for m in EMBED["models"]}


def _fig2_runs():
    """(panel, alignment) of every modality-specific zoo pair of ``fig2_saes``: one panel per model and zoo
    name, seeds pooled."""
    return [(f"{model}/{name}", real_sae_folder(model, dataset, name, seed), zoo_marker(model, dataset, seed, "aligned"))
            for model, dataset in zoo_pairs() for name in zoo_members(model, dataset, REAL["fig2_saes"])
            if ZOO[name].arrangement == "specific" for seed in REAL["seeds"]]


def fig2_alignments():
    return sorted({marker for _, _, marker in _fig2_runs()})


def fig2_run_args():
    return shell_args(*(t for panel, folder, _ in _fig2_runs() for t in ("--run", panel, folder)))


def _het_files(pattern, specs, wildcards):
    return expand(pattern, sae_id=[s.slug for s in specs], **wildcards, allow_missing=True)


def het_weights(specs, **wildcards):
    """``model.safetensors`` of each HET spec, other wildcards left open."""
    return _het_files(f"{HET_SAE}/model.safetensors", specs, wildcards)


def het_alignments(specs, **wildcards):
    """Post-hoc ``alignment.npz`` of each modality-specific HET spec."""
    return _het_files(f"{HET_SAE}/alignment.npz", [s for s in specs if s.arrangement == "specific"], wildcards)


def het_metrics(specs, **wildcards):
    """Tidy metrics of each HET spec."""
    return _het_files(HET_METRICS, specs, wildcards)


def het_train_args(specs):
    """``--sae``/``--out`` of every spec (in ``output.weights`` order), for one pass."""
    return lambda wildcards, output: train_args([asdict(s) for s in specs], output.weights)


def het_dgp_json(alpha):
    """The HET DGP of config ``het_synthetic.dgp`` at cosine ``alpha``, as the CLI's ``--dgp``."""
    return json.dumps({**HET["dgp"], "alpha": float(alpha)})


def iso_dgp_json(wildcards):
    return json.dumps({**ISO["dgp"], "tau1": ISO["experiments"][wildcards.experiment]["tau1"]})


def iso_train_args(wildcards, output):
    """SAE and SAE-A of one experiment, in one pass."""
    models = iso_models(wildcards.experiment)
    return train_args([asdict(models[name]) for name in ISO_MODEL_NAMES], output.weights)


def het_eval_args(wildcards, input, output):
    """``--model``/``--out`` of every evaluated spec (in ``input.weights`` order), for one process."""
    return shell_args(*(t for w, out in zip(input.weights, output.metrics) for t in ("--model", os.path.dirname(w), "--out", out)))


def fig5_metric_files():
    return het_metrics(REFERENCE_SPECS, alpha=FIG5["alphas"], seed=FIG5["seeds"], study="fig5")


def fig6_metric_files():
    return het_metrics(FIG6_TRAINED, alpha=FIG6["alpha"], seed=FIG6["seeds"], study="fig6")


def iso_metric_files():
    return expand(rules.evaluate_iso_toy.output[0], experiment=ISO["experiments"], seed=ISO["seeds"])


def iso_fig9_stores():
    """Evaluation store of the first seed of each experiment, one histogram panel each."""
    return {name: expand(rules.synth_iso.output.eval, experiment=name, seed=ISO["seeds"][0])[0]
            for name in ISO["experiments"]}


def theory_boundary_files():
    return expand(rules.theory_phases.output[0], rho=THEORY["rhos"])


def artifact_files(entry):
    """Files of one entry of workflow/artifacts.yaml: its table, and its figure if it is one."""
    files = [f"{RESULTS}/tables/{entry['stem']}.{ext}" for ext in ("csv", "md")]
    return files + ([f"{RESULTS}/figures/{entry['stem']}.{ext}" for ext in ("pdf", "png")] if entry["kind"] == "figure" else [])


def _has_inputs(stem):
    """Whether a real-data artifact has anything to draw on in this config (e.g. HET Fig. 7 needs a
    COCO store with concepts, HET Fig. 2 a modality-specific zoo member)."""
    if stem in REAL_TABLES:
        return bool(REAL_TABLES[stem][1]())
    if stem in REAL_FIGURES:
        return bool(REAL_FIGURES[stem][1]())
    return bool({"iso_fig11_cosines": real_fig11_stores, "het_fig2_directions": fig2_alignments}[stem]())


def artifact_wanted(entry):
    if entry["section"] == "real_saes":
        return REAL["enabled"] and bool(ZOO) and _has_inputs(entry["stem"])
    return config[entry["section"]]["enabled"]


def claim_tables():
    """STEM -> table, for every table a claim is checked on that this run builds."""
    built = {entry["stem"] for entry in ARTIFACTS if artifact_wanted(entry)}
    return {stem: f"{RESULTS}/tables/{stem}.csv" for stem in dict.fromkeys(c["stem"] for c in CLAIMS) if stem in built}


def all_targets():
    """Every configured embedding store, every artifact of workflow/artifacts.yaml that is switched on, and
    the claims scorecard."""
    stores = expand(rules.embed.output[0], model=EMBED["models"], dataset=EMBED["datasets"])
    artifacts = [path for entry in ARTIFACTS if artifact_wanted(entry) for path in artifact_files(entry)]
    return stores + artifacts + list(rules.report_claims.output)
