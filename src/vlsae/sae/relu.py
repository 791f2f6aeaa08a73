"""ReLU SAE with an L1 penalty (ISO App. A): ``z = ReLU(W_enc (x - b_dec) + b_enc)``.

Sparsity is a soft constraint: the loss gains ``l1 * sum_j z_j ||w_j||`` (the decoder norm keeps
the penalty honest when atoms are not unit-norm). ``l1`` has no default: its scale depends on
the embeddings' norm, so each config states it. With ``target_l0`` the weight starts at ``l1`` and
adapts during training until L0 reaches the target (:class:`~vlsae.sae.base.TargetL0`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, EncoderSAE, TargetL0


class ReLUSAE(TargetL0, EncoderSAE):
    def __init__(self, d: int, m: int, l1: float, unit_norm_decoder: bool = True, target_l0: float | None = None,
                 l0_rate: float = 0.001):
        super().__init__(d, m, unit_norm_decoder)
        self.init_target_l0(l1, target_l0, l0_rate)

    def activate(self, pre: torch.Tensor) -> Code:
        z = F.relu(pre)
        penalty = self.penalty_weight * (z * self.W_dec.norm(dim=1)).sum(-1).mean()
        return Code(z, None, self.m, penalty)
