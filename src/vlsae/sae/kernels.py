"""Fused sparse kernels (after EleutherAI ``sparsify``), written for stacks of ``S`` SAEs (``S = 1`` alone).

:func:`topk_encode` computes ``TopK_k(W_enc x + b_enc)`` and back-propagates only through the
``B x k`` selected entries: ``dL/dx = sum_j g_j W_enc[j]`` and ``dL/dW_enc[j] = sum_b g_bj x_b``, each
one ``embedding_bag`` over the entries grouped by row or by latent, O(B k d) instead of the O(B m d)
dense backward of ``pre.topk`` and without materialising the ``B k x d`` products.
:func:`batch_topk_encode` does the same for the ``n`` largest entries of the whole batch (BatchTopK),
whose selection (:func:`batch_top`) is a COO set of (row, latent) pairs. :func:`sparse_decode` is the
decoder's ``embedding_bag`` with the same latent-grouped backward, and :func:`picked_correlations` gives
Matching Pursuit's ``k`` picked correlations per sample a backward through those entries only.

A stack's tensors carry the member axis first; the backward passes index the members' latents laid end to
end (``s m + j``), and group each latent's entries in row order, so every member's sums are those it would
compute alone. Gradients are computed in the weights' dtype (fp32 under bf16 autocast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _bag_sum(rows: torch.Tensor, cols: torch.Tensor, g: torch.Tensor, table: torch.Tensor, groups: int) -> torch.Tensor:
    """``out[i] = sum over entries e with rows[e] = i of g[e] * table[cols[e]]``, ``groups`` rows: one
    ``embedding_bag`` over the entries sorted by ``rows``."""
    order = torch.argsort(rows, stable=True)
    counts = torch.bincount(rows, minlength=groups)
    offsets = torch.cumsum(counts, 0) - counts
    return F.embedding_bag(cols[order], table, offsets, per_sample_weights=g[order], mode="sum")


def _encoder_grads(ctx, x, weight, rows, cols, g):
    """``dL/dW_enc`` and ``dL/db_enc`` of selected entries ``(rows, cols)`` with upstream gradients ``g``."""
    grad_w = grad_b = None
    if ctx.needs_input_grad[1]:
        grad_w = _bag_sum(cols, rows, g, x.to(weight.dtype), weight.shape[0])
    if ctx.needs_input_grad[2]:
        grad_b = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device).index_add_(0, cols, g)
    return grad_w, grad_b


def member_products(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a_s b_s (+ bias_s)`` per member (``S x B x n``, ``S x n x m``, ``S x m``): ``bmm``/``baddbmm``, or ``mm``/``addmm``
    for one member (the same kernel per member; ``bmm`` of one is slower on the CPU, and its backward copies)."""
    if len(a) > 1:
        return torch.bmm(a, b) if bias is None else torch.baddbmm(bias[:, None, :], a, b)
    a, b = a.squeeze(0), b.squeeze(0)  # views, unlike a[0], whose backward fills a zero tensor to copy into
    return (torch.mm(a, b) if bias is None else torch.addmm(bias.squeeze(0), a, b)).unsqueeze(0)


def _flat(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A stack's ``S x B x d`` inputs and ``S x m x d`` weights as one ``(S B) x d`` and one ``(S m) x d`` table."""
    return x.reshape(-1, x.shape[-1]), weight.reshape(-1, weight.shape[-1])


def _offsets(stack: int, per_member: int, device) -> torch.Tensor:
    """``S x 1 x 1`` offsets ``s * per_member``: member-local indices plus these index the flat tables."""
    return (torch.arange(stack, device=device) * per_member)[:, None, None]


class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int):
        values, indices = member_products(x, weight.transpose(1, 2), bias).topk(k, dim=-1, sorted=False)
        ctx.save_for_backward(x, weight, indices)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, _grad_indices):
        x, weight, indices = ctx.saved_tensors
        (stack, batch, k), m = indices.shape, weight.shape[1]
        flat_x, flat_w = _flat(x, weight)
        cols = (indices + _offsets(stack, m, indices.device)).reshape(-1, k)
        g = grad_values.to(weight.dtype).reshape(-1, k)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(cols, flat_w, per_sample_weights=g, mode="sum").to(x.dtype).view_as(x)
        rows = torch.arange(stack * batch, device=x.device).repeat_interleave(k)
        grad_w, grad_b = _encoder_grads(ctx, flat_x, flat_w, rows, cols.flatten(), g.flatten())
        return (grad_x, None if grad_w is None else grad_w.view_as(weight),
                None if grad_b is None else grad_b.view(stack, m), None)


def batch_top(pre: torch.Tensor, n: int, per_row: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(values, rows, cols)``, each ``S x n``, of the n largest entries of each member's ``B x m`` slice of
    ``pre`` (``S x B x m``), exactly: the n largest of each row's ``per_row`` largest candidates, unless some
    row's candidates all reach the n-th value (that row may hold more), then of the member's whole matrix.
    Per-row top-c plus a small global top-n is ~2-4x faster on the CPU than one top-n over all ``B x m`` entries."""
    m = pre.shape[-1]
    c = min(m, per_row)
    cand, cand_cols = pre.topk(c, dim=-1, sorted=False)
    values, flat = cand.flatten(1).topk(n, sorted=False)
    rows, cols = flat // c, cand_cols.flatten(1).gather(1, flat)
    if c == m:
        return values, rows, cols
    inexact = (cand.min(-1).values >= values.min(-1, keepdim=True).values).any(-1).tolist()
    if not any(inexact):
        return values, rows, cols
    parts = []
    for s, redo in enumerate(inexact):
        if redo:
            v, f = pre[s].flatten().topk(n, sorted=False)
            parts.append((v, f // m, f % m))
        else:
            parts.append((values[s], rows[s], cols[s]))
    return tuple(torch.stack(part) for part in zip(*parts))


class _BatchTopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n: int, per_row: int):
        values, rows, cols = batch_top(member_products(x, weight.transpose(1, 2), bias), n, per_row)
        ctx.save_for_backward(x, weight, rows, cols)
        ctx.mark_non_differentiable(rows, cols)
        return values, rows, cols

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, _grad_rows, _grad_cols):
        x, weight, rows, cols = ctx.saved_tensors
        (stack, batch, _), m = x.shape, weight.shape[1]
        flat_x, flat_w = _flat(x, weight)
        rows = (rows + _offsets(stack, batch, x.device)[..., 0]).flatten()
        cols = (cols + _offsets(stack, m, x.device)[..., 0]).flatten()
        g = grad_values.to(weight.dtype).flatten()
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _bag_sum(rows, cols, g, flat_w, stack * batch).to(x.dtype).view_as(x)
        grad_w, grad_b = _encoder_grads(ctx, flat_x, flat_w, rows, cols, g)
        return (grad_x, None if grad_w is None else grad_w.view_as(weight),
                None if grad_b is None else grad_b.view(stack, m), None, None)


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, indices: torch.Tensor, values: torch.Tensor, table: torch.Tensor):
        ctx.save_for_backward(indices, values, table)
        return F.embedding_bag(indices, table, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        indices, values, table = ctx.saved_tensors
        rows, k = indices.shape
        flat = indices.flatten()
        bag = torch.arange(rows, device=indices.device).repeat_interleave(k)
        grad_values = grad_table = None
        if ctx.needs_input_grad[1]:  # one dot product per entry, as embedding_bag's own backward computes it
            offsets = torch.arange(0, rows * k, k, device=indices.device)
            grad_values = torch.ops.aten._embedding_bag_per_sample_weights_backward(grad, table, flat, offsets, bag, 0)
            grad_values = grad_values.view(rows, k)
        if ctx.needs_input_grad[2]:
            grad_table = _bag_sum(flat, bag, values.flatten(), grad, table.shape[0])
        return None, grad_values, grad_table


def sparse_decode(indices: torch.Tensor, values: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``out[r] = sum_j values[r, j] table[indices[r, j]]`` (``embedding_bag``). Its table gradient sums each row
    of the table's entries in row order (:func:`_bag_sum`): the same sums for a member of a stack, whatever the
    stack's size and padding, as for a lone SAE."""
    return _SparseDecode.apply(indices, values, table)


class _PickedCorrelations(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r0: torch.Tensor, weight: torch.Tensor, picks: torch.Tensor, corr: torch.Tensor):
        ctx.save_for_backward(r0, weight, picks)
        return corr.gather(-1, picks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        r0, weight, picks = ctx.saved_tensors
        (stack, batch, k), m = picks.shape, weight.shape[1]
        flat_r0, flat_w = _flat(r0, weight)
        cols = (picks + _offsets(stack, m, picks.device)).reshape(-1, k)
        g = grad.to(weight.dtype).reshape(-1, k)
        grad_r0 = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_r0 = F.embedding_bag(cols, flat_w, per_sample_weights=g, mode="sum").to(r0.dtype).view_as(r0)
        if ctx.needs_input_grad[1]:
            rows = torch.arange(stack * batch, device=picks.device).repeat_interleave(k)
            grad_w = _bag_sum(cols.flatten(), rows, g.flatten(), flat_r0.to(weight.dtype), stack * m).view_as(weight)
        return grad_r0, grad_w, None, None


def picked_correlations(r0: torch.Tensor, weight: torch.Tensor, picks: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    """``c[s, b, t] = W[s, picks[s, b, t]] . r0[s, b]`` (``S x B x k``), read off the correlations ``corr = r0 W^T``
    computed without autograd, with a sparse backward: ``dL/dW[j] = sum g r0`` over the entries that picked ``j``,
    O(B k d) instead of the O(B m d) of back-propagating through ``corr``."""
    return _PickedCorrelations.apply(r0, weight, picks, corr)


def topk_encode(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)``, each ``S x B x k``, of the k largest entries of each row of ``x W^T + b`` per member
    (``x``: ``S x B x d``, ``W``: ``S x m x d``, ``b``: ``S x m``), with a sparse backward."""
    return _TopKEncode.apply(x, weight, bias, k)


def batch_topk_encode(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n: int, per_row: int):
    """``(values, rows, cols)``, each ``S x n``, of the n largest entries of each member's ``B x m`` matrix
    ``x W^T + b`` (:func:`batch_top` with ``per_row`` candidates), with a sparse backward."""
    return _BatchTopKEncode.apply(x, weight, bias, n, per_row)
