"""ReLU SAE with an L1 penalty (ISO App. A): ``z = ReLU(W_enc (x - b_dec) + b_enc)``.

Sparsity is a soft constraint: the loss gains ``l1 * sum_j z_j ||w_j||`` (the decoder norm keeps
the penalty honest when atoms are not unit-norm). ``l1`` has no default: its scale depends on
the embeddings' norm, so each config states it. With ``target_l0`` the weight starts at ``l1`` and
adapts during training until L0 reaches the target (:class:`~vlsae.sae.base.TargetL0`).

Speed: the ReLU and the penalty are one autograd node (:class:`_ReLUL1`): its backward is
``dL/dpre = (dL/dz + g ||w_j|| / B) 1[pre > 0]`` and ``dL/d||w_j|| = g sum_b z_bj / B`` (``g`` the
penalty's upstream gradient), two passes over the ``B x m`` activations instead of the five that
autograd takes through ``ReLU``, the product with the norms and the sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Code, EncoderSAE, TargetL0, as_stack


class _ReLUL1(torch.autograd.Function):
    """``(ReLU(pre), mean_b sum_j ReLU(pre)_bj norms_j)`` per member (``pre``: ``S x B x m``, ``norms``: ``S x m``)
    with a fused backward."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, norms: torch.Tensor):
        z = F.relu(pre)
        ctx.save_for_backward(z, norms)
        return z, torch.stack([(z_s @ n_s.to(z.dtype)).mean() for z_s, n_s in zip(z, norms)])

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor, grad_l1: torch.Tensor):
        z, norms = ctx.saved_tensors
        scale = (grad_l1 / z.shape[1])[:, None, None]
        grad_pre = torch.addcmul(grad_z, norms.to(z.dtype)[:, None, :], scale)
        torch.ops.aten.threshold_backward.grad_input(grad_pre, z, 0, grad_input=grad_pre)  # in place: no second B x m
        grad_norms = scale[:, 0] * z.sum(1).to(norms.dtype) if ctx.needs_input_grad[1] else None
        return grad_pre, grad_norms


class ReLUSAE(TargetL0, EncoderSAE):
    def __init__(self, d: int, m: int, l1: float, unit_norm_decoder: bool = True, target_l0: float | None = None,
                 l0_rate: float = 0.001):
        super().__init__(d, m, unit_norm_decoder)
        self.init_target_l0(l1, target_l0, l0_rate)

    def activate(self, pre: torch.Tensor) -> Code:
        pre = as_stack(pre)
        z, l1 = _ReLUL1.apply(pre, self.p(self.W_dec).norm(dim=-1))
        return Code(z.flatten(0, 1), None, self.m, self.p(self.penalty_weight) * l1, stack=len(pre))
