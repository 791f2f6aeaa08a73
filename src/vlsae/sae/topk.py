"""TopK SAE (Gao et al.; ISO eq. 3): keep the k largest pre-activations per sample.

``z = ReLU(TopK_k(W_enc (x - b_dec) + b_enc))``, exactly k entries per sample (fewer non-zeros only
when a selected pre-activation is negative). Decoding gathers the k atoms (``embedding_bag``); the
``B x m`` code is never materialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, EncoderSAE


def check_k(k: int, m: int) -> None:
    if not 1 <= k <= m:
        raise ValueError(f"k must lie in [1, m={m}], got {k}")


class TopKSAE(EncoderSAE):
    def __init__(self, d: int, m: int, k: int, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        check_k(k, m)
        self.k = k

    def activate(self, pre: torch.Tensor) -> Code:
        values, indices = pre.topk(self.k, dim=-1, sorted=False)
        return Code(F.relu(values), indices, self.m)
