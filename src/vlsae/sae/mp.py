"""Matching Pursuit SAE (ISO Alg. 1): ``k`` greedy steps over unit-norm atoms.

With ``r_0 = x`` (Alg. 1; ``r_0 = x - b_dec`` with a learned pre-bias when ``pre_bias``), each step picks ``i = argmax_j |w_j . r|``, sets ``z_i = w_i . r`` and
``r <- r - z_i w_i``; ``x_hat = sum z_i w_i + b_dec``. ``selection: signed`` picks ``argmax_j w_j . r``
instead, as ``overcomplete``'s ``MpSAE`` (the ISO authors' toy code) does: codes are then non-negative
unless every correlation is negative. Because ``z_i`` is the full correlation of a
unit atom, ``||r||^2`` drops by ``z_i^2`` at every step: the residual never grows.

Speed: the support is selected without autograd on the correlations ``c = W_dec r``, updated
through the Gram matrix ``G = W_dec W_dec^T`` as ``c <- c - z_i G[i]`` (O(m) per sample and step
instead of O(m d)). The values on the selected support are then recomputed *with* autograd from
the triangular system ``z_t = w_{i_t} . r_0 - sum_{s<t} z_s w_{i_s} . w_{i_t}``, which is exactly the
unrolled recurrence: gradients equal those of back-propagating through Alg. 1, and touch only the
``k`` selected atoms per sample (the picked correlations ``w_{i_t} . r_0`` back-propagate through a sparse
kernel, O(B k d), not through the dense ``B x m`` correlations). ``G`` is cached between calls in eval mode.
Training never decodes: the squared error is read off the same ``k x k`` system,
``||r_0 - A^T z||^2 = ||r_0||^2 - 2 z . A r_0 + z^T A A^T z`` (:meth:`MatchingPursuitSAE.squared_errors`).

Memory: ``G`` takes ``4 m^2`` bytes (9.7 GB at ISO Table 4's ``m = 64 x 768``). It is used only
while it fits ``gram_budget_mb`` (default: a quarter of the device's memory) and, in training, where
it is rebuilt every step (``m^2 d`` multiply-adds), only while that is cheaper than the per-step
correlation products it saves (``k B m d``): ``m <= k B``. Otherwise each step reads only the Gram rows
of the atoms the batch just picked, ``W[u] W^T`` for the ``u <= B`` distinct picks (``u x m``), so
nothing of size ``m^2`` is ever allocated. Both paths select the same atoms.
"""

from __future__ import annotations

import torch

from ..device import memory_bytes
from .base import Code, SparseAutoencoder
from .kernels import member_products, picked_correlations
from .topk import check_k

SELECTIONS = ("absolute", "signed")


class MatchingPursuitSAE(SparseAutoencoder):
    signed_codes = True

    def __init__(self, d: int, m: int, k: int, unit_norm_decoder: bool = True, pre_bias: bool = False,
                 selection: str = "absolute", gram_budget_mb: float | None = None):
        if not unit_norm_decoder:
            raise ValueError("Matching Pursuit needs unit-norm atoms (unit_norm_decoder: true)")
        if selection not in SELECTIONS:
            raise ValueError(f"mp selection must be one of {SELECTIONS}, got {selection!r}")
        if gram_budget_mb is not None and gram_budget_mb < 0:
            raise ValueError(f"mp gram_budget_mb must be >= 0, got {gram_budget_mb}")
        super().__init__(d, m, unit_norm_decoder)
        check_k(k, m)
        self.k, self.selection, self.gram_budget_mb = k, selection, gram_budget_mb
        self.b_dec.requires_grad_(pre_bias)  # frozen at 0 unless asked for: Alg. 1 has no bias
        self._gram_cache: tuple[tuple, torch.Tensor] | None = None

    @property
    def _dtype(self) -> torch.dtype:
        """Selection and the triangular solve run in fp32 at least (never in bf16)."""
        return torch.promote_types(self.W_dec.dtype, torch.float32)

    def _atoms(self) -> torch.Tensor:
        """The ``S x m x d`` atoms, detached, in the selection dtype."""
        return self.p(self.W_dec).detach().to(self._dtype)

    def gram(self) -> torch.Tensor:
        """``G = W_dec W_dec^T`` per member (``S x m x m``): recomputed in training, where every step moves the
        atoms (and not cached, so no step holds two), cached in eval mode until the atoms change."""
        w = self._atoms()
        if self.training:
            self._gram_cache = None
            return member_products(w, w.transpose(1, 2))
        key = (self.W_dec._version, self.W_dec.data_ptr(), w.device)
        if self._gram_cache is None or self._gram_cache[0] != key:
            self._gram_cache = None  # release the stale matrix before building the new one
            self._gram_cache = (key, member_products(w, w.transpose(1, 2)))
        return self._gram_cache[1]

    def use_gram(self, batch: int) -> bool:
        """Whether selection reads the full Gram matrices (they fit the budget and, in training, ``m <= k B``)
        or computes the Gram rows of each step's picks."""
        budget = (memory_bytes(self.W_dec.device) / 4 if self.gram_budget_mb is None
                  else self.gram_budget_mb * 2 ** 20)
        fits = 4 * self.stack * self.m * self.m <= budget
        return fits and (not self.training or self.m <= self.k * batch)

    def dense_products(self, batch: int) -> bool:
        """Whether ``A A^T`` and ``A r_0`` are cheaper read off the dense ``W W^T`` and ``r_0 W^T`` than
        computed as ``batch`` small per-sample products (``m^2 <= B k^2``: small dictionaries)."""
        return self.m * self.m <= batch * self.k * self.k

    @torch.no_grad()
    def select(self, r0: torch.Tensor, corr: torch.Tensor | None = None, gram: torch.Tensor | None = None) -> torch.Tensor:
        """``S x B x k`` atom indices chosen by Alg. 1 for ``S x B x d`` residuals ``r_0``, via the Gram update of
        the correlations ``corr = r_0 W^T``, ``c <- c - z_i G[i]`` (``corr`` computed here unless given, and left
        unchanged; ``gram``, the full ``G``, read when given or when :meth:`use_gram`, else its rows computed per
        step)."""
        w = self._atoms()
        stack, batch, _ = r0.shape
        if gram is None and self.use_gram(batch):
            gram = self.gram()
        corr = member_products(r0.to(self._dtype), w.transpose(1, 2)) if corr is None else corr.detach().to(self._dtype, copy=True)
        picks = torch.empty(stack, batch, self.k, dtype=torch.long, device=r0.device)
        magnitude = torch.empty_like(corr)  # reused: allocating |c| every step doubles the argmax cost on CPU
        offsets = (torch.arange(stack, device=r0.device) * self.m)[:, None]
        for t in range(self.k):
            i = (torch.abs(corr, out=magnitude) if self.selection == "absolute" else corr).argmax(-1)
            picks[..., t] = i
            if gram is not None:
                rows = gram.view(stack * self.m, self.m).index_select(0, (i + offsets).flatten()).view_as(corr)
            else:
                rows = torch.stack([self._gram_rows(w_s, i_s) for w_s, i_s in zip(w, i)])
            corr.addcmul_(rows, corr.gather(-1, i[..., None]), value=-1.0)
        return picks

    @staticmethod
    def _gram_rows(w: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
        """``G[picks]`` of one member's atoms ``w`` without ``G``: ``W[u] W^T`` for the distinct picks ``u``."""
        atoms, slot = torch.unique(picks, return_inverse=True)
        return (w.index_select(0, atoms) @ w.T).index_select(0, slot)

    def support(self, r0: torch.Tensor, picks: torch.Tensor, corr: torch.Tensor | None = None,
                gram: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, A r_0, A A^T)`` of the picked atoms ``A`` (``S x B x k``, ``S x B x k``, ``S x B x k x k``): ``z`` are
        the differentiable MP values on the fixed support, the solution of ``(I + tril(A A^T, -1)) z = A r_0``.

        With :meth:`dense_products`, ``A A^T`` is gathered from ``gram = W W^T`` (with autograd) and ``A r_0`` from
        ``corr = r_0 W^T`` (without: :func:`~vlsae.sae.kernels.picked_correlations` back-propagates through the
        picked entries only), both computed here unless given; else both are computed per sample. The two give
        the same values and gradients."""
        with torch.autocast(r0.device.type, enabled=False):  # a triangular solve wants fp32
            w, r0 = self.p(self.W_dec).to(self._dtype), r0.to(self._dtype)
            stack, batch, k = picks.shape
            if self.dense_products(batch):
                if corr is None:
                    with torch.no_grad():
                        corr = member_products(r0, w.transpose(1, 2))
                gram = member_products(w, w.transpose(1, 2)) if gram is None else gram
                pairs = (picks[..., :, None] * self.m + picks[..., None, :]).view(stack, -1)
                products = gram.view(stack, -1).gather(1, pairs).view(stack, batch, k, k)
                corr0 = picked_correlations(r0, w, picks, corr)
            else:
                offsets = (torch.arange(stack, device=r0.device) * self.m)[:, None, None]
                atoms = w.reshape(stack * self.m, -1)[picks + offsets]  # S x B x k x d
                corr0 = torch.einsum("sbkd,sbd->sbk", atoms, r0)
                products = atoms @ atoms.transpose(-1, -2)
            system = torch.tril(products, diagonal=-1) + torch.eye(k, dtype=products.dtype, device=products.device)
            z = torch.linalg.solve_triangular(system, corr0[..., None], upper=False, unitriangular=True)[..., 0]
            return z, corr0, products

    def encode_stack(self, x: torch.Tensor, keep: torch.Tensor | None) -> Code:
        return self.pursue(x, keep)[0]

    def squared_errors(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, Code]:
        """``||x - x_hat||^2 = ||r_0 - A^T z||^2 = ||r_0||^2 - 2 z . A r_0 + z^T A A^T z`` per sample, from the
        ``k``-dimensional support system (:meth:`support`) without decoding: the value and gradient of decoding, to
        rounding relative to ``||r_0||^2``, with no ``B x d`` product or its backward (a training step 1.2x faster
        at ISO Table 5's sizes: ``benchmarks/sae_speed.py``, ``mp-decode``)."""
        code, r0, (z, corr0, products) = self.pursue(*self.per_member(x, keep))
        quadratic = (products * (z[..., :, None] * z[..., None, :])).sum((-2, -1))
        energy = r0.to(z.dtype).pow(2).sum(-1) - 2 * (z * corr0).sum(-1) + quadratic
        return (energy if self.stacked else energy.squeeze(0)), code

    def pursue(self, x: torch.Tensor, keep: torch.Tensor | None) -> tuple[Code, torch.Tensor, tuple[torch.Tensor, ...]]:
        """Alg. 1 on ``S x B x d`` inputs, ``r_0 = x - b_dec``: ``(code, r_0, support)``, ``support`` the
        ``(z, A r_0, A A^T)`` of :meth:`support`. For small dictionaries the correlations ``r_0 W^T`` and, in
        training, the Gram matrix are computed once, with autograd, and serve both the selection and the values."""
        if keep is not None:
            raise ValueError("Matching Pursuit has no pre-activations to mask; use mask_p: 0 with architecture mp")
        r0 = x - self.p(self.b_dec)[:, None, :]
        corr = gram = None
        if self.dense_products(r0.shape[1]):
            with torch.autocast(r0.device.type, enabled=False):
                w = self.p(self.W_dec).to(self._dtype)
                with torch.no_grad():  # selection reads all of it; the values only the picked entries (sparse backward)
                    corr = member_products(r0.to(self._dtype), w.transpose(1, 2))
                gram = member_products(w, w.transpose(1, 2)) if torch.is_grad_enabled() else self.gram()
        picks = self.select(r0, corr, gram)
        support = self.support(r0, picks, corr, gram)
        return Code(support[0].flatten(0, 1), picks.flatten(0, 1), self.m, stack=len(x)), r0, support

    def aux_scores(self, x: torch.Tensor, residual: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Correlation of the final residual with the dead atoms (MP's own selection score)."""
        return residual @ self.W_dec[latents].T
