"""Common SAE skeleton (docs/methods.md, "SAEs and their training").

A dictionary ``W_dec`` (``m x d``, rows are atoms) and a pre-bias ``b_dec`` decode a code ``z``
as ``x_hat = W_dec^T z + b_dec``. With ``unit_norm_decoder`` the atoms stay on the unit sphere
(HET E.4). Encoder-based SAEs (:class:`EncoderSAE`) add ``pre = W_enc (x - b_dec) + b_enc`` and an
activation; Matching Pursuit encodes with the dictionary itself.

**Stacks.** Every architecture is written once, for a *stack* of ``S`` SAEs of the same shape whose
parameters carry a leading member axis (``W_dec``: ``S x m x d``); a lone SAE is the stack of one, its
parameters viewed with ``S = 1`` (:meth:`SparseAutoencoder.p`). :func:`stack_saes` turns ``S`` trained or
fresh SAEs into one such module and :func:`unstack_into` writes it back, so SAEs that share a pass over the
data train as one module (batched matmuls, one top-k, one optimiser step; :mod:`vlsae.sae.train`). Member
``s`` sees exactly the arithmetic it would see alone: matrix products are ``bmm`` (per member the same as
``mm``, which a lone SAE takes: :func:`~vlsae.sae.kernels.member_products`), matrix-vector products and reductions run per member
or along contiguous rows. Members are taken as views (``squeeze``, ``unbind``), never by indexing (``w[0]``),
whose backward writes each use's gradient into a zero tensor of the whole stack.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import member_products, sparse_decode


@dataclass
class Code:
    """A batch of latent codes, stored sparsely (``values``/``indices``, ``rows x k``) or densely.

    Dense codes keep ``indices=None`` and ``values`` of shape ``rows x m``. Sparse codes may pad with
    zero values, and may repeat an index (Matching Pursuit); repeated entries add up. ``penalty``
    is the architecture's own sparsity cost of this batch (L1 for ReLU, L0 for JumpReLU), one value per
    member. The codes of a stack of ``stack`` SAEs are member-major: rows ``s B .. (s + 1) B - 1`` are member
    ``s``'s, and indices count that member's own latents ``0 .. m - 1``.
    """

    values: torch.Tensor
    indices: torch.Tensor | None
    m: int
    penalty: torch.Tensor | None = None
    stack: int = 1

    def dense(self) -> torch.Tensor:
        """The ``rows x m`` code (zeros off the support)."""
        if self.indices is None:
            return self.values
        out = self.values.new_zeros(self.values.shape[0], self.m)
        return out.scatter_add(1, self.indices, self.values)

    def global_indices(self) -> torch.Tensor:
        """Indices into the members' latents laid end to end (``s m + j``): rows of a ``(S m) x d`` table."""
        if self.stack == 1:
            return self.indices
        rows = self.indices.shape[0] // self.stack
        offsets = torch.arange(self.stack, device=self.indices.device).repeat_interleave(rows) * self.m
        return self.indices + offsets[:, None]

    def l0(self) -> torch.Tensor:
        """Mean number of non-zero entries per sample, per member (``S``)."""
        return (self.values != 0).sum(-1).float().view(self.stack, -1).mean(1)

    def fired(self) -> torch.Tensor:
        """Boolean ``S x m``: which latents of each member are non-zero on at least one sample."""
        if self.indices is None:
            return (self.values != 0).view(self.stack, -1, self.m).any(1)
        hit = torch.zeros(self.stack * self.m, dtype=torch.bool, device=self.values.device)
        return hit.index_fill(0, self.global_indices()[self.values != 0], True).view(self.stack, self.m)


def member_mean(values: torch.Tensor, stack: int) -> torch.Tensor:
    """Per-member mean (``S``) of per-sample ``values`` laid out member-major."""
    return values.view(stack, -1).mean(1)


class SparseAutoencoder(nn.Module):
    """Dictionary and pre-bias; subclasses define :meth:`encode_stack` and :meth:`aux_scores`.

    ``signed_codes``: codes may be negative, so atom ``-w`` is atom ``w`` (Matching Pursuit).
    """

    signed_codes = False
    stackable = True  # whether members train bit for bit as alone in a stack (:func:`stack_saes`)

    def __init__(self, d: int, m: int, unit_norm_decoder: bool = True):
        super().__init__()
        self.d, self.m, self.unit_norm_decoder = d, m, unit_norm_decoder
        w = torch.randn(m, d)
        self.W_dec = nn.Parameter(w / w.norm(dim=1, keepdim=True))
        self.b_dec = nn.Parameter(torch.zeros(d))

    @property
    def stacked(self) -> bool:
        """Whether this module is a stack (:func:`stack_saes`): parameters with a leading member axis."""
        return self.W_dec.dim() == 3

    @property
    def stack(self) -> int:
        """Members: ``S`` for a stack, 1 for a lone SAE."""
        return self.W_dec.shape[0] if self.stacked else 1

    def p(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (a parameter or buffer of this module) with its member axis, as a view: ``S = 1`` added in a
        lone SAE, the stack itself in a stack. A view in both, so that autograd sums the gradients of each use in
        the same groups, in the same order, whatever ``S``; views share storage, so in-place updates reach buffers."""
        return tensor.view(tensor.shape) if self.stacked else tensor.unsqueeze(0)

    @torch.no_grad()
    def init_xavier_(self) -> None:
        """Restart the dictionary as overcomplete's ``DictionaryLayer`` does (the ISO authors' toy code):
        Xavier-uniform ``W_dec ~ U(-a, a)``, ``a = sqrt(6 / (m + d))``, then unit rows; an encoder that starts
        as the decoder's transpose follows it."""
        torch.nn.init.xavier_uniform_(self.W_dec)
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
        if isinstance(getattr(self, "W_enc", None), nn.Parameter):
            self.W_enc.copy_(self.W_dec)

    def encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> Code:
        """Code of ``x`` (``B x d``, read by every member, or ``S x B x d``); ``keep`` (0/1, ``B x m`` or
        ``S x B x m``) masks latents out of the selection. The rows of a stack's code are member-major."""
        return self.encode_stack(*self.per_member(x, keep))

    def per_member(self, x: torch.Tensor, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` as ``S x B x d`` and ``keep`` as ``S x B x m`` (a ``B x ...`` tensor is read by every member)."""
        members = self.stack
        x = x if x.dim() == 3 else x.unsqueeze(0).expand(members, -1, -1)
        if keep is not None and keep.dim() == 2:
            keep = keep.unsqueeze(0).expand(members, -1, -1)
        return x, keep

    def encode_stack(self, x: torch.Tensor, keep: torch.Tensor | None) -> Code:  # pragma: no cover - abstract
        """The architecture: the code of ``S x B x d`` inputs (``keep``: ``S x B x m`` or None)."""
        raise NotImplementedError

    def aux_scores(self, x: torch.Tensor, residual: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``B x len(latents)`` scores by which AuxK picks dead latents to explain ``residual`` (lone SAEs)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def decode(self, code: Code) -> torch.Tensor:
        """``x_hat = sum_j z_j w_j + b_dec``: a gather (``embedding_bag``) for sparse codes; ``B x d`` for a lone
        SAE, ``S x B x d`` for a stack."""
        w, b = self.p(self.W_dec), self.p(self.b_dec)
        members, m, d = w.shape
        if code.indices is None:
            out = member_products(code.values.view(members, -1, m).to(w.dtype), w)
        else:
            out = sparse_decode(code.global_indices(), code.values.to(w.dtype), w.reshape(members * m, d)).view(members, -1, d)
        out = out + b[:, None, :]
        return out if self.stacked else out.squeeze(0)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, Code]:
        code = self.encode(x, keep)
        return self.decode(code), code

    def squared_errors(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, Code]:
        """Per-sample ``||x - x_hat||^2`` (``B``; ``S x B`` for a stack) and the code: what training's reconstruction
        terms read. Decodes here; an architecture may read it off its code without decoding (Matching Pursuit)."""
        x_hat, code = self(x, keep)
        return (x - x_hat.to(x.dtype)).pow(2).sum(-1), code  # x_hat in bf16 under autocast: the error in x's dtype

    def after_step_(self, codes: list[Code]) -> None:
        """Adapt state to this step's codes (of every modality this SAE encodes); nothing by default."""

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Project every atom back onto the unit sphere."""
        if self.unit_norm_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Drop the gradient component along each (unit) atom: ``g <- g - <g, w> w``."""
        if self.unit_norm_decoder and self.W_dec.grad is not None:
            g, w = self.W_dec.grad, self.W_dec
            g.sub_((g * w).sum(-1, keepdim=True) * w)


def stack_saes(saes: list[SparseAutoencoder]) -> SparseAutoencoder:
    """One module of ``S`` SAEs of one class and shape: each parameter and buffer becomes the ``S x ...`` stack
    of the members' (copies; :func:`unstack_into` writes them back)."""
    first = saes[0]
    shapes = {tuple((k, tuple(v.shape)) for k, v in sae.state_dict().items()) for sae in saes}
    if len({type(sae) for sae in saes}) > 1 or len(shapes) > 1 or any(sae.stacked for sae in saes):
        raise ValueError("only lone SAEs of one architecture and shape stack")
    stack = copy.copy(first)
    stack._parameters, stack._buffers = dict(first._parameters), dict(first._buffers)
    for name, param in first.named_parameters(recurse=False):
        values = torch.stack([getattr(sae, name).detach() for sae in saes])
        stack._parameters[name] = nn.Parameter(values, requires_grad=param.requires_grad)
    for name, _ in first.named_buffers(recurse=False):
        stack._buffers[name] = torch.stack([getattr(sae, name) for sae in saes])
    return stack


@torch.no_grad()
def unstack_into(stack: SparseAutoencoder, saes: list[SparseAutoencoder]) -> None:
    """Copy member ``s`` of ``stack`` into ``saes[s]``."""
    for s, sae in enumerate(saes):
        for name, value in stack.state_dict().items():
            sae.state_dict()[name].copy_(value[s])


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
        """``W_enc (x - b_dec) + b_enc`` of ``S x B x d`` inputs (``B x d``: one member's), computed as
        ``W_enc x + (b_enc - W_enc b_dec)``: the pre-bias's gradient is then an ``m x d`` product instead of a
        ``B x m x d`` one (a sixth of a dense step)."""
        w = self.p(self.W_enc)
        bias = self.p(self.b_enc) - torch.stack([w_s @ b_s for w_s, b_s in zip(w.unbind(), self.p(self.b_dec).unbind())])
        pre = member_products(as_stack(x), w.transpose(1, 2), bias)
        return pre if x.dim() == 3 else pre.squeeze(0)

    def activate(self, pre: torch.Tensor) -> Code:  # pragma: no cover - abstract
        """The architecture's non-linearity on ``S x B x m`` pre-activations (``B x m``: one member)."""
        raise NotImplementedError

    def encode_stack(self, x: torch.Tensor, keep: torch.Tensor | None) -> Code:
        pre = self.pre_activation(x)
        return self.activate(pre if keep is None else pre * keep)

    def aux_scores(self, x: torch.Tensor, residual: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The dead latents' own pre-activations (Gao et al.'s AuxK)."""
        return F.linear(x - self.b_dec, self.W_enc[latents], self.b_enc[latents])


def as_stack(pre: torch.Tensor) -> torch.Tensor:
    """``S x B x m`` pre-activations (a ``B x m`` matrix is one member's)."""
    return pre if pre.dim() == 3 else pre.unsqueeze(0)


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
        l0 = sum(c.l0() for c in codes)
        weights = self.p(self.penalty_weight)
        for s, member_l0 in enumerate(l0.tolist()):  # per member, in Python floats: the same arithmetic at any S
            weights[s].mul_((max(member_l0 / len(codes), 1e-12) / self.target_l0) ** self.l0_rate).clamp_(min=1e-12)


def padded_code(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, batch: int, m: int, stack: int = 1) -> Code:
    """Sparse :class:`Code` of ``batch`` rows from COO entries (distinct ``(row, col)``) with a variable count per row,
    zero-padded to the max. Each row's entries are in latent order, whatever order they came in (``topk`` leaves
    its order unspecified), so sums over them are the same for a lone SAE and a member of a stack."""
    order = torch.argsort(rows * m + cols)
    rows, cols, values = rows[order], cols[order], values[order]
    counts = torch.bincount(rows, minlength=batch)
    width = max(int(counts.max()) if rows.numel() else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel(), device=rows.device) - starts[rows]
    idx = torch.zeros(batch, width, dtype=torch.long, device=rows.device)
    val = values.new_zeros(batch, width)
    idx[rows, slot] = cols
    val = val.index_put((rows, slot), values)
    return Code(val, idx, m, stack=stack)
