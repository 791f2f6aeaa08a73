"""One trainer for every architecture, arrangement and auxiliary loss.

Objective on a paired batch ``(x, y)`` (HET eq. 4, summed over modalities)::

    L = R(x, x_hat) + R(y, y_hat) + sparsity penalty (ReLU: L1, JumpReLU: L0)
        + sum_a w_a * aux_a(z_img, z_txt)                (Iso-Energy, group-sparse: losses.py)
        + auxk_coeff * AuxK                              (optional, dead latents)

with ``R`` one of :data:`RECONSTRUCTIONS` (:func:`reconstruction_term`): ``mse`` is HET eq. 4's
``E||x - x_hat||^2``; ``fvu`` and ``element_mean`` are the HET and ISO authors' codes.

Protocol (HET E.2/E.4): AdamW, linear warmup then constant or cosine decay to 0 (or PyTorch's
one-cycle schedule, the ISO authors' code), grad-norm clipping per SAE or over the whole model,
unit-norm decoder atoms (gradient parallel to the atoms removed, ``decoder_grad: tangent``, or kept,
``full``, as ``overcomplete``'s dictionary layer in the ISO authors' toy code does; atoms renormalised
after each step), ``epochs`` passes (each ending with the last partial batch unless ``drop_last``, the default; the ISO
authors' loader keeps it) or a fixed number of ``steps``. After every step each SAE may adapt its own
state to the batch's codes (:meth:`~vlsae.sae.base.SparseAutoencoder.after_step_`: the target-L0
controller of ReLU and JumpReLU).

Dead latents (optional, ``auxk_coeff > 0``): a latent that has not fired for ``dead_after``
training pairs is dead; AuxK (Gao et al. 2024) then asks the ``auxk_k`` dead latents that score
highest on each sample (:meth:`~vlsae.sae.base.SparseAutoencoder.aux_scores`, ReLU'd) to
reconstruct the detached residual ``e = x - x_hat``, with loss
``||e - e_hat||^2 / ||e - mean(e)||^2``. This gives dead latents a gradient without touching live ones.

Several SAEs that read the same data with the same seed train in one pass
(:func:`train_paired_saes`): each batch is read once, and the SAEs of one architecture and shape take their
step as one stacked module (:class:`_Group`, :func:`~vlsae.sae.base.stack_saes`), with results bit-identical
to training them one by one (``tests/test_stack.py``). Data order is a pure function of
``(seed, epoch)``, random masks have their own saved generator, and checkpoints are atomic and
hold the open logging window, so a run killed at any point resumes to the same final weights and
the same ``log.csv`` as an uninterrupted one. A checkpoint records what it was made for (the SAE
spec, the training config, the seed, the store's manifest hash): one made for anything else is
ignored with a warning naming what differs, never resumed. Checkpoints load with
``torch.load(weights_only=True)``, so a planted pickle cannot run code.
"""

from __future__ import annotations

import copy
import logging
import math
import pickle
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..atomic import atomic_path, write_frame
from ..device import resolve_device
from ..store import MANIFEST, MODALITIES, EmbeddingStore, file_digest
from ..strict import from_dict
from .base import Code, SparseAutoencoder, stack_saes, unstack_into
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
    drop_last: bool = True
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
    """One modality's reconstruction term over a batch of ``B x d`` inputs (per member of a stack: ``x_hat``
    ``S x B x d`` gives ``S`` terms); :func:`reconstruction_term` of the squared errors ``||x - x_hat||^2``."""
    return reconstruction_term(x, (x - x_hat).pow(2).sum(-1), kind)


def reconstruction_term(x: torch.Tensor, sse: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """One modality's reconstruction term from the per-sample squared errors ``sse = ||x - x_hat||^2`` (``B``, or
    ``S x B`` for a stack: ``S`` terms) of the ``B x d`` inputs ``x``:

    * ``mse``: ``E ||x - x_hat||^2`` (HET eq. 4);
    * ``fvu``: ``sum ||x - x_hat||^2 / sum ||x - mean_batch(x)||^2``, the fraction of the batch's variance
      left unexplained (the HET authors' code);
    * ``element_mean``: ``E ||x - x_hat||^2 / (2 d)``; the image and text terms then add up to the mean
      squared error per element of the concatenated batch ``[x; y]`` (the ISO authors' code).
    """
    if kind == "mse":
        return sse.mean(-1)
    if kind == "fvu":
        return sse.sum(-1) / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    if kind == "element_mean":
        return sse.mean(-1) / (2 * x.shape[-1])
    raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")


def auxk_loss(sae: SparseAutoencoder, x: torch.Tensor, code: Code, dead: torch.Tensor, k: int) -> torch.Tensor:
    """AuxK: ``||e - e_hat||^2 / ||e - mean(e)||^2`` with ``e = x - x_hat`` (the code decoded, no gradient) and
    ``e_hat`` decoded from the top-k dead latents."""
    with torch.no_grad():
        residual = (x - sae.decode(code)).float()
    latents = dead.nonzero().squeeze(1)
    values, picks = sae.aux_scores(x, residual, latents).topk(min(k, latents.numel()), dim=-1)
    e_hat = F.embedding_bag(latents[picks], sae.W_dec, per_sample_weights=F.relu(values).to(sae.W_dec.dtype),
                            mode="sum")
    return (residual - e_hat).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum().clamp_min(1e-12)


class _Member:
    """One model in training (an SAE or a modality-specific pair): what it was made for, its aux losses, mask RNG,
    log, and the state a checkpoint restores (its own weights, optimiser and schedule state, dead-latent clocks,
    open logging window)."""

    def __init__(self, spec: SAESpec, out_dir: Path, d: int, cfg: TrainConfig, seed: int, dev, store_id: str = "",
                 tensorboard: bool = False):
        self.spec, self.out_dir = spec, Path(out_dir)
        self.identity = {"sae": asdict(spec), "training": asdict(cfg), "seed": seed, "d": d, "store": store_id}
        torch.manual_seed(seed)
        self.model = PairedSAE(spec, d).to(dev).train()
        self.aux = build_aux_losses(spec.aux)
        self.drop_p = 1.0 - math.prod(1.0 - loss.mask_p for loss in self.aux.values())
        self.rng = torch.Generator(device=dev).manual_seed(seed)
        self.idle = {name: torch.zeros(sae.m, dtype=torch.long, device=dev) for name, sae in self.model.saes.items()}
        self.step, self.rows, self.resumed = 0, [], None
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
        self.rng.set_state(state["rng"].cpu())
        self.idle, self.step, self.rows = state["idle"], state["step"], state["log"]
        self.resumed = state

    def stack_key(self, stack: bool) -> tuple:
        """Members with equal keys train as one stack: one stackable architecture and shape, one step count, and
        masked pre-activations for all or none (a mask takes the encoder's dense path)."""
        spec = self.spec
        shape = (spec.architecture, spec.latents, spec.arrangement, spec.unit_norm_decoder, sorted(spec.params.items()),
                 self.drop_p > 0)
        return (repr(shape) if stack and self.model.side("image").stackable else id(self), self.step)

    def finish(self, config_extra: dict) -> PairedSAE:
        if self.board is not None:
            self.board.close()
        self.model = self.model.cpu().eval()
        self.model.save(self.out_dir, config_extra)
        write_frame(self.out_dir / LOG, pd.DataFrame(self.rows))
        return self.model


class _Group:
    """Members that take their steps together as one module: each component of the ``S`` members stacked into one
    SAE (:func:`~vlsae.sae.base.stack_saes`), one AdamW over the stacks, one schedule. Member ``s`` computes what it
    would alone (tested bit for bit): its own losses, gradient-norm clip, dead-latent clocks and log. A group of
    one trains its member's own module."""

    def __init__(self, members: list[_Member], cfg: TrainConfig, total: int):
        self.members, self.cfg, self.total = members, cfg, total
        self.model = members[0].model if len(members) == 1 else _stack_models([m.model for m in members])
        self.opt = torch.optim.AdamW(_param_groups(self.model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                     weight_decay=cfg.weight_decay)
        self.sched = cfg.scheduler(self.opt, total)
        if members[0].resumed is not None:
            self.opt.load_state_dict(_stack_states([m.resumed["optimizer"] for m in members]))
            self.sched.load_state_dict(members[0].resumed["scheduler"])
        self.idle = {name: torch.stack([m.idle[name] for m in members]) for name in members[0].idle}
        self.aux = _aux_plan(members)
        self.window = _Window(self.model, [list(m.aux) for m in members])
        if members[0].resumed is not None:
            self.window.load([m.resumed["window"] for m in members])

    @property
    def step(self) -> int:
        return self.members[0].step

    def _keep(self, batch: int, m: int, device) -> torch.Tensor | None:
        """The group-sparse option's shared masks, each member's from its own generator (all members of a group
        have one or none: :meth:`_Member.stack_key`)."""
        if self.members[0].drop_p == 0:
            return None
        keep = [(torch.rand((batch, m), generator=member.rng, device=device) >= member.drop_p).float()
                for member in self.members]
        return keep[0] if len(keep) == 1 else torch.stack(keep)

    def train_step(self, inputs: dict[str, torch.Tensor], epoch: int, autocast) -> None:
        model, cfg = self.model, self.cfg
        keep = self._keep(inputs["image"].shape[0], model.side("image").m, inputs["image"].device)
        with autocast:
            outs = {s: model.side(s).squared_errors(inputs[s], keep) for s in MODALITIES}
            terms = {f"rec_{s}": reconstruction_term(inputs[s], outs[s][0], cfg.reconstruction) for s in MODALITIES}
            for s in MODALITIES:
                if outs[s][1].penalty is not None:
                    terms[f"sparsity_{s}"] = outs[s][1].penalty
            for name, loss, weights in self.aux:  # each member's own Python-float weight, as a lone run multiplies it
                value = torch.stack([w * v for w, v in zip(weights, loss(outs["image"][1], outs["text"][1]).unbind())])
                terms[name] = terms[name] + value if name in terms else value
            if cfg.auxk_coeff > 0:  # groups of one (:func:`_groups`)
                for s in MODALITIES:
                    dead = self.idle[model.component_of(s)][0] >= cfg.dead_after
                    if dead.any():
                        terms[f"auxk_{s}"] = cfg.auxk_coeff * auxk_loss(model.side(s), inputs[s], outs[s][1], dead,
                                                                        cfg.auxk_k)
            terms = {name: value.reshape(-1) for name, value in terms.items()}
            loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        for sae in model.components():
            if cfg.decoder_grad == "tangent":
                sae.remove_parallel_grad_()
            if cfg.grad_clip is not None and cfg.grad_clip_scope == "sae":
                clip_grad_norm_per_member_(sae.parameters(), cfg.grad_clip, sae.stacked)
        if cfg.grad_clip is not None and cfg.grad_clip_scope == "model":
            clip_grad_norm_per_member_(model.parameters(), cfg.grad_clip, model.side("image").stacked)
        self.opt.step()
        self.sched.step()
        codes = {s: outs[s][1] for s in MODALITIES}
        for name, sae in model.saes.items():
            sae.normalize_decoder_()
            sae.after_step_([codes[s] for s in MODALITIES if model.component_of(s) == name])
        for member in self.members:
            member.step += 1
        self._tick_idle(codes, inputs["image"].shape[0])
        self.window.update(codes, loss, terms)
        if self.step % cfg.log_every == 0 or self.step == self.total:
            lr = self.sched.get_last_lr()[0]
            for member, row in zip(self.members, self.window.flush()):
                member.rows.append({"step": self.step, "epoch": epoch, "lr": lr, **row})
                if member.board is not None:
                    for key, value in member.rows[-1].items():
                        if key != "step":
                            member.board.add_scalar(key, value, self.step)
        if self.step % cfg.checkpoint_every == 0 and self.step < self.total:
            self._checkpoint()

    @torch.no_grad()
    def _tick_idle(self, codes: dict[str, Code], batch: int) -> None:
        for name in self.idle:
            self.idle[name] += batch
        for s in MODALITIES:
            self.idle[self.model.component_of(s)][codes[s].fired()] = 0

    def _checkpoint(self) -> None:
        """One checkpoint per member, in its own folder and the format of a lone run."""
        members = self.members
        weights = _split_state(self.model.state_dict(), len(members), self.model.side("image").stacked)
        optimizer = _split_states(self.opt.state_dict(), len(members), self.model.side("image").stacked)
        for s, member in enumerate(members):
            with atomic_path(member.out_dir / CHECKPOINT) as tmp:
                torch.save({"identity": member.identity, "model": weights[s], "optimizer": optimizer[s],
                            "idle": {name: idle[s] for name, idle in self.idle.items()},
                            "scheduler": self.sched.state_dict(), "rng": member.rng.get_state(), "step": member.step,
                            "log": member.rows, "window": self.window.state(s)}, tmp)

    def finish(self, extra: dict) -> list[PairedSAE]:
        if len(self.members) > 1:
            for name, stack in self.model.saes.items():
                unstack_into(stack, [m.model.saes[name] for m in self.members])
        return [member.finish({"training": asdict(self.cfg), **extra}) for member in self.members]


def _stack_models(models: list[PairedSAE]) -> PairedSAE:
    """A module of the members' components stacked (:func:`~vlsae.sae.base.stack_saes`), arranged like member 0."""
    stacked = copy.copy(models[0])
    stacked._modules = {"saes": nn.ModuleDict({name: stack_saes([m.saes[name] for m in models]) for name in models[0].saes})}
    return stacked


def _split_state(state: dict, members: int, stacked: bool) -> list[dict]:
    """Each member's slice of a stacked state (tensors with the member axis first; others shared)."""
    if not stacked:
        return [state]
    return [{k: v[s].clone() if torch.is_tensor(v) and v.dim() > 0 else v for k, v in state.items()} for s in range(members)]


def _split_states(optimizer: dict, members: int, stacked: bool) -> list[dict]:
    """Each member's optimiser state of an optimiser over stacked parameters (``step`` is shared)."""
    if not stacked:
        return [optimizer]
    return [{"state": {i: _split_state(v, members, True)[s] for i, v in optimizer["state"].items()},
             "param_groups": optimizer["param_groups"]} for s in range(members)]


def _stack_states(optimizers: list[dict]) -> dict:
    """The optimiser state over stacked parameters from the members' own (inverse of :func:`_split_states`)."""
    if len(optimizers) == 1:
        return optimizers[0]
    first = optimizers[0]
    state = {i: {k: torch.stack([o["state"][i][k] for o in optimizers]) if torch.is_tensor(v) and v.dim() > 0 else v
                 for k, v in entry.items()} for i, entry in first["state"].items()}
    return {"state": state, "param_groups": first["param_groups"]}


def _aux_plan(members: list[_Member]) -> list[tuple[str, object, list[float]]]:
    """``(name, loss, weights)`` per distinct auxiliary loss of the members (options equal but the weight), with each
    member's weight (0 where it has another or none)."""
    plan: dict[tuple, list] = {}
    for s, member in enumerate(members):
        for name, loss in member.aux.items():
            plan.setdefault((name, replace(loss, weight=1.0)), [0.0] * len(members))[s] = loss.weight
    return [(name, loss, weights) for (name, loss), weights in plan.items()]


def clip_grad_norm_per_member_(params, max_norm: float, stacked: bool) -> None:
    """``torch.nn.utils.clip_grad_norm_`` of each member's own gradient: for stacked parameters, one norm per member
    over its slices (``coef = max_norm / (norm + 1e-6)``, at most 1), computed as PyTorch computes it."""
    params = list(params)
    if not stacked:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad for p in params if p.grad is not None]
    members = grads[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g[s]) for g in grads]))
                         for s in range(members)])  # per member, PyTorch's own reductions over the same tensors
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(members, *[1] * (g.dim() - 1)))


def _groups(members: list[_Member], cfg: TrainConfig, total: int, stack: bool) -> list[_Group]:
    """Members that share architecture, shape and step train as one stack (``stack``; AuxK, whose dead latents
    differ per member, trains each alone)."""
    buckets: dict[tuple, list[_Member]] = {}
    for member in members:
        buckets.setdefault(member.stack_key(stack and cfg.auxk_coeff == 0), []).append(member)
    return [_Group(group, cfg, total) for group in buckets.values()]


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
    stack: bool = True,
) -> list[PairedSAE]:
    """Train every ``(spec, out_dir)`` of ``runs`` on ``store`` in one pass over the data.

    Runs of one architecture and shape train as one stacked module (``stack``; each run's weights are those it
    would reach alone). Each run writes ``model.safetensors``, ``config.json`` and ``log.csv`` to its folder and
    resumes from its own ``checkpoint.pt`` when present; with ``tensorboard``, every ``log.csv`` row also goes to
    TensorBoard event files in ``out_dir/tensorboard`` (a resumed run appends the steps after its checkpoint
    again). Returns the trained models (on CPU, eval mode), in the order of ``runs``.
    """
    dev = resolve_device(device)
    steps_per_epoch = store.n_batches(cfg.batch_size, drop_last=cfg.drop_last)
    if steps_per_epoch == 0:
        raise ValueError(f"{store.root} has {store.n_pairs} pairs, fewer than batch_size={cfg.batch_size}")
    total = cfg.total_steps(steps_per_epoch)
    store_id = file_digest(store.root / MANIFEST)
    members = [_Member(spec, out_dir, store.dim, cfg, seed, dev, store_id, tensorboard) for spec, out_dir in runs]
    groups = _groups(members, cfg, total, stack)
    start = min(m.step for m in members)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    names = ", ".join(m.spec.slug for m in members)
    bar = tqdm(total=total, initial=start, desc=f"train {names}", unit="step", file=sys.stderr,
               disable=not progress, mininterval=2.0)
    for epoch in range(start // steps_per_epoch, math.ceil(total / steps_per_epoch)):
        batches = store.iter_batches(cfg.batch_size, shuffle=True, seed=seed * 1_000_003 + epoch, drop_last=cfg.drop_last)
        for i, batch in enumerate(batches):
            step = epoch * steps_per_epoch + i
            if step >= total:
                break
            behind = [g for g in groups if g.step == step]
            if not behind:
                continue
            inputs = {"image": torch.from_numpy(batch.image).to(dev), "text": torch.from_numpy(batch.text).to(dev)}
            for group in behind:
                group.train_step(inputs, epoch, autocast)
            bar.update(1)
            if progress and step % cfg.log_every == 0 and members[0].rows:
                bar.set_postfix(loss=f"{members[0].rows[-1]['loss']:.4g}", l0=f"{members[0].rows[-1]['l0_image']:.1f}")
    bar.close()
    extra = {"seed": seed, "data": str(store.root)}
    for group in groups:
        group.finish(extra)
    for member in members:
        (member.out_dir / CHECKPOINT).unlink(missing_ok=True)
    return [member.model for member in members]


def train_paired_sae(spec: SAESpec, store: EmbeddingStore, cfg: TrainConfig, out_dir: str | Path, seed: int = 0,
                     device: str | None = None, progress: bool = True) -> PairedSAE:
    """Train one SAE (or one modality-specific pair); see :func:`train_paired_saes`."""
    return train_paired_saes([(spec, out_dir)], store, cfg, seed, device, progress)[0]


class _Window:
    """Running means of each member's loss terms and L0, and its dead fraction, over one log interval (sums in
    float64, as Python floats would add them)."""

    def __init__(self, model: PairedSAE, aux_names: list[list[str]]):
        self.model, self.aux_names = model, aux_names
        self.reset()

    def reset(self) -> None:
        self.n, self.sums = 0, {}
        self.fired = {name: None for name in self.model.saes}

    def state(self, s: int) -> dict:
        """Member ``s``'s open interval, for its checkpoint: a resumed run logs the same rows as an uninterrupted one."""
        return {"n": self.n, "sums": {k: float(v[s]) for k, v in self.sums.items() if self._logs(s, k)},
                "fired": {name: None if hit is None else hit[s] for name, hit in self.fired.items()}}

    def load(self, states: list[dict]) -> None:
        """The members' intervals, stacked (terms a member does not log count 0)."""
        self.n = states[0]["n"]
        keys = [k for state in states for k in state["sums"]]
        self.sums = {k: torch.tensor([state["sums"].get(k, 0.0) for state in states], dtype=torch.float64)
                     for k in dict.fromkeys(keys)}
        self.fired = {name: None if states[0]["fired"][name] is None else torch.stack([st["fired"][name] for st in states])
                      for name in self.fired}

    def _logs(self, s: int, key: str) -> bool:
        """Whether member ``s`` has the term ``key`` (an auxiliary loss that only some members of the group train with)."""
        return key not in {name for names in self.aux_names for name in names} or key in self.aux_names[s]

    def update(self, codes: dict[str, Code], loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.n += 1
        vals = {"loss": loss, **terms, **{f"l0_{s}": c.l0() for s, c in codes.items()}}
        for k, v in vals.items():
            v = v.detach().to("cpu", torch.float64)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        for s, c in codes.items():
            name = self.model.component_of(s)
            hit = c.fired()
            self.fired[name] = hit if self.fired[name] is None else self.fired[name] | hit

    def flush(self) -> list[dict]:
        """One row per member, its terms in the order a lone run logs them."""
        rows = []
        aux = {name for names in self.aux_names for name in names}
        head = [k for k in self.sums if k not in aux and not k.startswith(("auxk_", "l0_"))]
        tail = [k for k in self.sums if k.startswith(("auxk_", "l0_"))]
        for s, names in enumerate(self.aux_names):
            row = {k: float(self.sums[k][s]) / self.n for k in head + names + tail}
            row.update({f"dead_{name}": 1.0 - float(hit[s].float().mean()) for name, hit in self.fired.items()})
            rows.append(row)
        self.reset()
        return rows
