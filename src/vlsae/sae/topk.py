"""TopK SAE (Gao et al.; ISO eq. 3): keep the k largest pre-activations per sample.

``z = ReLU(TopK_k(W_enc (x - b_dec) + b_enc))``, exactly k entries per sample (fewer non-zeros only
when a selected pre-activation is negative). The encoder's backward and the decoder are both sparse
(:func:`~vlsae.sae.kernels.topk_encode`, ``embedding_bag``); the ``B x m`` code is never materialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, EncoderSAE, as_stack
from .kernels import topk_encode


def check_k(k: int, m: int) -> None:
    if not 1 <= k <= m:
        raise ValueError(f"k must lie in [1, m={m}], got {k}")


class TopKSAE(EncoderSAE):
    def __init__(self, d: int, m: int, k: int, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        check_k(k, m)
        self.k = k

    def encode_stack(self, x: torch.Tensor, keep: torch.Tensor | None) -> Code:
        if keep is not None:  # masked pre-activations (group-sparse option): the generic dense path
            return super().encode_stack(x, keep)
        values, indices = topk_encode(x - self.p(self.b_dec)[:, None, :], self.p(self.W_enc), self.p(self.b_enc), self.k)
        return Code(F.relu(values).flatten(0, 1), indices.flatten(0, 1), self.m, stack=len(x))

    def activate(self, pre: torch.Tensor) -> Code:
        pre = as_stack(pre)
        values, indices = pre.topk(self.k, dim=-1, sorted=False)
        return Code(F.relu(values).flatten(0, 1), indices.flatten(0, 1), self.m, stack=len(pre))
