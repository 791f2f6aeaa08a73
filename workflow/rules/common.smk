# Config validation, paths and target enumeration. No science lives here: what trains and is evaluated
# where is vlsae.design.Design, built once from the validated config.
import json
import os
import re
import shlex

import yaml
from dataclasses import asdict
from pathlib import Path

from snakemake.utils import validate

from vlsae import design
from vlsae.embed.toy import TOY_MARKER

validate(config, workflow.source_path("../schemas/config.schema.yaml"))
D = design.Design(config, os.getcwd())
with open(workflow.source_path("../artifacts.yaml")) as _index:
    ARTIFACTS = yaml.safe_load(_index)  # the paper artifacts: rule all and README.md's table
CLAIMS_FILE = os.path.relpath(os.path.join(workflow.basedir, "workflow", "claims.yaml"))
with open(CLAIMS_FILE) as _claims:
    CLAIMS = yaml.safe_load(_claims)  # the papers' testable claims: the scorecard

RESULTS = config["results"]
HET, FIG5, FIG6, THEORY, ISO, REAL = D.het, config["het_fig5"], D.fig6, config["het_theory"], D.iso, D.real
MODELS, DATASETS, EMBED, DOWNLOADS = D.models, D.datasets, D.embed, config["downloads"]
DOWNLOADED = "resources/downloads"
TENSORBOARD = "--tensorboard" if config["tensorboard"] else ""  # training terms as TensorBoard events too
TOY = f"{RESULTS}/toy"
MANIFEST, VERIFIED = "manifest.json", "verified.json"
# Every HET SAE of one study (Fig. 5, Fig. 6) and (alpha, seed) trains in one pass over that store.
HET_SAE = f"{RESULTS}/saes/synthetic/het-alpha{{alpha}}/{{study}}/{{sae_id}}/seed{{seed}}"
HET_METRICS = f"{RESULTS}/metrics/het_synthetic/het-alpha{{alpha}}/{{study}}/{{sae_id}}/seed{{seed}}.parquet"


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
    sae_id=_one_of(D.sae_specs),
    study=_one_of(D.studies),
    experiment=_one_of(ISO["experiments"]),
    eval_dataset=_one_of(DATASETS),
    protocol=_one_of(D.protocols),


def shell_args(*tokens):
    """Command-line tokens, each shell-quoted: no config value reaches a shell unquoted."""
    return " ".join(shlex.quote(str(t)) for t in tokens)


def verified(manifest):
    """The marker ``vlsae verify-store`` writes beside a store's manifest once every shard checks out."""
    return os.path.join(os.path.dirname(manifest), VERIFIED)


def store_dim(manifest):
    """A store's dimension, read off its manifest once it exists (design.NOMINAL_DIM before)."""
    try:
        return json.loads(Path(manifest).read_text())["dim"]
    except FileNotFoundError:
        return design.NOMINAL_DIM


# --- embedding stores and the toy resources they need ----------------------------------------------------
def toy_model_folder(toy):
    return f"{TOY}/models/{toy}"


def toy_dataset_folder(dataset):
    return f"{TOY}/datasets/{dataset}"


def model_json(wildcards):
    model = MODELS[wildcards.model]
    return json.dumps(D.model_entry(wildcards.model, toy_model_folder(model["toy"]) if "toy" in model else None))


def reader_json(dataset):
    return json.dumps(D.reader_entry(dataset, toy_dataset_folder(dataset)))


def toy_dataset_inputs(dataset):
    return [rules.toy_dataset.output[0].format(dataset=dataset)] if "toy" in DATASETS[dataset] else []


def toy_inputs(wildcards):
    """The toy model folder and toy dataset an embed job needs, if it uses them."""
    model = MODELS[wildcards.model]
    return ([toy_model_folder(model["toy"])] if "toy" in model else []) + toy_dataset_inputs(wildcards.dataset)


def downloaded(wildcards):
    """Unpack markers of the archives the dataset lists under `download:`."""
    return expand(rules.unpack.output[0], archive=DATASETS[wildcards.dataset].get("download", []))


def model_gpus(wildcards):
    """GPUs a job on this model's embeddings asks for: none for the toy models."""
    return 0 if "toy" in MODELS[wildcards.model] else 1


# --- SAEs: where they live and the CLI arguments that name them -------------------------------------------
def train_args(specs, weights):
    """One ``--sae SPEC --out FOLDER`` per SAE spec (a dict): all of them train in one pass over the data."""
    return shell_args(
        *(t for spec, path in zip(specs, weights) for t in ("--sae", json.dumps(spec), "--out", os.path.dirname(path)))
    )


def het_files(pattern, specs, **wildcards):
    """``pattern`` for each HET spec (``sae_id``), other wildcards filled where given."""
    return expand(pattern, sae_id=[s.slug for s in specs], **wildcards, allow_missing=True)


def specific(specs):
    """The modality-specific pairs among ``specs`` (those with a post-hoc alignment)."""
    return [s for s in specs if s.arrangement == "specific"]


def het_train_args(specs):
    return lambda wildcards, output: train_args([asdict(s) for s in specs], output.weights)


def het_eval_args(wildcards, input, output):
    """``--model``/``--out`` of every evaluated spec (in ``input.weights`` order), for one process."""
    return shell_args(
        *(t for w, out in zip(input.weights, output.metrics) for t in ("--model", os.path.dirname(w), "--out", out))
    )


def iso_train_args(wildcards, output):
    """SAE and SAE-A of one experiment, in one pass."""
    models = D.iso_models(wildcards.experiment)
    return train_args([asdict(models[name]) for name in design.ISO_MODEL_NAMES], output.weights)


def real_sae_folder(model, dataset, name, seed):
    return f"{RESULTS}/saes/{model}/{dataset}/{name}/seed{seed}"


def zoo_marker(model, dataset, seed, stage):
    """Written once every member of one (model, dataset, seed) is ``aligned``, or every member of one
    training protocol is ``trained`` (stage ``{protocol}.trained``)."""
    return f"{RESULTS}/saes/{model}/{dataset}/zoo-seed{seed}.{stage}"


def zoo_trained(wildcards):
    """The training markers of every protocol of one (model, dataset, seed)."""
    return [
        zoo_marker(wildcards.model, wildcards.dataset, wildcards.seed, f"{p}.trained")
        for p in D.member_protocols(wildcards.model, wildcards.dataset)
    ]


def zoo_alignments(wildcards):
    """The aligned zoo of one (model, training dataset), every seed."""
    return [zoo_marker(wildcards.model, wildcards.dataset, seed, "aligned") for seed in REAL["seeds"]]


def zoo_train_args(wildcards):
    names = D.members(wildcards.model, wildcards.dataset, protocol=wildcards.protocol)
    return train_args(
        [D.zoo_sae[n] for n in names],
        [f"{real_sae_folder(wildcards.model, wildcards.dataset, n, wildcards.seed)}/model.safetensors" for n in names],
    )


def zoo_align_args(wildcards):
    folders = [
        real_sae_folder(wildcards.model, wildcards.dataset, n, wildcards.seed)
        for n in D.members(wildcards.model, wildcards.dataset, sorted(D.zoo_aligned))
    ]
    return shell_args(*(t for folder in folders for t in ("--model", folder, "--out", f"{folder}/alignment.npz")))


def zoo_run_args(wildcards, names=None, seeds=None):
    """``--run NAME SEED FOLDER`` of every member (or of ``names``) of one (model, training dataset), every seed
    (or those of ``seeds``)."""
    return shell_args(
        *(
            t
            for name in D.members(wildcards.model, wildcards.dataset, names)
            for seed in seeds or REAL["seeds"]
            for t in ("--run", name, seed, real_sae_folder(wildcards.model, wildcards.dataset, name, seed))
        )
    )


def zoo_mb(stage):
    """``mem_mb`` of a zoo job from its own members and store (design.Design.member_mb)."""
    return lambda wildcards, input: D.member_mb(
        stage, wildcards.model, wildcards.dataset, store_dim(input.data), getattr(wildcards, "protocol", None)
    )


# --- metric files, figure inputs and targets ------------------------------------------------------------
def suite_metric_files(suite, role, members=None, enabled=True):
    """Metric files of one suite (a ``metrics/real/{model}/{dataset}/{suite}-on-{eval_dataset}`` rule),
    for every (model, training dataset) where a zoo member (of ``members``, if given) is trained."""
    if not enabled:
        return []
    return [
        f"{RESULTS}/metrics/real/{model}/{dataset}/{suite}-on-{eval_dataset}.parquet"
        for model, dataset in D.zoo_pairs()
        if D.members(model, dataset, members)
        for eval_dataset in D.eval_sets(role)
    ]


REAL_INPUTS = {  # the metric files behind each real-data artifact of workflow/artifacts.yaml (its `inputs`)
    "encoders": lambda: expand(rules.evaluate_encoder.output[0], model=EMBED["models"], dataset=D.eval_sets("pairs")),
    "saes": lambda: suite_metric_files("saes", "pairs"),
    "gap": lambda: suite_metric_files("gap", "pairs", [D.bimodal_sae]),
    "arithmetic": lambda: suite_metric_files("arithmetic", "triplets", [D.bimodal_sae]),
    "steering": lambda: suite_metric_files("steering", "concepts"),
    "monosemanticity": lambda: suite_metric_files("monosemanticity", "captions", enabled=D.ms_encoder is not None),
}
REAL_REPORTS = {e["stem"]: e["report"] for e in ARTIFACTS if "report" in e}  # report-table / report-figure artifacts
REAL_TABLES = [e["stem"] for e in ARTIFACTS if "report" in e and e["kind"] == "table"]
REAL_FIGURES = [e["stem"] for e in ARTIFACTS if "report" in e and e["kind"] == "figure"]


def real_report_inputs(stem):
    """The metric files of one real-data artifact; none where it shows a selection (``saes``: a key of
    real_saes.selections) that the config does not define."""
    entry = REAL_REPORTS[stem]
    return REAL_INPUTS[entry["inputs"]]() if entry.get("saes") in (None, *REAL["selections"]) else []


def real_report_saes(wildcards):
    """``--sae NAME`` (and ``--model NAME``) for each SAE (model) of the artifact's selection, if it has one."""
    stem = wildcards.get("real_table") or wildcards.get("real_figure")
    selection = REAL["selections"].get(REAL_REPORTS[stem].get("saes"), {})
    return shell_args(
        *(t for name in selection.get("saes", []) for t in ("--sae", name)),
        *(t for name in selection.get("models", []) for t in ("--model", name)),
    )


def real_fig11_stores():
    """One panel per model: its store of the first evaluation dataset."""
    if not (REAL["enabled"] and D.eval_sets("pairs")):
        return {}
    return {m: rules.embed.output[0].format(model=m, dataset=D.eval_sets("pairs")[0]) for m in EMBED["models"]}


def _fig2_runs(figure="fig2"):
    """(panel, folder, alignment marker) of every modality-specific zoo pair of HET Fig. 2 (``fig2_saes``) or Fig. 9
    (``selections.het_fig9``): one panel per model and zoo name, seeds pooled."""
    return [
        (f"{model}/{name}", real_sae_folder(model, dataset, name, seed), zoo_marker(model, dataset, seed, "aligned"))
        for model, dataset in D.zoo_pairs()
        for name in D.fig2_members(model, dataset, figure)
        for seed in REAL["seeds"]
    ]


def fig2_alignments(figure="fig2"):
    return sorted({marker for _, _, marker in _fig2_runs(figure)})


def fig2_run_args(figure="fig2"):
    return shell_args(*(t for panel, folder, _ in _fig2_runs(figure) for t in ("--run", panel, folder)))


def iso_feature_runs():
    """(label, run folder, training marker) of the two SAEs of selections.iso_main (SAE: no alignment loss, SAE-A) on
    the first (model, training store) that trains both, first seed; with the store of ISO Figs. 12-17."""
    names = REAL["selections"].get("iso_main", {}).get("saes", [])
    where = [(m, d) for m, d in D.zoo_pairs() if names and set(names) <= set(D.members(m, d))]
    if not where or not D.eval_sets("pairs"):
        return [], None
    model, dataset = where[0]
    seed = REAL["seeds"][0]
    runs = [
        (
            "SAE-A" if "iso_energy" in D.zoo[n].aux else "SAE",
            real_sae_folder(model, dataset, n, seed),
            zoo_marker(model, dataset, seed, f"{D.zoo_protocol[n]}.trained"),
        )
        for n in names
    ]
    return runs, rules.embed.output[0].format(model=model, dataset=D.eval_sets("pairs")[0])


FEATURE_STEMS = [e["stem"] for e in ARTIFACTS if e.get("features")]


# --- the latent browser and its galleries ------------------------------------------------------------
GALLERIES = {e["stem"]: e["gallery"] for e in ARTIFACTS if "gallery" in e}  # stem -> {kind, source}
GALLERY_SOURCES = D.gallery_sources()  # source -> (model, training dataset, browsed store, zoo name)


def browse_folder(model, dataset, eval_dataset):
    return f"{RESULTS}/browser/{model}/{dataset}/on-{eval_dataset}"


def browse_targets():
    return [browse_folder(m, d, e) for m, d in D.zoo_pairs() for e in D.browse_sets()]


def _browse_ms(wildcards):
    """The per-latent monosemanticity scores of this zoo on this store, where the suite computes them."""
    if D.ms_encoder is None or wildcards.eval_dataset not in D.eval_sets("captions"):
        return []
    return [rules.evaluate_monosemanticity.output[0].format(**wildcards)]


def browse_inputs(wildcards):
    return {
        "alignments": zoo_alignments(wildcards),
        "data": rules.embed.output[0].format(model=wildcards.model, dataset=wildcards.eval_dataset),
        "ms": _browse_ms(wildcards),
    }


def browse_run_args(wildcards):
    """``--run NAME SEED FOLDER`` of every member of one (model, training dataset), first seed."""
    return zoo_run_args(wildcards, seeds=REAL["seeds"][:1])


def browse_ms_arg(wildcards, input):
    return shell_args("--monosemanticity", input.ms[0]) if input.ms else ""


def gallery_browser(wildcards):
    model, dataset, eval_dataset, _ = GALLERY_SOURCES[GALLERIES[wildcards.gallery]["source"]]
    return browse_folder(model, dataset, eval_dataset)


def iso_fig9_stores():
    """Evaluation store of the first seed of each experiment, one histogram panel each."""
    return {name: expand(rules.synth_iso.output.eval, experiment=name, seed=ISO["seeds"][0])[0] for name in ISO["experiments"]}


def artifact_files(entry):
    """Files of one entry of workflow/artifacts.yaml: its table, and its figure if it is one."""
    files = [f"{RESULTS}/tables/{entry['stem']}.{ext}" for ext in ("csv", "md")]
    return files + ([f"{RESULTS}/figures/{entry['stem']}.{ext}" for ext in ("pdf", "png")] if entry["kind"] == "figure" else [])


def _has_inputs(stem):
    """Whether a real-data artifact has anything to draw on in this config (e.g. HET Fig. 7 needs a
    COCO store with concepts, HET Fig. 2 a modality-specific zoo member)."""
    if stem in REAL_REPORTS:
        return bool(real_report_inputs(stem))
    if stem in GALLERIES:
        return GALLERIES[stem]["source"] in GALLERY_SOURCES
    return bool(
        {
            "iso_fig11_cosines": real_fig11_stores,
            "iso_fig10_pca": real_fig11_stores,
            "het_fig2_directions": fig2_alignments,
            "het_fig9_directions_large": lambda: fig2_alignments("fig9"),
            **{stem: lambda: iso_feature_runs()[0] for stem in FEATURE_STEMS},
        }[stem]()
    )


def artifact_wanted(entry):
    if entry["section"] == "real_saes":
        return REAL["enabled"] and bool(D.zoo) and _has_inputs(entry["stem"])
    return config[entry["section"]]["enabled"]


def claim_tables():
    """STEM -> table, for every table a claim is checked on that this run builds."""
    built = {entry["stem"] for entry in ARTIFACTS if artifact_wanted(entry)}
    return {stem: f"{RESULTS}/tables/{stem}.csv" for stem in dict.fromkeys(c["stem"] for c in CLAIMS) if stem in built}


def all_targets():
    """Every configured embedding store, every artifact of workflow/artifacts.yaml that is switched on, the
    latent browsers and the claims scorecard."""
    stores = expand(rules.embed.output[0], model=EMBED["models"], dataset=EMBED["datasets"])
    artifacts = [path for entry in ARTIFACTS if artifact_wanted(entry) for path in artifact_files(entry)]
    return stores + artifacts + browse_targets() + list(rules.report_claims.output)
