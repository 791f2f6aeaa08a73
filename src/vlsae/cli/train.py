"""SAE training (several SAEs per pass over a store), Hungarian alignment, and SAELens interop."""

from __future__ import annotations

from pathlib import Path

from .args import DEVICE, NON_NEGATIVE, arg, command, json_object, log, one_out_each


@command("train", "train SAEs (shared or modality-specific pairs); several share one data pass",
         arg("--data", required=True, type=Path, help="training store (folder or manifest.json)"),
         arg("--out", required=True, type=Path, action="append",
             help="run folder for weights, config and log; repeat it, one per --sae"),
         arg("--sae", type=json_object, action="append",
             help="SAESpec as JSON (architecture, latents, arrangement, params, aux); repeat to train "
                  "several SAEs in one pass over the data (default: one default spec)"),
         arg("--training", type=json_object, default={}, help="TrainConfig as JSON"),
         arg("--seed", type=NON_NEGATIVE, default=0),
         arg("--tensorboard", action="store_true", help="also log the training terms as TensorBoard events in each run folder"),
         arg("--cache-mb", type=NON_NEGATIVE, default=None,
             help="keep the decoded store in memory when it fits this many MiB (default: 1024; 0: stream every epoch)"),
         arg("--no-stack", dest="stack", action="store_false",
             help="train the SAEs one by one instead of stacking those of one architecture and shape (same weights)"),
         DEVICE)
def train(a) -> None:
    from ..sae import SAESpec
    from ..sae.train import TrainConfig, train_paired_saes
    from ..store import TRAINING_CACHE_MB, EmbeddingStore

    cfg = TrainConfig.from_dict(a.training)
    pairs = one_out_each(a.sae or [{}], a.out, "--sae")
    store = EmbeddingStore(a.data, cache_mb=TRAINING_CACHE_MB if a.cache_mb is None else a.cache_mb)
    runs = [(SAESpec.from_dict(spec, store.dim), out) for spec, out in pairs]
    train_paired_saes(runs, store, cfg, seed=a.seed, device=a.device, tensorboard=a.tensorboard, stack=a.stack)


@command("align", "Hungarian alignment of image to text latents (post-hoc for a modality-specific pair)",
         arg("--model", type=Path, action="append", default=[], help="trained run folder; repeatable (none: nothing to do)"),
         arg("--data", required=True, type=Path, help="training store the SAEs were trained on"),
         arg("--out", type=Path, action="append", default=[], help="alignment.npz, one per --model"),
         arg("--matching", choices=("signed", "absolute"), default="signed",
             help="maximise tr(C P) (HET eq. 6) or sum |C| (the HET authors' code)"))
def align(a) -> None:
    from ..align import align_paired_sae
    from ..sae import load_paired_sae
    from ..store import EmbeddingStore

    store = EmbeddingStore(a.data)
    for folder, out in one_out_each(a.model, a.out, "--model"):
        model = load_paired_sae(folder)
        if model.spec.arrangement == "shared":
            log.info("%s is shared: aligning its image codes to its text codes gives its self-match rate (HET F.2)", folder)
        alignment = align_paired_sae(model, store, matching=a.matching)
        alignment.save(out)
        log.info("%s: matched %d live latents, mean matched correlation %.3f", folder,
                 alignment.matched.sum(), float(alignment.matched_corr[alignment.matched].mean()))


@command("export", "write a trained SAE in SAELens's format (cfg.json + sae_weights.safetensors; image/ and text/ for a pair)",
         arg("--model", required=True, type=Path, help="trained run folder"),
         arg("--format", choices=("saelens",), default="saelens"),
         arg("--out", required=True, type=Path, help="folder to write"))
def export(a) -> None:
    from ..sae import load_paired_sae
    from ..sae.interop import export_saelens

    for folder in export_saelens(load_paired_sae(a.model), a.out):
        log.info("wrote %s", folder)


@command("import", "read an SAE saved by SAELens into a vlsae run folder (config.json + model.safetensors)",
         arg("--source", required=True, type=Path, help="SAELens folder, or one holding image/ and text/ SAELens folders"),
         arg("--format", choices=("saelens",), default="saelens"),
         arg("--out", required=True, type=Path, help="run folder to write"))
def import_(a) -> None:
    from ..sae.interop import import_saelens

    import_saelens(a.source).save(a.out, {"imported_from": {"format": a.format, "path": str(a.source)}})
    log.info("wrote %s", a.out)
