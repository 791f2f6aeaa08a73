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

from .base import Code, EncoderSAE, as_stack, padded_code
from .kernels import batch_top, batch_topk_encode
from .topk import check_k


class BatchTopKSAE(EncoderSAE):
    # each member's code is as wide as its fullest row; in a stack every member would be padded to the widest,
    # and sums over the padding zeros round differently: BatchTopK trains alone
    stackable = False

    def __init__(self, d: int, m: int, k: int, threshold_momentum: float = 0.99, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        check_k(k, m)
        if not 0 <= threshold_momentum < 1:
            raise ValueError(f"threshold_momentum must lie in [0, 1), got {threshold_momentum}")
        self.k, self.momentum = k, threshold_momentum
        self.register_buffer("threshold", torch.tensor(-1.0))  # < 0: not yet estimated

    def encode_stack(self, x: torch.Tensor, keep: torch.Tensor | None) -> Code:
        if keep is not None or not self.training:  # masked selection, or inference: the dense path
            return super().encode_stack(x, keep)
        stack, batch = x.shape[:2]
        values, rows, cols = batch_topk_encode(x - self.p(self.b_dec)[:, None, :], self.p(self.W_enc), self.p(self.b_enc),
                                               batch * self.k, 4 * self.k)
        return self._code(F.relu(values), rows, cols, batch)

    def activate(self, pre: torch.Tensor) -> Code:
        acts = F.relu(as_stack(pre))
        stack, batch = acts.shape[:2]
        if self.training:
            values, rows, cols = batch_top(acts, batch * self.k, per_row=4 * self.k)
            return self._code(values, rows, cols, batch)
        member, rows, cols = torch.nonzero(acts > self.p(self.threshold).clamp_min(0)[:, None, None], as_tuple=True)
        return padded_code(member * batch + rows, cols, acts[member, rows, cols], stack * batch, self.m, stack)

    def _code(self, values: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, batch: int) -> Code:
        """The training code of each member's ``S x n`` batch selection; the threshold follows it."""
        self._update_threshold(values.detach())
        stack = len(values)
        member_rows = rows + (torch.arange(stack, device=rows.device) * batch)[:, None]
        return padded_code(member_rows.flatten(), cols.flatten(), values.flatten(), stack * batch, self.m, stack)

    @torch.no_grad()
    def _update_threshold(self, selected: torch.Tensor) -> None:
        """Each member's threshold moves towards the smallest positive activation it selected (``S x n``)."""
        positive = selected > 0
        low = torch.where(positive, selected, torch.inf).min(-1).values.float()
        threshold = self.p(self.threshold)
        moved = torch.where(threshold < 0, low, self.momentum * threshold + (1 - self.momentum) * low)
        threshold.copy_(torch.where(positive.any(-1), moved, threshold))
