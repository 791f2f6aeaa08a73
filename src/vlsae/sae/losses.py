"""Cross-modal auxiliary losses on the codes of *paired* image/text batches.

Each loss is a frozen dataclass with its ``weight`` and options; a config names them under
``aux`` (``{"iso_energy": {"weight": 1e-4}, "group_sparse": {"weight": 0.05}}``) and the trainer
adds ``weight * loss(z_img, z_txt)`` to the reconstruction objective. For a modality-specific pair,
latent ``j`` of the image SAE is paired with latent ``j`` of the text SAE. Each loss is a mean over the
batch, one per member of a stack (:class:`~vlsae.sae.base.Code`): shape ``S``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..strict import from_dict
from .base import Code, member_mean


def top1_index(code: Code) -> torch.Tensor:
    """Per sample, the latent of the code's largest (signed) entry on the dense code, where repeated
    Matching Pursuit indices add up; -1 where no entry is positive (the dense argmax then falls on a
    zero entry, whose masking changes nothing)."""
    if code.indices is None:
        value, index = code.values.max(-1)
    else:
        value, slot = _at(_same(code, code), code).max(-1)
        index = code.indices.gather(1, slot[:, None])[:, 0]
    return torch.where(value > 0, index, torch.full_like(index, -1))


def without_latents(code: Code, drop: torch.Tensor) -> Code:
    """``code`` with every entry of the latents ``drop`` (``B x j``, -1 for none) set to zero."""
    if code.indices is None:
        hit = torch.zeros(code.values.shape[0], code.m + 1, device=code.values.device)
        hit.scatter_(1, drop + 1, 1.0)                       # column 0 collects the -1s
        return Code(code.values * (1 - hit[:, 1:]), None, code.m, stack=code.stack)
    keep = ~(code.indices[:, :, None] == drop[:, None, :]).any(-1)
    return Code(code.values * keep, code.indices, code.m, stack=code.stack)


def mask_top1(z_img: Code, z_txt: Code) -> tuple[Code, Code]:
    """The masking of both authors' codes (ISO ``src/losses.py`` ``alignment_penalty``, HET
    ``iso_alignment_penalty``): the top-1 latent of the image code and that of the text code are both
    zeroed in *both* codes."""
    drop = torch.stack([top1_index(z_img), top1_index(z_txt)], dim=1)
    return without_latents(z_img, drop), without_latents(z_txt, drop)


def inner(a: Code, b: Code) -> torch.Tensor:
    """Per-sample ``<z_a, z_b>``; sparse codes meet on equal indices (``B x k x k``), never densely."""
    if a.indices is None or b.indices is None:
        return (a.dense() * b.dense()).sum(-1)
    return (_at(_same(a, b), b) * a.values).sum(-1)


def _same(a: Code, b: Code) -> torch.Tensor:
    """``B x k_a x k_b``: which entries of sparse ``a`` and ``b`` share an index."""
    return a.indices[:, :, None] == b.indices[:, None, :]


def _at(same: torch.Tensor, b: Code) -> torch.Tensor:
    """``B x k_a``: the dense value of ``b`` at each index of ``a`` (repeats of ``b`` add up)."""
    return (same * b.values[:, None, :]).sum(-1)


def _safe_norm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sqrt(a^2 + b^2)``, with gradient 0 (not NaN) where both are 0."""
    squares = a.square() + b.square()
    active = squares > 0
    return torch.where(active, squares, torch.ones_like(squares)).sqrt() * active


@dataclass(frozen=True)
class IsoEnergy:
    """SAE-A alignment loss (ISO App. B, eq. 4): ``L_align = -(1/b) Tr(Zt_img Zt_txt^T)``.

    ``Zt`` are the l2-normalised codes, so the loss is minus the mean cosine between paired codes.
    ``normalize=False`` gives the raw inner product ``-(1/b) sum_b z_img . z_txt`` analysed in HET
    Prop. 4. ``mask_top1`` first zeroes, in both codes, the top-1 latent of the image code and that of
    the text code (:func:`mask_top1`), as both authors' codes do.
    """

    weight: float
    mask_top1: bool = False
    normalize: bool = True
    mask_p = 0.0

    def __call__(self, z_img: Code, z_txt: Code) -> torch.Tensor:
        if self.mask_top1:
            z_img, z_txt = mask_top1(z_img, z_txt)
        dot = inner(z_img, z_txt)
        if self.normalize:
            norms = inner(z_img, z_img).clamp_min(1e-12).sqrt() * inner(z_txt, z_txt).clamp_min(1e-12).sqrt()
            dot = dot / norms
        return -member_mean(dot, z_img.stack)


@dataclass(frozen=True)
class GroupSparse:
    """Group-sparse loss (HET Prop. 3): ``sum_j sqrt(z_img,j^2 + z_txt,j^2)``, averaged over the batch.

    ``mask_p > 0`` adds the original's shared random mask: for each pair, each latent's
    pre-activation is zeroed with probability ``mask_p`` in *both* modalities (encoder SAEs only).
    """

    weight: float
    mask_p: float = 0.0

    def __post_init__(self):
        if not 0 <= self.mask_p < 1:
            raise ValueError(f"group_sparse.mask_p must lie in [0, 1), got {self.mask_p}")

    def __call__(self, z_img: Code, z_txt: Code) -> torch.Tensor:
        if z_img.indices is None or z_txt.indices is None:
            return member_mean(_safe_norm(z_img.dense(), z_txt.dense()).sum(-1), z_img.stack)
        return member_mean(self._sparse(z_img, z_txt), z_img.stack)

    @staticmethod
    def _sparse(z_img: Code, z_txt: Code) -> torch.Tensor:
        """Per-sample loss from the ``B x k`` supports, never a ``B x m`` code.

        Each latent with a non-zero entry on the image support contributes ``sqrt(I_j^2 + T_j^2)`` (``I_j``, ``T_j``
        the dense values: all entries of index ``j`` summed), split evenly over its non-zero image entries; each
        latent without one contributes ``|T_j|``, split likewise over its non-zero text entries. Entries of value 0
        (BatchTopK's padding, ReLU'd zeros) carry no share but still get the dense gradient, so neither the loss
        nor its gradient depends on how far a code is padded (a stack pads to its widest member).
        """
        img_img, img_txt, txt_txt = _same(z_img, z_img), _same(z_img, z_txt), _same(z_txt, z_txt)
        live_img, live_txt = z_img.values != 0, z_txt.values != 0
        on_img = _safe_norm(_at(img_img, z_img), _at(img_txt, z_txt)) * live_img / _live_count(img_img, live_img)
        txt_only = ~(img_txt & live_img[:, :, None]).any(1)
        on_txt = _at(txt_txt, z_txt).abs() * (txt_only & live_txt) / _live_count(txt_txt, live_txt)
        return on_img.sum(-1) + on_txt.sum(-1)


def _live_count(same: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """``B x k``: how many non-zero entries share each entry's index (at least 1)."""
    return (same & live[:, None, :]).sum(-1).clamp_min(1)


AUX_LOSSES = {"iso_energy": IsoEnergy, "group_sparse": GroupSparse}


def build_aux_losses(aux: dict) -> dict[str, IsoEnergy | GroupSparse]:
    """``{"iso_energy": {"weight": ...}, ...}`` -> loss objects; unknown names or keys fail by name."""
    out = {}
    for name, options in aux.items():
        if name not in AUX_LOSSES:
            raise ValueError(f"unknown auxiliary loss {name!r}; choose from {sorted(AUX_LOSSES)}")
        if "weight" not in options:
            raise ValueError(f"auxiliary loss {name!r} needs a 'weight'")
        out[name] = from_dict(AUX_LOSSES[name], options, f"aux loss {name!r}")
    return out


def aux_slug(aux: dict) -> str:
    """Readable suffix naming each loss, its weight and its non-default options.

    ``{"iso_energy": {"weight": 0.03, "mask_top1": True}}`` -> ``iso_energy0.03-mask_top1True``.
    """
    parts = []
    for name, options in sorted(aux.items()):
        defaults = {f.name: f.default for f in fields(AUX_LOSSES[name])}
        extra = "".join(f"-{k}{options[k]}" for k in sorted(options) if k != "weight" and options[k] != defaults[k])
        parts.append(f"{name}{options['weight']:g}{extra}")
    return "-".join(parts)
