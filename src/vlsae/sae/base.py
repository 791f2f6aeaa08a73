"""Common SAE skeleton (docs/methods.md, "SAEs and their training").

A dictionary ``W_dec`` (``m x d``, rows are atoms) and a pre-bias ``b_dec`` decode a code ``z``
as ``x_hat = W_dec^T z + b_dec``. With ``unit_norm_decoder`` the atoms stay on the unit sphere
(HET E.4). Encoder-based SAEs (:class:`EncoderSAE`) add ``pre = W_enc (x - b_dec) + b_enc`` and an
activation; Matching Pursuit encodes with the dictionary itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Code:
    """A batch of latent codes, stored sparsely (``values``/``indices``, ``B x k``) or densely.

    Dense codes keep ``indices=None`` and ``values`` of shape ``B x m``. Sparse codes may pad with
    zero values, and may repeat an index (Matching Pursuit); repeated entries add up. ``penalty``
    is the architecture's own sparsity cost of this batch (L1 for ReLU, L0 for JumpReLU), if any.
    """

    values: torch.Tensor
    indices: torch.Tensor | None
    m: int
    penalty: torch.Tensor | None = None

    def dense(self) -> torch.Tensor:
        """The ``B x m`` code (zeros off the support)."""
        if self.indices is None:
            return self.values
        out = self.values.new_zeros(self.values.shape[0], self.m)
        return out.scatter_add(1, self.indices, self.values)

    def l0(self) -> torch.Tensor:
        """Mean number of non-zero entries per sample."""
        return (self.values != 0).sum(-1).float().mean()

    def fired(self) -> torch.Tensor:
        """Boolean ``m`` vector: which latents are non-zero on at least one sample."""
        if self.indices is None:
            return (self.values != 0).any(0)
        hit = torch.zeros(self.m, dtype=torch.bool, device=self.values.device)
        return hit.index_fill(0, self.indices[self.values != 0], True)


class SparseAutoencoder(nn.Module):
    """Dictionary and pre-bias; subclasses define :meth:`encode` and :meth:`aux_scores`.

    ``signed_codes``: codes may be negative, so atom ``-w`` is atom ``w`` (Matching Pursuit).
    """

    signed_codes = False

    def __init__(self, d: int, m: int, unit_norm_decoder: bool = True):
        super().__init__()
        self.d, self.m, self.unit_norm_decoder = d, m, unit_norm_decoder
        w = torch.randn(m, d)
        self.W_dec = nn.Parameter(w / w.norm(dim=1, keepdim=True))
        self.b_dec = nn.Parameter(torch.zeros(d))

    @torch.no_grad()
    def init_xavier_(self) -> None:
        """Restart the dictionary as overcomplete's ``DictionaryLayer`` does (the ISO authors' toy code):
        Xavier-uniform ``W_dec ~ U(-a, a)``, ``a = sqrt(6 / (m + d))``, then unit rows; an encoder that starts
        as the decoder's transpose follows it."""
        torch.nn.init.xavier_uniform_(self.W_dec)
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
        if isinstance(getattr(self, "W_enc", None), nn.Parameter):
            self.W_enc.copy_(self.W_dec)

    def encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> Code:  # pragma: no cover - abstract
        """Code of ``x``; ``keep`` (``B x m`` of 0/1) masks latents out of the selection."""
        raise NotImplementedError

    def aux_scores(self, x: torch.Tensor, residual: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``B x len(latents)`` scores by which AuxK picks dead latents to explain ``residual``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def decode(self, code: Code) -> torch.Tensor:
        """``x_hat = sum_j z_j w_j + b_dec``: a gather (``embedding_bag``) for sparse codes."""
        if code.indices is None:
            return code.values @ self.W_dec + self.b_dec
        w = self.W_dec
        out = F.embedding_bag(code.indices, w, per_sample_weights=code.values.to(w.dtype), mode="sum")
        return out + self.b_dec

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, Code]:
        code = self.encode(x, keep)
        return self.decode(code), code

    def after_step_(self, codes: list[Code]) -> None:
        """Adapt state to this step's codes (of every modality this SAE encodes); nothing by default."""

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Project every atom back onto the unit sphere."""
        if self.unit_norm_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Drop the gradient component along each (unit) atom: ``g <- g - <g, w> w``."""
        if self.unit_norm_decoder and self.W_dec.grad is not None:
            g, w = self.W_dec.grad, self.W_dec
            g.sub_((g * w).sum(1, keepdim=True) * w)


class EncoderSAE(SparseAutoencoder):
    """``z = act(W_enc (x - b_dec) + b_enc)``; the encoder starts as the decoder's transpose."""

    def __init__(self, d: int, m: int, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        self.W_enc = nn.Parameter(self.W_dec.detach().clone())
        self.b_enc = nn.Parameter(torch.zeros(m))

    @torch.no_grad()
    def init_linear_(self) -> None:
        """Restart as ``nn.Linear`` starts (the HET authors' code): ``W_enc ~ U(-1/sqrt(d), 1/sqrt(d))``
        (Kaiming-uniform with ``a = sqrt(5)``), ``b_enc = 0``, and the decoder its unit-row copy."""
        torch.nn.init.kaiming_uniform_(self.W_enc, a=5 ** 0.5)
        self.b_enc.zero_()
        self.W_dec.copy_(self.W_enc / self.W_enc.norm(dim=1, keepdim=True))

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """``W_enc (x - b_dec) + b_enc``, computed as ``W_enc x + (b_enc - W_enc b_dec)``: the pre-bias's
        gradient is then an ``m x d`` product instead of a ``B x m x d`` one (a sixth of a dense step)."""
        return F.linear(x, self.W_enc, self.b_enc - self.W_enc @ self.b_dec)

    def activate(self, pre: torch.Tensor) -> Code:  # pragma: no cover - abstract
        """The architecture's non-linearity on the ``B x m`` pre-activations."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> Code:
        pre = self.pre_activation(x)
        return self.activate(pre if keep is None else pre * keep)

    def aux_scores(self, x: torch.Tensor, residual: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The dead latents' own pre-activations (Gao et al.'s AuxK)."""
        return F.linear(x - self.b_dec, self.W_enc[latents], self.b_enc[latents])


class TargetL0:
    """A sparsity penalty whose weight adapts to reach a target L0 (ISO Tables 3-4 compare at L0 20 and 50).

    The weight lives in the buffer ``penalty_weight`` (saved with the model and its checkpoints). With
    ``target_l0`` set, after every step it is multiplied by ``(L0 / target_l0) ^ rate``, ``L0`` the mean
    active latents per sample of the step's codes: the log-ratio controller of the ISO authors' code
    (rate 0.001 there). Without ``target_l0`` the weight stays at its initial value.
    """

    def init_target_l0(self, weight: float, target_l0: float | None, rate: float) -> None:
        if weight < 0 or (target_l0 is not None and target_l0 <= 0) or rate <= 0:
            raise ValueError(f"need a penalty weight >= 0, target_l0 > 0, l0_rate > 0; got {weight}, {target_l0}, {rate}")
        self.register_buffer("penalty_weight", torch.tensor(float(weight)))
        self.target_l0, self.l0_rate = target_l0, rate

    @torch.no_grad()
    def after_step_(self, codes: list[Code]) -> None:
        if self.target_l0 is None:
            return
        l0 = float(sum(c.l0() for c in codes)) / len(codes)
        self.penalty_weight.mul_((max(l0, 1e-12) / self.target_l0) ** self.l0_rate).clamp_(min=1e-12)


def padded_code(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, batch: int, m: int) -> Code:
    """Sparse :class:`Code` from COO entries with a variable count per row, zero-padded to the max."""
    order = torch.argsort(rows, stable=True)
    rows, cols, values = rows[order], cols[order], values[order]
    counts = torch.bincount(rows, minlength=batch)
    width = max(int(counts.max()) if rows.numel() else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel(), device=rows.device) - starts[rows]
    idx = torch.zeros(batch, width, dtype=torch.long, device=rows.device)
    val = values.new_zeros(batch, width)
    idx[rows, slot] = cols
    val = val.index_put((rows, slot), values)
    return Code(val, idx, m)
