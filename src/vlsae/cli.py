"""Command-line interface: one subcommand per workflow stage (each Snakemake rule calls one).

Structured arguments (DGP parameters, SAE spec, training protocol) are passed as JSON objects
and validated by the dataclass they build, so an unknown key fails with its name.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("vlsae")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _count(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


POSITIVE, NON_NEGATIVE = _count(1), _count(0)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _read_tidy(paths):
    """The tidy Parquet files of a report, as one frame."""
    import pandas as pd

    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def cmd_synth_het(a: argparse.Namespace) -> None:
    from .strict import from_dict
    from .synth.het import HetDGP, write_het_dataset

    dgp = from_dict(HetDGP, a.dgp, "DGP")
    write_het_dataset(dgp, a.out, a.n_train, a.n_eval, a.seed, a.shard_pairs,
                      progress=lambda split, done, total: log.info("%s: %d/%d pairs", split, done, total))


def cmd_synth_iso(a: argparse.Namespace) -> None:
    from .strict import from_dict
    from .synth.iso import IsoDGP, write_iso_dataset

    dgp = from_dict(IsoDGP, a.dgp, "DGP")
    write_iso_dataset(dgp, a.out, a.n_train, a.n_eval, a.seed, a.shard_pairs,
                      progress=lambda split, done, total: log.info("%s: %d/%d pairs", split, done, total))


def cmd_toy_vlm(a: argparse.Namespace) -> None:
    from .embed.toy import save_tiny_clip, save_tiny_siglip, toy_corpus, write_toy

    if a.dataset:
        coco = dict(captions_per_image=a.captions_per_image, corrupt=a.corrupt, empty=a.empty) if a.format == "coco" else {}
        write_toy(a.format, a.dataset, a.n_images, a.seed, **coco)
    if a.clip:
        save_tiny_clip(a.clip, seed=a.seed)
    if a.siglip:
        save_tiny_siglip(a.siglip, toy_corpus(seed=a.seed), seed=a.seed)


def cmd_embed(a: argparse.Namespace) -> None:
    from .device import resolve_device
    from .embed.encoders import ModelSpec, load_encoder
    from .embed.extract import extract
    from .embed.readers import read_dataset
    from .strict import from_dict

    spec = from_dict(ModelSpec, a.model, "model")
    dataset = {"format": a.dataset.get("format"), "root": a.dataset.get("root"), "options": a.dataset.get("options", {})}
    unknown = sorted(set(a.dataset) - set(dataset))
    if unknown or not dataset["format"] or not dataset["root"]:
        raise ValueError(f"--dataset needs format and root (and optional options); unknown keys: {unknown}")
    device = resolve_device(a.device)
    precision = a.precision if a.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    source = read_dataset(dataset["format"], dataset["root"], **dataset["options"])
    log.info("%s: %d pairs from %s; model %s on %s (%s)", dataset["format"], len(source), dataset["root"], spec.source,
             device, precision)
    encoder = load_encoder(spec, device, precision)
    manifest = extract(encoder, spec, source, a.out, dataset, shard_pairs=a.shard_pairs, batch_size=a.batch_size,
                       workers=a.workers, fast_decode=a.fast_decode)
    log.info("wrote %d pairs (%d skipped) to %s", manifest["n_pairs"], manifest["metadata"]["n_skipped_pairs"], a.out)


def cmd_download(a: argparse.Namespace) -> None:
    from .embed.download import fetch, free_gb

    log.info("fetching %s (%.0f GB free in %s)", a.url, free_gb(a.out.parent), a.out.parent)
    fetch(a.url, a.out, a.md5)


def cmd_unpack(a: argparse.Namespace) -> None:
    from .embed.download import unpack

    unpack(a.archive, a.into, a.marker)


def cmd_verify_store(a: argparse.Namespace) -> None:
    from .atomic import write_json
    from .store import EmbeddingStore

    summary = EmbeddingStore(a.data).verify(progress=lambda done, total: log.info("%d/%d shards verified", done, total))
    log.info("%s: %d pairs in %d shards, all %d hashes match", summary["store"], summary["n_pairs"], summary["shards"],
             summary["hashed"])
    if a.out:
        write_json(a.out, summary)


def _one_out_each(items: list, outs: list, flag: str) -> list[tuple]:
    """``(item, out)`` pairs of repeated ``flag`` and ``--out`` options, which must come in equal numbers
    and with distinct ``--out`` (two outputs in one place would overwrite each other)."""
    if len(items) != len(outs):
        raise ValueError(f"give one --out per {flag}: got {len(items)} {flag} and {len(outs)} --out")
    twice = sorted({str(o) for o in outs if outs.count(o) > 1})
    if twice:
        raise ValueError(f"--out given twice: {twice}")
    return list(zip(items, outs))


def cmd_train(a: argparse.Namespace) -> None:
    from .sae import SAESpec
    from .sae.train import TrainConfig, train_paired_saes
    from .store import EmbeddingStore

    cfg = TrainConfig.from_dict(a.training)
    pairs = _one_out_each(a.sae or [{}], a.out, "--sae")
    store = EmbeddingStore(a.data)
    runs = [(SAESpec.from_dict(spec, store.dim), out) for spec, out in pairs]
    train_paired_saes(runs, store, cfg, seed=a.seed, device=a.device)


def cmd_align(a: argparse.Namespace) -> None:
    from .align import align_paired_sae
    from .sae import load_paired_sae
    from .store import EmbeddingStore

    store = EmbeddingStore(a.data)
    for folder, out in _one_out_each(a.model, a.out, "--model"):
        model = load_paired_sae(folder)
        if model.spec.arrangement == "shared":
            log.info("%s is shared: aligning its image codes to its text codes gives its self-match rate (HET F.2)", folder)
        alignment = align_paired_sae(model, store, matching=a.matching)
        alignment.save(out)
        log.info("%s: matched %d live latents, mean matched correlation %.3f", folder,
                 alignment.matched.sum(), float(alignment.matched_corr[alignment.matched].mean()))


def cmd_eval_het(a: argparse.Namespace) -> None:
    """Each ``--model`` to its ``--out``; a modality-specific pair whose folder holds ``alignment.npz``
    is also evaluated after post-hoc alignment."""
    import pandas as pd

    from .align import Alignment
    from .atomic import write_frame
    from .metrics.synthetic import HetMetrics, evaluate_het
    from .sae import load_paired_sae
    from .store import EmbeddingStore
    from .strict import from_dict
    from .synth.het import GroundTruth

    gt, store, metrics = GroundTruth.load(a.ground_truth), EmbeddingStore(a.data), from_dict(HetMetrics, a.metrics, "metrics")
    for folder, out in _one_out_each(a.model, a.out, "--model"):
        model, saved = load_paired_sae(folder), Path(folder) / "alignment.npz"
        spec = model.spec
        base = " + ".join(["shared" if spec.arrangement == "shared" else "modality-specific", *sorted(spec.aux)])
        results = {base: evaluate_het(model, gt, store, metrics=metrics)}
        if spec.arrangement == "specific" and saved.exists():
            results[f"{base} + post-hoc"] = evaluate_het(model, gt, store, Alignment.load(saved).perm, metrics=metrics)
        aux_weights = json.dumps({name: options["weight"] for name, options in sorted(spec.aux.items())})
        rows = [{"method": method, "alpha": gt.alpha, "seed": a.seed, "sae_id": spec.slug, "aux_weights": aux_weights,
                 "metric": k, "value": v}
                for method, metrics in results.items() for k, v in metrics.items()]
        write_frame(out, pd.DataFrame(rows))
        for row in rows:
            log.info("%s: %-32s %-24s %.4f", folder, row["method"], row["metric"], row["value"])


def cmd_eval_encoder(a: argparse.Namespace) -> None:
    import pandas as pd

    from .atomic import write_frame
    from .metrics.real import EvalOptions, EvalSet, evaluate_encoder
    from .store import EmbeddingStore

    opts = EvalOptions.from_dict(a.options)
    rows = [{**dict(a.tag), **row} for row in evaluate_encoder(EvalSet.read(EmbeddingStore(a.data), opts), opts)]
    write_frame(a.out, pd.DataFrame(rows))
    for row in rows:
        log.info("%-24s %.4f", row["metric"], row["value"])


def cmd_eval_saes(a: argparse.Namespace) -> None:
    import numpy as np

    from .metrics.real import EvalOptions, EvalSet, evaluate_sae
    from .metrics.sae import stability
    from .store import EmbeddingStore

    opts = EvalOptions.from_dict(a.options)
    data = EvalSet.read(EmbeddingStore(a.data), opts)
    rows, dictionaries = [], {}  # name -> (spec, signed codes, per seed: one dictionary per component)
    for name, seed, run, alignment in _each_run(a):
        model = run.model
        rows += [{"sae": name, "seed": seed, "spec": model.spec.slug, **row}
                 for row in evaluate_sae(model, data, alignment, opts, run.device)]
        components = model.components()
        dictionaries.setdefault(name, (model.spec, components[0].signed_codes, []))[2].append(
            [c.W_dec.detach().float().cpu().numpy() for c in components])
    for name, (spec, signed, seeds) in dictionaries.items():
        if len(seeds) > 1:  # mean over components of the stability across seeds
            value = float(np.mean([stability(list(per_component), signed) for per_component in zip(*seeds)]))
            rows.append({"sae": name, "seed": -1, "spec": spec.slug, "metric": "stability", "value": value,
                         "method": "", "component": "all"})
    _write_rows(a, rows)


def _each_run(a: argparse.Namespace):
    """``(name, seed, SAERun, alignment or None)`` of every ``--run NAME SEED FOLDER``."""
    from .align import Alignment
    from .device import resolve_device
    from .metrics.real import SAERun
    from .sae import load_paired_sae

    device = resolve_device(a.device)
    for name, seed, folder in a.run:
        model, saved = load_paired_sae(folder), Path(folder) / "alignment.npz"
        log.info("%s seed %s: %s", name, seed, model.spec.slug)
        yield name, int(seed), SAERun(model, device), Alignment.load(saved) if saved.exists() else None


def _write_rows(a: argparse.Namespace, rows: list[dict]) -> None:
    import pandas as pd

    from .atomic import write_frame

    write_frame(a.out, pd.DataFrame([{**dict(a.tag), **row} for row in rows]))


def _eval_with_reference(a: argparse.Namespace, evaluate) -> None:
    """Rows of ``evaluate(run, opts, reference, seed)`` per run, the reference read from ``--train-data``."""
    from .metrics.real import EvalOptions, TrainReference
    from .store import EmbeddingStore

    opts, train = EvalOptions.from_dict(a.options), EmbeddingStore(a.train_data)
    _write_rows(a, [{"sae": name, "seed": seed, **row} for name, seed, run, _ in _each_run(a)
                    for row in evaluate(run, opts, TrainReference.read(run, train, opts), seed)])


def cmd_eval_gap(a: argparse.Namespace) -> None:
    from .metrics.real import EvalOptions, EvalSet
    from .metrics.suites import evaluate_gap
    from .store import EmbeddingStore

    data = EvalSet.read(EmbeddingStore(a.data), EvalOptions.from_dict(a.options))
    _eval_with_reference(a, lambda run, opts, ref, seed: evaluate_gap(run, data, ref, opts, seed))


def cmd_eval_arithmetic(a: argparse.Namespace) -> None:
    from .metrics.suites import evaluate_arithmetic
    from .store import EmbeddingStore

    store = EmbeddingStore(a.data)
    _eval_with_reference(a, lambda run, opts, ref, seed: evaluate_arithmetic(run, store, ref, opts))


def cmd_eval_steering(a: argparse.Namespace) -> None:
    from .embed.readers import read_coco_concepts, read_dataset
    from .metrics.real import EvalOptions, alignment_methods
    from .metrics.suites import ConceptSet, evaluate_steering
    from .store import EmbeddingStore

    opts, store = EvalOptions.from_dict(a.options), EmbeddingStore(a.data)
    pairs = read_dataset(a.dataset["format"], a.dataset["root"], **a.dataset.get("options", {})).pairs
    captions = dict(zip(pairs["text_id"], (texts[0] for texts in pairs["texts"])))
    concepts = ConceptSet(store, *read_coco_concepts(a.dataset["root"], a.concepts), captions, opts)
    rows = []
    for name, seed, run, alignment in _each_run(a):
        for method, perm in alignment_methods(run.model, alignment).items():
            rows += [{"sae": name, "seed": seed, "method": method, **row}
                     for row in evaluate_steering(run, perm, concepts, opts, seed)]
    _write_rows(a, rows)


def cmd_eval_monosemanticity(a: argparse.Namespace) -> None:
    from .metrics.real import EvalOptions
    from .metrics.suites import evaluate_monosemanticity
    from .store import EmbeddingStore

    opts, store, external = EvalOptions.from_dict(a.options), EmbeddingStore(a.data), EmbeddingStore(a.external)
    _write_rows(a, [{"sae": name, "seed": seed, **row} for name, seed, run, _ in _each_run(a)
                    for row in evaluate_monosemanticity(run, store, external, opts)])


def cmd_eval_iso(a: argparse.Namespace) -> None:
    import pandas as pd

    from .atomic import write_frame
    from .metrics.dictionary import evaluate_recovery
    from .report.iso_toy import model_label
    from .sae import load_paired_sae
    from .store import EmbeddingStore
    from .synth.iso import IsoGroundTruth

    gt, store, rows = IsoGroundTruth.load(a.ground_truth), EmbeddingStore(a.data), []
    for path in a.model:
        model = load_paired_sae(path)
        rows += [{"experiment": a.experiment, "tau1": gt.dgp.tau1, "scored_truth": a.truth, "model": model_label(model.spec),
                  "seed": a.seed, "sae_id": model.spec.slug, **row} for row in evaluate_recovery(model, store, gt)]
    write_frame(a.out, pd.DataFrame(rows))
    for row in rows:
        log.info("%s %-6s %-9s %-14s %.4f", row["experiment"], row["model"], row["truth"], row["metric"], row["value"])


def cmd_report_iso_table5(a: argparse.Namespace) -> None:
    from .report.iso_toy import table5, write_table5

    write_table5(table5(_read_tidy(a.metrics)), a.table, a.markdown)


def cmd_report_claims(a: argparse.Namespace) -> None:
    import pandas as pd
    import yaml

    from .report.claims import load_claims, scorecard, write_scorecard

    with open(a.claims) as f:
        claims = load_claims(yaml.safe_load(f))
    tables = {stem: pd.read_csv(path) for stem, path in a.table}
    card = scorecard(claims, tables, real_data=a.real_data)
    write_scorecard(card, a.csv, a.markdown, a.settings)
    log.info("%d claims: %s", len(card), ", ".join(f"{k} {v}" for k, v in card["status"].value_counts().items()))


def cmd_claims_readme(a: argparse.Namespace) -> None:
    import pandas as pd

    from .atomic import write_text
    from .report.claims import readme_block, replace_block

    cards = {Path(p).stem: pd.read_csv(p, keep_default_na=False) for p in a.scorecard}
    write_text(a.readme, replace_block(Path(a.readme).read_text(), readme_block(cards)))


def cmd_report_cosines(a: argparse.Namespace) -> None:
    from .report.iso_toy import cosine_table, pair_cosines, plot_cosines, write_cosine_table
    from .store import EmbeddingStore

    stores = {name: EmbeddingStore(path) for name, path in a.data}
    cosines = {name: pair_cosines(store, a.pairs) for name, store in stores.items()}
    titles = {name: f"toy DGP, {name} (tau1 = {store.metadata['tau1']:g}, tau2 = {store.metadata['tau2']:g})"
              if "tau1" in store.metadata else name for name, store in stores.items()}
    write_cosine_table(cosine_table(cosines), a.table, a.markdown, a.heading)
    plot_cosines(cosines, titles, a.pdf, a.png)


REAL_TABLES = {  # --kind: (function of vlsae.report.real, its keyword arguments, heading)
    "iso_table6": ("table6", {}, "ISO Table 6: modality gap, recall and classification of the encoders"),
    "iso_table3": ("table3", {}, "ISO Table 3: metrics of the SAE zoo (mean ± std over seeds; per-side metrics averaged)"),
    "het_table1": ("table1", {}, "HET Table 1: retrieval and zero-shot on latent codes, per method (mean ± std over seeds)"),
    "iso_tables9_11": ("gap_table", {"kind": "iso_tables9_11"},
                       "ISO Tables 9-11: removing the modality gap (recall@1 on caption sets, zero-shot on ImageNet)"),
    "iso_table12": ("gap_table", {"kind": "iso_table12"}, "ISO Table 12: baselines A-C against bimodal-only reconstruction"),
    "iso_tables7_8": ("arithmetic_table", {}, "ISO Tables 7-8: vector arithmetic, OOD score and (r@10 + r@50) / 2"),
}


def cmd_report_table(a: argparse.Namespace) -> None:
    from .report import real

    function, kwargs, heading = REAL_TABLES[a.kind]
    real.write_table(getattr(real, function)(_read_tidy(a.metrics), **kwargs), a.table, a.markdown, heading)


def cmd_report_het_fig7(a: argparse.Namespace) -> None:
    from .report import real

    table = real.steering_table(_read_tidy(a.metrics))
    real.write_table(table, a.table, a.markdown, "HET Fig. 7: concept steering against its strength alpha "
                     "(mean over concepts, then mean ± std over seeds)")
    real.plot_steering(table, a.pdf, a.png)


def cmd_report_het_fig8(a: argparse.Namespace) -> None:
    from .report import real

    tidy = _read_tidy(a.metrics)
    curves = real.sorted_scores(tidy)
    real.write_table(real.monosemanticity_table(tidy, curves), a.table, a.markdown,
                     "HET Fig. 8: monosemanticity scores (latents: ranks scored in every seed; sorted, mean over seeds)")
    real.plot_monosemanticity(curves, a.pdf, a.png)


def cmd_report_het_fig2(a: argparse.Namespace) -> None:
    import numpy as np

    from .align import Alignment
    from .metrics.heterogeneity import direction_histogram
    from .report import real
    from .sae import load_paired_sae

    histograms = {}
    for panel, folder in a.run:
        alignment = Alignment.load(Path(folder) / "alignment.npz")
        if a.pairs == "all":
            counts = alignment.pair_counts
        else:
            model = load_paired_sae(folder)
            atoms = {side: model.side(side).W_dec.detach().float().numpy() for side in ("image", "text")}
            counts = direction_histogram(atoms["image"], atoms["text"][alignment.perm], alignment.matched_corr)
        histograms[panel] = histograms.get(panel, np.zeros_like(counts)) + counts
    pairs = "all live image-text latent pairs" if a.pairs == "all" else "Hungarian-matched latent pairs"
    real.write_table(real.directions_table(histograms), a.table, a.markdown,
                     f"HET Fig. 2: decoder cosine distance of {pairs}, by coactivation correlation")
    real.plot_directions(histograms, a.pdf, a.png, pairs)


def cmd_report_het_fig6(a: argparse.Namespace) -> None:
    from .metrics.synthetic import true_code_alignment_error
    from .report.het_fig6 import plot, wide_table, write_table
    from .strict import from_dict
    from .synth.het import HetDGP

    table = wide_table(_read_tidy(a.metrics), a.defaults)
    floor = true_code_alignment_error(from_dict(HetDGP, a.dgp, "--dgp")) if a.dgp else None
    write_table(table, a.table, a.markdown, floor, {**a.settings, "dgp": a.dgp or {}})
    plot(table, a.pdf, a.png, floor)


def cmd_report_het_fig5(a: argparse.Namespace) -> None:
    from .report.het_fig5 import plot, wide_table, write_table

    table = wide_table(_read_tidy(a.metrics))
    write_table(table, a.table, a.markdown)
    plot(table, a.pdf, a.png)


def cmd_theory_phases(a: argparse.Namespace) -> None:
    import pandas as pd

    from .atomic import write_frame
    from .theory import phase_boundaries

    rows = phase_boundaries(a.rho)
    write_frame(a.out, pd.DataFrame(rows))
    for row in rows:
        log.info("%-13s %-17s lambda %.4f (closed form %.4f, %.2f%%)", row["loss"], row["boundary"],
                 row["lambda_found"], row["lambda_closed_form"], 100 * row["relative_error"])


def cmd_report_het_theory(a: argparse.Namespace) -> None:
    from .report.het_theory import plot, write_table

    table = _read_tidy(a.boundaries)
    write_table(table, a.table, a.markdown)
    plot(table, a.pdf, a.png)


def _report_outputs(s: argparse.ArgumentParser) -> None:
    """The four artifacts of every report subcommand: table (csv + markdown) and figure (pdf + png)."""
    for name, what in (("table", "csv table"), ("markdown", "markdown summary"), ("pdf", "figure"), ("png", "figure")):
        s.add_argument(f"--{name}", required=True, help=f"{what} to write")


def build_parser() -> argparse.ArgumentParser:
    from .synth.iso import TRUTHS

    p = argparse.ArgumentParser(prog="vlsae", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=POSITIVE, default=None, help="torch CPU threads (default: torch's choice)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth-het", help="write a HET synthetic dataset (HET E.2) to the store")
    s.add_argument("--out", required=True, type=Path, help="dataset folder (train/, eval/, ground_truth.npz)")
    s.add_argument("--dgp", type=_json, default={}, help="HetDGP fields as JSON, e.g. '{\"d\": 64, \"alpha\": 0.5}'")
    s.add_argument("--n-train", type=POSITIVE, default=50_000)
    s.add_argument("--n-eval", type=POSITIVE, default=10_000)
    s.add_argument("--seed", type=NON_NEGATIVE, default=0)
    s.add_argument("--shard-pairs", type=POSITIVE, default=65_536)
    s.set_defaults(func=cmd_synth_het)

    s = sub.add_parser("synth-iso", help="write an ISO toy dataset (ISO App. C.1) to the store")
    s.add_argument("--out", required=True, type=Path, help="dataset folder (train/, eval/, ground_truth.npz)")
    s.add_argument("--dgp", type=_json, default={}, help="IsoDGP fields as JSON, e.g. '{\"tau1\": 0.999, \"tau2\": 0.4}'")
    s.add_argument("--n-train", type=POSITIVE, default=50_000)
    s.add_argument("--n-eval", type=POSITIVE, default=5_000)
    s.add_argument("--seed", type=NON_NEGATIVE, default=0)
    s.add_argument("--shard-pairs", type=POSITIVE, default=65_536)
    s.set_defaults(func=cmd_synth_iso)

    s = sub.add_parser("toy-vlm", help="write the toy image-caption dataset and tiny random-weight CLIP/SigLIP folders")
    s.add_argument("--dataset", type=Path, help="toy dataset folder to write")
    s.add_argument("--format", default="coco", choices=["coco", "imagenet", "fashioniq"], help="layout of the toy dataset")
    s.add_argument("--n-images", type=POSITIVE, default=256)
    s.add_argument("--captions-per-image", type=POSITIVE, default=2, help="coco only")
    s.add_argument("--corrupt", type=NON_NEGATIVE, default=0, help="coco only: how many images to write as truncated JPEGs")
    s.add_argument("--empty", type=NON_NEGATIVE, default=0, help="coco only: how many captions to leave blank")
    s.add_argument("--clip", type=Path, help="folder for a tiny CLIPModel + processor")
    s.add_argument("--siglip", type=Path, help="folder for a tiny SiglipModel + processor")
    s.add_argument("--seed", type=NON_NEGATIVE, default=0)
    s.set_defaults(func=cmd_toy_vlm)

    s = sub.add_parser("embed", help="extract paired VLM embeddings into the store (resumable, shard by shard)")
    s.add_argument("--model", required=True, type=_json,
                   help="ModelSpec as JSON: name, source (Hub id, folder or open_clip name), backend, pretrained")
    s.add_argument("--dataset", required=True, type=_json,
                   help="JSON {format: coco|imagenet|img2dataset|fashioniq, root: FOLDER, options: {...}}")
    s.add_argument("--out", required=True, type=Path, help="store folder")
    s.add_argument("--shard-pairs", type=POSITIVE, default=65_536)
    s.add_argument("--batch-size", type=POSITIVE, default=256)
    s.add_argument("--workers", type=NON_NEGATIVE, default=4, help="DataLoader workers that decode and preprocess images")
    s.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="autocast dtype (auto: bf16 on cuda, fp32 on cpu)")
    s.add_argument("--fast-decode", action="store_true",
                   help="decode JPEGs at reduced DCT scale, never below the model's input size (faster, slightly different pixels)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("download", help="fetch an archive with an MD5 check, resuming a partial download")
    s.add_argument("--url", required=True)
    s.add_argument("--md5", default=None, help="expected MD5 (without it, the computed one is logged)")
    s.add_argument("--out", required=True, type=Path)
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("unpack", help="extract a zip or tar archive, then write a marker file")
    s.add_argument("--archive", required=True, type=Path)
    s.add_argument("--into", required=True, type=Path)
    s.add_argument("--marker", required=True, type=Path)
    s.set_defaults(func=cmd_unpack)

    s = sub.add_parser("verify-store", help="check a store against its manifest: counts, id ranges, sizes, SHA-256 of every shard")
    s.add_argument("--data", required=True, type=Path, help="store folder (or its manifest.json)")
    s.add_argument("--out", type=Path, help="write the summary here (JSON) when the store is whole")
    s.set_defaults(func=cmd_verify_store)

    s = sub.add_parser("train", help="train SAEs (shared or modality-specific pairs); several share one data pass")
    s.add_argument("--data", required=True, type=Path, help="training store (folder or manifest.json)")
    s.add_argument("--out", required=True, type=Path, action="append",
                   help="run folder for weights, config and log; repeat it, one per --sae")
    s.add_argument("--sae", type=_json, action="append",
                   help="SAESpec as JSON (architecture, latents, arrangement, params, aux); repeat to train "
                        "several SAEs in one pass over the data (default: one default spec)")
    s.add_argument("--training", type=_json, default={}, help="TrainConfig as JSON")
    s.add_argument("--seed", type=NON_NEGATIVE, default=0)
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("align", help="Hungarian alignment of image to text latents (post-hoc for a modality-specific pair)")
    s.add_argument("--model", type=Path, action="append", default=[], help="trained run folder; repeatable (none: nothing to do)")
    s.add_argument("--data", required=True, type=Path, help="training store the SAEs were trained on")
    s.add_argument("--out", type=Path, action="append", default=[], help="alignment.npz, one per --model")
    s.add_argument("--matching", choices=("signed", "absolute"), default="signed",
                   help="maximise tr(C P) (HET eq. 6) or sum |C| (the HET authors' code)")
    s.set_defaults(func=cmd_align)

    s = sub.add_parser("eval-het", help="the five synthetic metrics of HET E.3")
    s.add_argument("--model", required=True, type=Path, action="append",
                   help="trained run folder (with alignment.npz: also the aligned pair); repeatable")
    s.add_argument("--data", required=True, type=Path, help="evaluation store")
    s.add_argument("--ground-truth", required=True, type=Path)
    s.add_argument("--metrics", type=_json, default={},
                   help="HetMetrics as JSON: reconstruction mse|fvu, feature_recovery topk|top1 (default HET E.3)")
    s.add_argument("--seed", type=NON_NEGATIVE, default=0)
    s.add_argument("--out", required=True, type=Path, action="append", help="tidy metrics (.parquet), one per --model")
    s.set_defaults(func=cmd_eval_het)

    s = sub.add_parser("eval-encoder", help="encoder metrics of one store (ISO E.1, Table 6)")
    s.add_argument("--data", required=True, type=Path, help="embedding store")
    s.add_argument("--options", type=_json, default={}, help="evaluation options (JSON, see EvalOptions)")
    s.add_argument("--tag", type=_key_value, action="append", default=[], help="KEY=VALUE column added to every row")
    s.add_argument("--out", required=True, type=Path, help="tidy metrics (.parquet)")
    s.set_defaults(func=cmd_eval_encoder)

    def run_parser(name: str, help: str, func, run_help: str = "repeatable") -> argparse.ArgumentParser:
        """A subcommand over ``--run``s of trained SAEs on the store ``--data``, writing tidy rows."""
        s = sub.add_parser(name, help=help)
        s.add_argument("--data", required=True, type=Path, help="evaluation store")
        s.add_argument("--run", required=True, nargs=3, action="append", metavar=("NAME", "SEED", "FOLDER"),
                       help=f"a trained SAE (its folder may hold alignment.npz); {run_help}")
        s.add_argument("--options", type=_json, default={}, help="evaluation options (JSON, see EvalOptions)")
        s.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
        s.add_argument("--tag", type=_key_value, action="append", default=[], help="KEY=VALUE column added to every row")
        s.add_argument("--out", required=True, type=Path, help="tidy metrics (.parquet)")
        s.set_defaults(func=func)
        return s

    run_parser("eval-saes", "SAE, modality and HET metrics of trained SAEs on one store (ISO E.2, HET §6.2)", cmd_eval_saes,
               "repeatable, seeds of a name give stability")
    for name, help, func in (("eval-gap", "modality-gap removal with shared SAEs (ISO App. I, L)", cmd_eval_gap),
                             ("eval-arithmetic", "vector arithmetic on a FashionIQ store with shared SAEs (ISO App. H)",
                              cmd_eval_arithmetic)):
        s = run_parser(name, help, func)
        s.add_argument("--train-data", required=True, type=Path, help="the SAEs' training store (means, bimodal mask)")
    s = run_parser("eval-steering", "concept steering on a COCO-format store (HET Fig. 7)", cmd_eval_steering)
    s.add_argument("--dataset", required=True, type=_json, help="the store's dataset (JSON: format, root, options)")
    s.add_argument("--concepts", required=True, nargs="+", help="COCO instance files under the dataset root")
    s = run_parser("eval-monosemanticity", "monosemanticity score of every latent (HET Fig. 8)", cmd_eval_monosemanticity)
    s.add_argument("--external", required=True, type=Path, help="store of the same dataset by the external encoder")

    s = sub.add_parser("eval-iso", help="ISO Table 5 metrics (W, mma, R2, L0) of shared SAEs on the toy DGP")
    s.add_argument("--model", required=True, type=Path, action="append", help="trained run folder; repeatable")
    s.add_argument("--data", required=True, type=Path, help="evaluation store")
    s.add_argument("--ground-truth", required=True, type=Path)
    s.add_argument("--truth", required=True, choices=TRUTHS, help="the ground truth the experiment is scored against "
                   "(both are measured)")
    s.add_argument("--experiment", required=True, help="experiment name written to the rows (e.g. exp1)")
    s.add_argument("--seed", type=NON_NEGATIVE, default=0)
    s.add_argument("--out", required=True, type=Path, help="tidy metrics (.parquet)")
    s.set_defaults(func=cmd_eval_iso)

    s = sub.add_parser("report-iso-table5", help="ISO Table 5 (csv + markdown with the paper's values)")
    s.add_argument("metrics", nargs="+", type=Path)
    s.add_argument("--table", required=True, help="csv table to write")
    s.add_argument("--markdown", required=True, help="markdown summary to write")
    s.set_defaults(func=cmd_report_iso_table5)

    s = sub.add_parser("report-claims", help="the claims scorecard: every claim of workflow/claims.yaml on this run's tables")
    s.add_argument("--claims", required=True, type=Path, help="workflow/claims.yaml")
    s.add_argument("--table", type=_key_value, action="append", default=[],
                   help="STEM=CSV: a table this run built; repeatable (claims on missing tables are `not built`)")
    s.add_argument("--real-data", action="store_true", help="the stores hold real embeddings (else real-data claims "
                   "are `not testable here`)")
    s.add_argument("--settings", default="", help="a line naming the run's configuration, shown above the scorecard")
    s.add_argument("--csv", required=True, help="scorecard to write (.csv)")
    s.add_argument("--markdown", required=True, help="scorecard to write (.md)")
    s.set_defaults(func=cmd_report_claims)

    s = sub.add_parser("claims-readme", help="rewrite README.md's claims section from scorecards (make claims)")
    s.add_argument("scorecard", nargs="+", type=Path, help="claims.csv of each run, named by its file stem; the first "
                   "sets the rows")
    s.add_argument("--readme", default="README.md", help="file whose claims block is rewritten")
    s.set_defaults(func=cmd_claims_readme)

    s = sub.add_parser("report-cosines", help="cosine histograms of stores (ISO Fig. 9 on the toy DGP, Fig. 11 on VLMs)")
    s.add_argument("--data", required=True, type=_key_value, action="append",
                   help="NAME=STORE: a store per panel, e.g. exp1=results/.../eval; repeatable")
    s.add_argument("--pairs", type=POSITIVE, default=5000, help="pairs of each type to draw")
    s.add_argument("--heading", default="ISO Fig. 9: cosine similarities of the toy DGP", help="markdown title")
    _report_outputs(s)
    s.set_defaults(func=cmd_report_cosines)

    s = sub.add_parser("report-table", help="a real-data table (ISO Tables 3, 6, 7-8, 9-12, HET Table 1) from tidy metrics")
    s.add_argument("metrics", nargs="+", type=Path)
    s.add_argument("--kind", required=True, choices=sorted(REAL_TABLES))
    s.add_argument("--table", required=True, help="csv table to write")
    s.add_argument("--markdown", required=True, help="markdown copy to write")
    s.set_defaults(func=cmd_report_table)

    s = sub.add_parser("report-het-fig2", help="HET Fig. 2 from aligned modality-specific pairs")
    s.add_argument("--run", required=True, nargs=2, action="append", metavar=("PANEL", "FOLDER"),
                   help="a trained pair with alignment.npz; runs of one panel (e.g. seeds) are pooled")
    s.add_argument("--pairs", choices=("all", "matched"), default="all",
                   help="all live latent pairs (HET App. E.1) or only the Hungarian-matched ones (the authors' code)")
    _report_outputs(s)
    s.set_defaults(func=cmd_report_het_fig2)
    for name, help, func in (("report-het-fig7", "HET Fig. 7 from eval-steering metrics", cmd_report_het_fig7),
                             ("report-het-fig8", "HET Fig. 8 from eval-monosemanticity metrics", cmd_report_het_fig8)):
        s = sub.add_parser(name, help=help)
        s.add_argument("metrics", nargs="+", type=Path)
        _report_outputs(s)
        s.set_defaults(func=func)

    s = sub.add_parser("report-het-fig5", help="HET Fig. 5 table and figure from tidy metrics")
    s.add_argument("metrics", nargs="+", type=Path)
    _report_outputs(s)
    s.set_defaults(func=cmd_report_het_fig5)

    s = sub.add_parser("report-het-fig6", help="HET Fig. 6 table and figure from tidy metrics")
    s.add_argument("metrics", nargs="+", type=Path)
    s.add_argument("--defaults", type=_json, required=True,
                   help="default weight of each swept loss, e.g. '{\"iso_energy\": 0.03, \"group_sparse\": 0.05}'")
    s.add_argument("--dgp", type=_json, help="the HET DGP (JSON): marks the ground-truth codes' alignment error")
    s.add_argument("--settings", type=_json, default={},
                   help="training, losses, metrics and matching of the sweep (JSON), stated in the table's notes")
    _report_outputs(s)
    s.set_defaults(func=cmd_report_het_fig6)

    s = sub.add_parser("theory-phases", help="numerical phase boundaries of HET Props. 3 and 4 at one rho")
    s.add_argument("--rho", required=True, type=float, help="cosine phi . psi, in (0, 1)")
    s.add_argument("--out", required=True, type=Path, help="boundaries (.parquet)")
    s.set_defaults(func=cmd_theory_phases)

    s = sub.add_parser("report-het-theory", help="HET theory phase figure and table")
    s.add_argument("boundaries", nargs="+", type=Path)
    _report_outputs(s)
    s.set_defaults(func=cmd_report_het_theory)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"vlsae {args.command}: error: {e}") from e


if __name__ == "__main__":
    main()
