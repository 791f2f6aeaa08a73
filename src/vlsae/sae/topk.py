"""TopK SAE (Gao et al.; science.md "SAE family"): keep the k largest pre-activations per sample.

``z = ReLU(TopK_k(W_enc (x - b_dec) + b_enc))``. Decoding is sparse: ``x_hat = sum_j z_j w_j``
over the k selected atoms via ``embedding_bag``, never materialising the ``B x m`` code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, SparseAutoencoder


class TopKSAE(SparseAutoencoder):
    def __init__(self, d: int, m: int, k: int, unit_norm_decoder: bool = True):
        super().__init__(d, m, unit_norm_decoder)
        if not 1 <= k <= m:
            raise ValueError(f"k must lie in [1, m={m}], got {k}")
        self.k = k

    def encode(self, x: torch.Tensor) -> Code:
        values, indices = self.pre_activation(x).topk(self.k, dim=-1, sorted=False)
        return Code(F.relu(values), indices, self.m)

    def decode(self, code: Code) -> torch.Tensor:
        if code.indices is None:
            return super().decode(code)
        out = F.embedding_bag(code.indices, self.W_dec, per_sample_weights=code.values.to(self.W_dec.dtype), mode="sum")
        return out + self.b_dec
