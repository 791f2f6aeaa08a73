"""JumpReLU SAE (Rajamanoharan et al. 2024; ISO eq. 2): ``z = pre * H(pre - theta)``.

The per-latent threshold ``theta = exp(log_theta)`` is learned through straight-through
pseudo-derivatives with a rectangle kernel ``K(u) = 1{|u| < 1/2}`` of bandwidth ``eps``:

    d z / d theta      = -(theta / eps) K((pre - theta) / eps)
    d H / d theta      = -(1 / eps) K((pre - theta) / eps)

and the loss gains ``l0 * sum_j H(pre_j - theta_j)`` (an L0 penalty, trained through the same
estimator). ``l0`` has no default (its scale depends on the embeddings' norm); the threshold
starts at ``threshold`` and the defaults suit l2-normalised embeddings. With ``target_l0`` the L0
weight adapts during training until L0 reaches the target (:class:`~vlsae.sae.base.TargetL0`; the ISO
authors' code raises the thresholds directly instead).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Code, EncoderSAE, TargetL0, as_stack


def _kernel(pre: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    return ((pre - theta).abs() < eps / 2).to(pre.dtype) / eps


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        d_theta = -(theta * _kernel(pre, theta, ctx.eps) * grad).sum(-2, keepdim=True)
        return grad * (pre > theta), d_theta, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        return None, -(_kernel(pre, theta, ctx.eps) * grad).sum(-2, keepdim=True), None


class JumpReLUSAE(TargetL0, EncoderSAE):
    def __init__(self, d: int, m: int, l0: float, threshold: float = 0.1, bandwidth: float = 0.05,
                 unit_norm_decoder: bool = True, target_l0: float | None = None, l0_rate: float = 0.001):
        super().__init__(d, m, unit_norm_decoder)
        if threshold <= 0 or bandwidth <= 0:
            raise ValueError(f"need threshold > 0, bandwidth > 0; got {threshold}, {bandwidth}")
        self.init_target_l0(l0, target_l0, l0_rate)
        self.bandwidth = bandwidth
        self.log_threshold = nn.Parameter(torch.full((m,), math.log(threshold)))

    def activate(self, pre: torch.Tensor) -> Code:
        """``pre``: ``S x B x m``; each member's threshold broadcasts over its batch."""
        pre = as_stack(pre)
        theta = self.p(self.log_threshold).exp()[:, None, :]
        z = _JumpReLU.apply(pre, theta, self.bandwidth)
        penalty = self.p(self.penalty_weight) * _Step.apply(pre, theta, self.bandwidth).sum(-1).mean(-1)
        return Code(z.flatten(0, 1), None, self.m, penalty, stack=len(pre))
