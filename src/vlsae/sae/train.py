"""One trainer for every architecture, arrangement and auxiliary loss.

Objective on a paired batch ``(x, y)`` (HET eq. 4, summed over modalities)::

    L = R(x, x_hat) + R(y, y_hat) + sparsity penalty (ReLU: L1, JumpReLU: L0)
        + sum_a w_a * aux_a(z_img, z_txt)                (Iso-Energy, group-sparse: losses.py)
        + auxk_coeff * AuxK                              (optional, dead latents)

with ``R`` one of :data:`RECONSTRUCTIONS` (:func:`reconstruction_loss`): ``mse`` is HET eq. 4's
``E||x - x_hat||^2``; ``fvu`` and ``element_mean`` are the HET and ISO authors' codes.

Protocol (HET E.2/E.4): AdamW, linear warmup then constant or cosine decay to 0 (or PyTorch's
one-cycle schedule, the ISO authors' code), grad-norm clipping per SAE or over the whole model,
unit-norm decoder atoms (gradient parallel to the atoms removed, ``decoder_grad: tangent``, or kept,
``full``, as ``overcomplete``'s dictionary layer in the ISO authors' toy code does; atoms renormalised
after each step), ``epochs`` passes or a fixed number of ``steps``. After every step each SAE may adapt its own
state to the batch's codes (:meth:`~vlsae.sae.base.SparseAutoencoder.after_step_`: the target-L0
controller of ReLU and JumpReLU).

Dead latents (optional, ``auxk_coeff > 0``): a latent that has not fired for ``dead_after``
training pairs is dead; AuxK (Gao et al. 2024) then asks the ``auxk_k`` dead latents that score
highest on each sample (:meth:`~vlsae.sae.base.SparseAutoencoder.aux_scores`, ReLU'd) to
reconstruct the detached residual ``e = x - x_hat``, with loss
``||e - e_hat||^2 / ||e - mean(e)||^2``. This gives dead latents a gradient without touching live ones.

Several SAEs that read the same data with the same seed train in one pass
(:func:`train_paired_saes`): each batch is read once and every model takes its step on it, with
results bit-identical to training them one by one. Data order is a pure function of
``(seed, epoch)``, random masks have their own saved generator, and checkpoints are atomic and
hold the open logging window, so a run killed at any point resumes to the same final weights and
the same ``log.csv`` as an uninterrupted one. A checkpoint records what it was made for (the SAE
spec, the training config, the seed, the store's manifest hash): one made for anything else is
ignored with a warning naming what differs, never resumed. Checkpoints load with
``torch.load(weights_only=True)``, so a planted pickle cannot run code.
"""

from __future__ import annotations

import logging
import math
import pickle
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic import atomic_path, write_frame
from ..device import resolve_device
from ..store import MANIFEST, MODALITIES, EmbeddingStore, file_digest
from ..strict import from_dict
from .base import Code, SparseAutoencoder
from .losses import build_aux_losses
from .paired import PairedSAE, SAESpec

log = logging.getLogger(__name__)
CHECKPOINT, LOG = "checkpoint.pt", "log.csv"
SCHEDULES = ("constant", "cosine", "onecycle")
RECONSTRUCTIONS = ("mse", "fvu", "element_mean")
CLIP_SCOPES = ("sae", "model")
DECODER_GRADS = ("tangent", "full")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation protocol; defaults are the synthetic protocol of HET E.2."""

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 10
    steps: int | None = None
    warmup_fraction: float = 0.0
    schedule: str = "constant"
    grad_clip: float | None = None
    grad_clip_scope: str = "sae"
    weight_decay_biases: bool = True
    reconstruction: str = "mse"
    decoder_grad: str = "tangent"
    auxk_coeff: float = 0.0
    auxk_k: int = 512
    dead_after: int = 1_000_000
    log_every: int = 50
    checkpoint_every: int = 500

    def __post_init__(self):
        for key, allowed in (("schedule", SCHEDULES), ("reconstruction", RECONSTRUCTIONS), ("grad_clip_scope", CLIP_SCOPES),
                             ("decoder_grad", DECODER_GRADS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"training.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for key in ("epochs", "batch_size", "log_every", "checkpoint_every", "auxk_k", "dead_after"):
            if getattr(self, key) < 1:
                raise ValueError(f"training.{key} must be >= 1, got {getattr(self, key)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"training.steps must be >= 1 or null, got {self.steps}")
        if self.lr <= 0 or self.weight_decay < 0 or self.auxk_coeff < 0 or not 0 <= self.warmup_fraction <= 1:
            raise ValueError(f"training needs lr > 0, weight_decay >= 0, auxk_coeff >= 0, warmup_fraction in [0, 1]; "
                             f"got {self.lr}, {self.weight_decay}, {self.auxk_coeff}, {self.warmup_fraction}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"training.grad_clip must be > 0 or null, got {self.grad_clip}")
        object.__setattr__(self, "betas", tuple(self.betas))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return from_dict(cls, data, "training")

    def total_steps(self, steps_per_epoch: int) -> int:
        """``steps`` when set (cycling through epochs), else ``epochs`` full passes."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch

    def scheduler(self, opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        """``onecycle``: PyTorch's ``OneCycleLR`` with its defaults (30% cosine warm-up from lr/25, then
        down to lr/25e4, with AdamW's beta1 cycled between 0.95 and 0.85), as the ISO authors' code
        uses it; otherwise :meth:`lr_factor`."""
        if self.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.lr_factor(s, total))

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of ``lr`` at ``step``: linear warmup, then constant or cosine to 0."""
        warmup = int(self.warmup_fraction * total)
        if step < warmup:
            return (step + 1) / warmup
        if self.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """One modality's reconstruction term over a batch of ``B x d`` inputs.

    * ``mse``: ``E ||x - x_hat||^2`` (HET eq. 4);
    * ``fvu``: ``sum ||x - x_hat||^2 / sum ||x - mean_batch(x)||^2``, the fraction of the batch's variance
      left unexplained (the HET authors' code);
    * ``element_mean``: ``E ||x - x_hat||^2 / (2 d)``; the image and text terms then add up to the mean
      squared error per element of the concatenated batch ``[x; y]`` (the ISO authors' code).
    """
    sse = (x - x_hat).pow(2).sum(-1)
    if kind == "mse":
        return sse.mean()
    if kind == "fvu":
        return sse.sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    if kind == "element_mean":
        return sse.mean() / (2 * x.shape[-1])
    raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")


def auxk_loss(sae: SparseAutoencoder, x: torch.Tensor, x_hat: torch.Tensor, dead: torch.Tensor, k: int) -> torch.Tensor:
    """AuxK: ``||e - e_hat||^2 / ||e - mean(e)||^2`` with ``e_hat`` decoded from the top-k dead latents."""
    residual = (x - x_hat).detach().float()
    latents = dead.nonzero().squeeze(1)
    values, picks = sae.aux_scores(x, residual, latents).topk(min(k, latents.numel()), dim=-1)
    e_hat = F.embedding_bag(latents[picks], sae.W_dec, per_sample_weights=F.relu(values).to(sae.W_dec.dtype),
                            mode="sum")
    return (residual - e_hat).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum().clamp_min(1e-12)


class _Run:
    """One model in training: optimiser, schedule, aux losses, mask RNG, dead-latent clocks, log."""

    def __init__(self, spec: SAESpec, out_dir: Path, d: int, cfg: TrainConfig, seed: int, total: int, dev,
                 store_id: str = "", tensorboard: bool = False):
        self.spec, self.out_dir, self.cfg, self.total = spec, Path(out_dir), cfg, total
        self.identity = {"sae": asdict(spec), "training": asdict(cfg), "seed": seed, "d": d, "store": store_id}
        torch.manual_seed(seed)
        self.model = PairedSAE(spec, d).to(dev).train()
        self.opt = torch.optim.AdamW(_param_groups(self.model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                     weight_decay=cfg.weight_decay)
        self.sched = cfg.scheduler(self.opt, total)
        self.aux = build_aux_losses(spec.aux)
        self.drop_p = 1.0 - math.prod(1.0 - loss.mask_p for loss in self.aux.values())
        self.rng = torch.Generator(device=dev).manual_seed(seed)
        self.idle = {name: torch.zeros(sae.m, dtype=torch.long, device=dev) for name, sae in self.model.saes.items()}
        self.step, self.rows, self.window = 0, [], _Window(self.model)
        self.board = _board(self.out_dir) if tensorboard else None
        ckpt = self.out_dir / CHECKPOINT
        if ckpt.exists():
            try:
                state = torch.load(ckpt, map_location=dev, weights_only=True)
            except pickle.UnpicklingError as e:
                raise ValueError(f"{ckpt} is not a vlsae checkpoint (it holds objects that would run code when "
                                 f"loaded); it was not loaded - delete it to start over ({str(e).splitlines()[0]})") from e
            self._resume(state, ckpt)

    def _resume(self, state: dict, path: Path) -> None:
        """Continue from ``state`` if it was made for this run; otherwise warn and start fresh."""
        made_for = state.get("identity", {})
        differs = sorted(k for k in self.identity.keys() | made_for.keys() if self.identity.get(k) != made_for.get(k))
        if differs:
            log.warning("%s was made for a different %s; starting this run from scratch", path, ", ".join(differs))
            return
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.rng.set_state(state["rng"].cpu())
        self.idle = state["idle"]
        self.step, self.rows = state["step"], state["log"]
        self.window.load(state["window"])

    def train_step(self, inputs: dict[str, torch.Tensor], epoch: int, autocast) -> None:
        model, cfg = self.model, self.cfg
        keep = None
        if self.drop_p > 0:
            shape = (inputs["image"].shape[0], model.side("image").m)
            keep = (torch.rand(shape, generator=self.rng, device=inputs["image"].device) >= self.drop_p).float()
        with autocast:
            outs = {s: model.side(s)(inputs[s], keep) for s in MODALITIES}
            terms = {f"rec_{s}": reconstruction_loss(inputs[s], outs[s][0].float(), cfg.reconstruction) for s in MODALITIES}
            for s in MODALITIES:
                if outs[s][1].penalty is not None:
                    terms[f"sparsity_{s}"] = outs[s][1].penalty
            for name, loss in self.aux.items():
                terms[name] = loss.weight * loss(outs["image"][1], outs["text"][1])
            if cfg.auxk_coeff > 0:
                for s in MODALITIES:
                    dead = self.idle[model.component_of(s)] >= cfg.dead_after
                    if dead.any():
                        terms[f"auxk_{s}"] = cfg.auxk_coeff * auxk_loss(model.side(s), inputs[s], outs[s][0], dead,
                                                                        cfg.auxk_k)
            loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        for sae in model.components():
            if cfg.decoder_grad == "tangent":
                sae.remove_parallel_grad_()
            if cfg.grad_clip is not None and cfg.grad_clip_scope == "sae":
                torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
        if cfg.grad_clip is not None and cfg.grad_clip_scope == "model":
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        codes = {s: outs[s][1] for s in MODALITIES}
        for name, sae in model.saes.items():
            sae.normalize_decoder_()
            sae.after_step_([codes[s] for s in MODALITIES if model.component_of(s) == name])
        self.step += 1
        self._tick_idle(codes, inputs["image"].shape[0])
        self.window.update(codes, loss, terms)
        if self.step % cfg.log_every == 0 or self.step == self.total:
            self.rows.append({"step": self.step, "epoch": epoch, "lr": self.sched.get_last_lr()[0], **self.window.flush()})
            if self.board is not None:
                for key, value in self.rows[-1].items():
                    if key != "step":
                        self.board.add_scalar(key, value, self.step)
        if self.step % cfg.checkpoint_every == 0 and self.step < self.total:
            with atomic_path(self.out_dir / CHECKPOINT) as tmp:
                torch.save({"identity": self.identity, "model": model.state_dict(), "optimizer": self.opt.state_dict(),
                            "idle": self.idle, "scheduler": self.sched.state_dict(), "rng": self.rng.get_state(),
                            "step": self.step, "log": self.rows, "window": self.window.state()}, tmp)

    @torch.no_grad()
    def _tick_idle(self, codes: dict[str, Code], batch: int) -> None:
        for name in self.idle:
            self.idle[name] += batch
        for s in MODALITIES:
            self.idle[self.model.component_of(s)][codes[s].fired()] = 0

    def finish(self, extra: dict) -> PairedSAE:
        if self.board is not None:
            self.board.close()
        self.model = self.model.cpu().eval()
        self.model.save(self.out_dir, {"training": asdict(self.cfg), **extra})
        write_frame(self.out_dir / LOG, pd.DataFrame(self.rows))
        return self.model


def _board(out_dir: Path):
    """A TensorBoard writer of ``log.csv``'s terms into ``out_dir/tensorboard`` (``pip install tensorboard``)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ValueError("TensorBoard logging is on but the tensorboard package is not installed: "
                         "pip install -e '.[tensorboard]' (or turn `tensorboard` off)") from e
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def _param_groups(model: PairedSAE, cfg: TrainConfig) -> list[dict]:
    """One group, or (``weight_decay_biases: false``, as Hugging Face's Trainer does) the biases
    ``b_enc``, ``b_dec`` in a second group without weight decay."""
    params = list(model.named_parameters())
    if cfg.weight_decay_biases:
        return [{"params": [p for _, p in params]}]
    is_bias = [name.rsplit(".", 1)[-1].startswith("b_") for name, _ in params]
    return [{"params": [p for (_, p), b in zip(params, is_bias) if not b]},
            {"params": [p for (_, p), b in zip(params, is_bias) if b], "weight_decay": 0.0}]


def train_paired_saes(
    runs: list[tuple[SAESpec, str | Path]],
    store: EmbeddingStore,
    cfg: TrainConfig,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    tensorboard: bool = False,
) -> list[PairedSAE]:
    """Train every ``(spec, out_dir)`` of ``runs`` on ``store`` in one pass over the data.

    Each run writes ``model.safetensors``, ``config.json`` and ``log.csv`` to its folder and resumes
    from its own ``checkpoint.pt`` when present; with ``tensorboard``, every ``log.csv`` row also goes to
    TensorBoard event files in ``out_dir/tensorboard`` (a resumed run appends the steps after its checkpoint
    again). Returns the trained models (on CPU, eval mode).
    """
    dev = resolve_device(device)
    steps_per_epoch = store.n_batches(cfg.batch_size, drop_last=True)
    if steps_per_epoch == 0:
        raise ValueError(f"{store.root} has {store.n_pairs} pairs, fewer than batch_size={cfg.batch_size}")
    total = cfg.total_steps(steps_per_epoch)
    store_id = file_digest(store.root / MANIFEST)
    trainees = [_Run(spec, out_dir, store.dim, cfg, seed, total, dev, store_id, tensorboard) for spec, out_dir in runs]
    start = min(t.step for t in trainees)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    names = ", ".join(t.spec.slug for t in trainees)
    bar = tqdm(total=total, initial=start, desc=f"train {names}", unit="step", file=sys.stderr,
               disable=not progress, mininterval=2.0)
    for epoch in range(start // steps_per_epoch, math.ceil(total / steps_per_epoch)):
        batches = store.iter_batches(cfg.batch_size, shuffle=True, seed=seed * 1_000_003 + epoch, drop_last=True)
        for i, batch in enumerate(batches):
            step = epoch * steps_per_epoch + i
            if step >= total:
                break
            behind = [t for t in trainees if t.step == step]
            if not behind:
                continue
            inputs = {"image": torch.from_numpy(batch.image).to(dev), "text": torch.from_numpy(batch.text).to(dev)}
            for t in behind:
                t.train_step(inputs, epoch, autocast)
            bar.update(1)
            if progress and step % cfg.log_every == 0 and trainees[0].rows:
                bar.set_postfix(loss=f"{trainees[0].rows[-1]['loss']:.4g}", l0=f"{trainees[0].rows[-1]['l0_image']:.1f}")
    bar.close()
    extra = {"seed": seed, "data": str(store.root)}
    models = [t.finish(extra) for t in trainees]
    for t in trainees:
        (t.out_dir / CHECKPOINT).unlink(missing_ok=True)
    return models


def train_paired_sae(spec: SAESpec, store: EmbeddingStore, cfg: TrainConfig, out_dir: str | Path, seed: int = 0,
                     device: str | None = None, progress: bool = True) -> PairedSAE:
    """Train one SAE (or one modality-specific pair); see :func:`train_paired_saes`."""
    return train_paired_saes([(spec, out_dir)], store, cfg, seed, device, progress)[0]


class _Window:
    """Running means of the loss terms and L0, and the dead fraction, over one log interval."""

    def __init__(self, model: PairedSAE):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.n, self.sums = 0, {}
        self.fired = {name: None for name in self.model.saes}

    def state(self) -> dict:
        """The open interval, for a checkpoint: a resumed run logs the same rows as an uninterrupted one."""
        return {"n": self.n, "sums": dict(self.sums), "fired": dict(self.fired)}

    def load(self, state: dict) -> None:
        self.n, self.sums, self.fired = state["n"], dict(state["sums"]), dict(state["fired"])

    def update(self, codes: dict[str, Code], loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.n += 1
        vals = {"loss": loss, **terms, **{f"l0_{s}": c.l0() for s, c in codes.items()}}
        for k, v in vals.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        for s, c in codes.items():
            name = self.model.component_of(s)
            hit = c.fired()
            self.fired[name] = hit if self.fired[name] is None else self.fired[name] | hit

    def flush(self) -> dict:
        out = {k: v / self.n for k, v in self.sums.items()}
        out.update({f"dead_{name}": 1.0 - float(h.float().mean()) for name, h in self.fired.items()})
        self.reset()
        return out
