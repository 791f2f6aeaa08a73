"""Metric suites: each writes tidy rows (one per method x metric) to Parquet."""

from __future__ import annotations

from pathlib import Path

from ..synth.iso import TRUTHS
from .args import DEVICE, NON_NEGATIVE, RUNS, arg, command, each_run, json_object, key_value, log, one_out_each, write_rows

STORE = arg("--data", required=True, type=Path, help="evaluation store")
OPTIONS = arg("--options", type=json_object, default={}, help="evaluation options (JSON, see EvalOptions)")
TAGS = arg("--tag", type=key_value, action="append", default=[], help="KEY=VALUE column added to every row")
OUT = arg("--out", required=True, type=Path, help="tidy metrics (.parquet)")
ZOO_SUITE = (STORE, RUNS, OPTIONS, DEVICE, TAGS, OUT)  # a suite over --runs of trained SAEs on one store


@command("eval-het", "the five synthetic metrics of HET E.3",
         arg("--model", required=True, type=Path, action="append",
             help="trained run folder (with alignment.npz: also the aligned pair); repeatable"),
         STORE, arg("--ground-truth", required=True, type=Path),
         arg("--metrics", type=json_object, default={},
             help="HetMetrics as JSON: reconstruction mse|fvu, feature_recovery topk|top1 (default HET E.3)"),
         arg("--seed", type=NON_NEGATIVE, default=0),
         arg("--out", required=True, type=Path, action="append", help="tidy metrics (.parquet), one per --model"))
def eval_het(a) -> None:
    """Each ``--model`` to its ``--out``; a modality-specific pair whose folder holds ``alignment.npz`` is also
    evaluated after post-hoc alignment."""
    from ..align import Alignment
    from ..metrics.synthetic import HetMetrics, evaluate_het, het_methods
    from ..sae import load_paired_sae
    from ..store import EmbeddingStore
    from ..strict import from_dict
    from ..synth.het import GroundTruth

    gt, store, metrics = GroundTruth.load(a.ground_truth), EmbeddingStore(a.data), from_dict(HetMetrics, a.metrics, "metrics")
    for folder, out in one_out_each(a.model, a.out, "--model"):
        model, saved = load_paired_sae(folder), Path(folder) / "alignment.npz"
        perm = Alignment.load(saved).perm if saved.exists() else None
        rows = [{"method": method, "alpha": gt.alpha, "seed": a.seed, "sae_id": model.spec.slug, "metric": k, "value": v}
                for method, p in het_methods(model, perm).items()
                for k, v in evaluate_het(model, gt, store, p, metrics=metrics).items()]
        write_rows(out, rows)
        for row in rows:
            log.info("%s: %-32s %-24s %.4f", folder, row["method"], row["metric"], row["value"])


@command("eval-iso", "ISO Table 5 metrics (W, mma, R2, L0) of shared SAEs on the toy DGP",
         arg("--model", required=True, type=Path, action="append", help="trained run folder; repeatable"),
         STORE, arg("--ground-truth", required=True, type=Path),
         arg("--truth", required=True, choices=TRUTHS,
             help="the ground truth the experiment is scored against (both are measured)"),
         arg("--experiment", required=True, help="experiment name written to the rows (e.g. exp1)"),
         arg("--seed", type=NON_NEGATIVE, default=0), OUT)
def eval_iso(a) -> None:
    from ..metrics.dictionary import evaluate_recovery
    from ..report.iso_toy import model_label
    from ..sae import load_paired_sae
    from ..store import EmbeddingStore
    from ..synth.iso import IsoGroundTruth

    gt, store, rows = IsoGroundTruth.load(a.ground_truth), EmbeddingStore(a.data), []
    for path in a.model:
        model = load_paired_sae(path)
        rows += [{"experiment": a.experiment, "tau1": gt.dgp.tau1, "scored_truth": a.truth, "model": model_label(model.spec),
                  "seed": a.seed, "sae_id": model.spec.slug, **row} for row in evaluate_recovery(model, store, gt)]
    write_rows(a.out, rows)
    for row in rows:
        log.info("%s %-6s %-9s %-14s %.4f", row["experiment"], row["model"], row["truth"], row["metric"], row["value"])


@command("eval-encoder", "encoder metrics of one store (ISO E.1, Table 6)", STORE, OPTIONS, TAGS, OUT)
def eval_encoder(a) -> None:
    from ..metrics.real import EvalOptions, EvalSet, evaluate_encoder
    from ..store import EmbeddingStore

    opts = EvalOptions.from_dict(a.options)
    rows = evaluate_encoder(EvalSet.read(EmbeddingStore(a.data), opts), opts)
    write_rows(a.out, rows, a.tag)
    for row in rows:
        log.info("%-24s %.4f", row["metric"], row["value"])


@command("eval-saes", "SAE, modality and HET metrics of trained SAEs on one store (ISO E.2, HET §6.2); seeds of "
         "one name also give their stability", *ZOO_SUITE)
def eval_saes(a) -> None:
    from ..metrics.real import EvalOptions, EvalSet, evaluate_zoo
    from ..store import EmbeddingStore

    opts = EvalOptions.from_dict(a.options)
    write_rows(a.out, evaluate_zoo(each_run(a), EvalSet.read(EmbeddingStore(a.data), opts), opts), a.tag)


@command("eval-bimodal", "shared (bimodal) SAEs: modality-gap removal (ISO App. I, L) or vector arithmetic on a "
         "FashionIQ store (ISO App. H)", *ZOO_SUITE,
         arg("--analysis", required=True, choices=("gap", "arithmetic")),
         arg("--train-data", required=True, type=Path, help="the SAEs' training store (means, bimodal mask)"))
def eval_bimodal(a) -> None:
    from ..metrics.real import EvalOptions, EvalSet, TrainReference
    from ..metrics.suites import evaluate_arithmetic, evaluate_gap
    from ..store import EmbeddingStore

    opts, store, train = EvalOptions.from_dict(a.options), EmbeddingStore(a.data), EmbeddingStore(a.train_data)
    if a.analysis == "gap":
        data = EvalSet.read(store, opts)
        suite = lambda run, ref, seed: evaluate_gap(run, data, ref, opts, seed)  # noqa: E731
    else:
        suite = lambda run, ref, seed: evaluate_arithmetic(run, store, ref, opts)  # noqa: E731
    write_rows(a.out, [{"sae": name, "seed": seed, **row} for name, seed, run, _ in each_run(a)
                       for row in suite(run, TrainReference.read(run, train, opts), seed)], a.tag)


@command("eval-steering", "concept steering on a COCO-format store (HET Fig. 7)", *ZOO_SUITE,
         arg("--dataset", required=True, type=json_object, help="the store's dataset (JSON: format, root, options)"),
         arg("--concepts", required=True, nargs="+", help="COCO instance files under the dataset root"))
def eval_steering(a) -> None:
    from ..embed.readers import read_coco_concepts, read_dataset
    from ..metrics.real import EvalOptions, alignment_methods
    from ..metrics.suites import ConceptSet, evaluate_steering
    from ..store import EmbeddingStore

    opts, store = EvalOptions.from_dict(a.options), EmbeddingStore(a.data)
    pairs = read_dataset(a.dataset["format"], a.dataset["root"], **a.dataset.get("options", {})).pairs
    captions = dict(zip(pairs["text_id"], (texts[0] for texts in pairs["texts"])))
    concepts = ConceptSet(store, *read_coco_concepts(a.dataset["root"], a.concepts), captions, opts)
    write_rows(a.out, [{"sae": name, "seed": seed, "method": method, **row} for name, seed, run, alignment in each_run(a)
                       for method, perm in alignment_methods(run.model, alignment).items()
                       for row in evaluate_steering(run, perm, concepts, opts, seed)], a.tag)


@command("eval-monosemanticity", "monosemanticity score of every latent (HET Fig. 8)", *ZOO_SUITE,
         arg("--external", required=True, type=Path, help="store of the same dataset by the external encoder"))
def eval_monosemanticity(a) -> None:
    from ..metrics.real import EvalOptions
    from ..metrics.suites import evaluate_monosemanticity
    from ..store import EmbeddingStore

    opts, store, external = EvalOptions.from_dict(a.options), EmbeddingStore(a.data), EmbeddingStore(a.external)
    write_rows(a.out, [{"sae": name, "seed": seed, **row} for name, seed, run, _ in each_run(a)
                       for row in evaluate_monosemanticity(run, store, external, opts)], a.tag)


@command("theory-phases", "numerical phase boundaries of HET Props. 3 and 4 at one rho",
         arg("--rho", required=True, type=float, help="cosine phi . psi, in (0, 1)"),
         arg("--out", required=True, type=Path, help="boundaries (.parquet)"))
def theory_phases(a) -> None:
    from ..theory import phase_boundaries

    rows = phase_boundaries(a.rho)
    write_rows(a.out, rows)
    for row in rows:
        log.info("%-13s %-17s lambda %.4f (closed form %.4f, %.2f%%)", row["loss"], row["boundary"],
                 row["lambda_found"], row["lambda_closed_form"], 100 * row["relative_error"])
