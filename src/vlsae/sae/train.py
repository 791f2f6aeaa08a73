"""One trainer for every architecture and arrangement.

Objective on a paired batch ``(x, y)`` (HET eq. 4, summed over modalities)::

    L = E||x - x_hat||^2 + E||y - y_hat||^2 + sum_a w_a * aux_a(z_img, z_txt)

where each SAE of the arrangement reconstructs its own modality. Protocol (HET E.2/E.4):
AdamW, linear warmup then constant or cosine decay to 0, optional grad-norm clipping per SAE,
unit-norm decoder atoms (gradient parallel to the atoms removed, atoms renormalised after each
step). Data order is a pure function of ``(seed, epoch)`` and checkpoints are atomic, so a run
killed at any point resumes to the same final weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..device import resolve_device
from ..store import EmbeddingStore
from ..strict import from_dict
from .base import Code
from .paired import PairedSAE, SAESpec

CHECKPOINT, LOG = "checkpoint.pt", "log.csv"
AuxLoss = Callable[[Code, Code], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation protocol; defaults are the synthetic protocol of HET E.2."""

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 10
    warmup_fraction: float = 0.0
    schedule: str = "constant"
    grad_clip: float | None = None
    log_every: int = 50
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        object.__setattr__(self, "betas", tuple(self.betas))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return from_dict(cls, data, "training")

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of ``lr`` at ``step``: linear warmup, then constant or cosine to 0."""
        warmup = int(self.warmup_fraction * total)
        if step < warmup:
            return (step + 1) / warmup
        if self.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``E ||x - x_hat||_2^2`` over the batch (HET eq. 4)."""
    return (x - x_hat).pow(2).sum(-1).mean()


def train_paired_sae(
    spec: SAESpec,
    store: EmbeddingStore,
    cfg: TrainConfig,
    out_dir: str | Path,
    seed: int = 0,
    aux_losses: dict[str, tuple[float, AuxLoss]] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> PairedSAE:
    """Train ``spec`` on ``store``; write weights, config and log to ``out_dir``.

    Resumes from ``out_dir/checkpoint.pt`` when present. Returns the trained model (on CPU).
    """
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = PairedSAE(spec, store.dim).to(dev)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    steps_per_epoch = store.n_batches(cfg.batch_size, drop_last=True)
    if steps_per_epoch == 0:
        raise ValueError(f"{store.root} has {store.n_pairs} pairs, fewer than batch_size={cfg.batch_size}")
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cfg.lr_factor(s, total))
    aux_losses = aux_losses or {}
    step, rows = 0, []
    ckpt = out_dir / CHECKPOINT
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, rows = state["step"], state["log"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    sides = ("image", "text")
    window = _Window(model)
    bar = tqdm(total=total, initial=step, desc=f"train {spec.slug}", unit="step", file=sys.stderr,
               disable=not progress, mininterval=2.0)
    for epoch in range(step // steps_per_epoch, cfg.epochs):
        batches = store.iter_batches(cfg.batch_size, shuffle=True, seed=seed * 1_000_003 + epoch, drop_last=True)
        for i, batch in enumerate(batches):
            if epoch * steps_per_epoch + i < step:
                continue
            inputs = {"image": torch.from_numpy(batch.image).to(dev), "text": torch.from_numpy(batch.text).to(dev)}
            with autocast:
                outs = {s: model.side(s)(inputs[s]) for s in sides}
                terms = {f"rec_{s}": reconstruction_loss(inputs[s], outs[s][0].float()) for s in sides}
                for name, (weight, fn) in aux_losses.items():
                    terms[name] = weight * fn(outs["image"][1], outs["text"][1])
                loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for sae in model.components():
                sae.remove_parallel_grad_()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(sae.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            for sae in model.components():
                sae.normalize_decoder_()
            step += 1
            window.update({s: outs[s][1] for s in sides}, loss, terms)
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                rows.append({"step": step, "epoch": epoch, "lr": sched.get_last_lr()[0], **window.flush()})
                bar.set_postfix(loss=f"{rows[-1]['loss']:.4g}", l0=f"{rows[-1]['l0_image']:.1f}")
            if step % cfg.checkpoint_every == 0 and step < total:
                with atomic_path(ckpt) as tmp:
                    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "step": step, "log": rows}, tmp)
    bar.close()
    model = model.cpu()
    model.save(out_dir, {"training": asdict(cfg), "seed": seed, "data": str(store.root),
                         "aux_losses": {k: w for k, (w, _) in aux_losses.items()}})
    with atomic_path(out_dir / LOG) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    ckpt.unlink(missing_ok=True)
    return model.eval()


class _Window:
    """Running means of the loss terms and L0, and the dead fraction, over one log interval."""

    def __init__(self, model: PairedSAE):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.n, self.sums = 0, {}
        self.fired = {name: None for name in self.model.saes}

    def update(self, codes: dict[str, Code], loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        self.n += 1
        vals = {"loss": loss, **terms, **{f"l0_{s}": c.l0() for s, c in codes.items()}}
        for k, v in vals.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        for s, c in codes.items():
            name = "shared" if "shared" in self.fired else s
            hit = c.fired()
            self.fired[name] = hit if self.fired[name] is None else self.fired[name] | hit

    def flush(self) -> dict:
        out = {k: v / self.n for k, v in self.sums.items()}
        out.update({f"dead_{name}": 1.0 - float(h.float().mean()) for name, h in self.fired.items()})
        self.reset()
        return out
