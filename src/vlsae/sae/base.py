"""Common SAE skeleton: ``z = act(W_enc (x - b_dec) + b_enc)``, ``x_hat = W_dec^T z + b_dec``.

Decoder atoms are the rows of ``W_dec`` (``m x d``); with ``unit_norm_decoder`` they are kept on
the unit sphere (HET E.4). Subclasses define the activation (:meth:`encode`) and may override
:meth:`decode` with a sparse kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Code:
    """A batch of latent codes, stored sparsely (``values``/``indices``, ``B x k``) or densely.

    Dense codes keep ``indices=None`` and ``values`` of shape ``B x m``.
    """

    values: torch.Tensor
    indices: torch.Tensor | None
    m: int

    def dense(self) -> torch.Tensor:
        """The ``B x m`` code (zeros off the support)."""
        if self.indices is None:
            return self.values
        out = self.values.new_zeros(self.values.shape[0], self.m)
        return out.scatter(1, self.indices, self.values)

    def l0(self) -> torch.Tensor:
        """Mean number of non-zero latents per sample."""
        return (self.values != 0).sum(-1).float().mean()

    def fired(self) -> torch.Tensor:
        """Boolean ``m`` vector: which latents are non-zero on at least one sample."""
        if self.indices is None:
            return (self.values != 0).any(0)
        hit = torch.zeros(self.m, dtype=torch.bool, device=self.values.device)
        return hit.index_fill(0, self.indices[self.values != 0], True)


class SparseAutoencoder(nn.Module):
    """Encoder/decoder pair with a pre-bias; architectures subclass and define ``encode``."""

    def __init__(self, d: int, m: int, unit_norm_decoder: bool = True):
        super().__init__()
        self.d, self.m, self.unit_norm_decoder = d, m, unit_norm_decoder
        w = torch.randn(m, d)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.clone())
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x - self.b_dec, self.W_enc, self.b_enc)

    def encode(self, x: torch.Tensor) -> Code:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, code: Code) -> torch.Tensor:
        return code.dense() @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Code]:
        code = self.encode(x)
        return self.decode(code), code

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
