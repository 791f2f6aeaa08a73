"""ReLU SAE with an L1 penalty (ISO App. A): ``z = ReLU(W_enc (x - b_dec) + b_enc)``.

Sparsity is a soft constraint: the loss gains ``l1 * sum_j z_j ||w_j||`` (the decoder norm keeps
the penalty honest when atoms are not unit-norm). ``l1`` has no default: its scale depends on
the embeddings' norm, so each config states it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, EncoderSAE


class ReLUSAE(EncoderSAE):
    def __init__(self, d: int, m: int, l1: float, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        if l1 < 0:
            raise ValueError(f"l1 must be >= 0, got {l1}")
        self.l1 = l1

    def activate(self, pre: torch.Tensor) -> Code:
        z = F.relu(pre)
        penalty = self.l1 * (z * self.W_dec.norm(dim=1)).sum(-1).mean()
        return Code(z, None, self.m, penalty)
