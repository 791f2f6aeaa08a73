"""Fused sparse kernels (after EleutherAI ``sparsify``).

:func:`topk_encode` computes ``TopK_k(W_enc x + b_enc)`` and back-propagates only through the
``B x k`` selected entries: ``dL/dx = sum_j g_j W_enc[j]`` (an ``embedding_bag``) and
``dL/dW_enc[j] += g_j x`` (an ``index_add``), O(B k d) instead of the O(B m d) dense backward of
``pre.topk``. Gradients are computed in the weights' dtype (fp32 under bf16 autocast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int):
        values, indices = F.linear(x, weight, bias).topk(k, dim=-1, sorted=False)
        ctx.save_for_backward(x, weight, indices)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, _grad_indices):
        x, weight, indices = ctx.saved_tensors
        g = grad_values.to(weight.dtype)
        flat = indices.flatten()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(indices, weight, per_sample_weights=g, mode="sum").to(x.dtype)
        if ctx.needs_input_grad[1]:
            rows = (g[..., None] * x.to(weight.dtype)[:, None, :]).flatten(0, 1)
            grad_w = torch.zeros_like(weight).index_add_(0, flat, rows)
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device).index_add_(0, flat, g.flatten())
        return grad_x, grad_w, grad_b, None


def topk_encode(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the k largest entries of ``x W^T + b`` per row, with a sparse backward."""
    return _TopKEncode.apply(x, weight, bias, k)
