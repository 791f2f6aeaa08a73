"""BatchTopK SAE (Bussmann et al. 2024; ISO App. A): keep the ``b * k`` largest activations of the batch.

Training selects over the whole ``b x m`` batch of ``ReLU(pre)``, so L0 is k on average with
per-sample variation. Inference cannot depend on the batch: a latent fires when its activation
exceeds a global threshold, the running mean (momentum ``threshold_momentum``) of the smallest
activation that training selected. Both paths decode sparsely, and training also back-propagates
sparsely (:func:`~vlsae.sae.kernels.batch_topk_encode`): the ``B x m`` pre-activations get no
dense gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, EncoderSAE, padded_code
from .kernels import batch_top, batch_topk_encode
from .topk import check_k


class BatchTopKSAE(EncoderSAE):
    def __init__(self, d: int, m: int, k: int, threshold_momentum: float = 0.99, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        check_k(k, m)
        if not 0 <= threshold_momentum < 1:
            raise ValueError(f"threshold_momentum must lie in [0, 1), got {threshold_momentum}")
        self.k, self.momentum = k, threshold_momentum
        self.register_buffer("threshold", torch.tensor(-1.0))  # < 0: not yet estimated

    def encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> Code:
        if keep is not None or not self.training:  # masked selection, or inference: the dense path
            return super().encode(x, keep)
        values, rows, cols = batch_topk_encode(x - self.b_dec, self.W_enc, self.b_enc, x.shape[0] * self.k, 4 * self.k)
        values = F.relu(values)
        self._update_threshold(values.detach())
        return padded_code(rows, cols, values, x.shape[0], self.m)

    def activate(self, pre: torch.Tensor) -> Code:
        acts = F.relu(pre)
        batch = acts.shape[0]
        if self.training:
            values, rows, cols = batch_top(acts, batch * self.k, per_row=4 * self.k)
            self._update_threshold(values.detach())
        else:
            rows, cols = torch.nonzero(acts > self.threshold.clamp_min(0), as_tuple=True)
            values = acts[rows, cols]
        return padded_code(rows, cols, values, batch, self.m)

    @torch.no_grad()
    def _update_threshold(self, selected: torch.Tensor) -> None:
        positive = selected[selected > 0]
        if positive.numel() == 0:
            return
        low = positive.min().float()
        new = low if self.threshold < 0 else self.momentum * self.threshold + (1 - self.momentum) * low
        self.threshold.copy_(new)
