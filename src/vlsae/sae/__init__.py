"""The SAE zoo (docs/methods.md, "SAEs and their training").

Each architecture is one module defining a :class:`~vlsae.sae.base.SparseAutoencoder`
subclass and registering it in :data:`ARCHITECTURES`; :mod:`vlsae.sae.losses` holds the
cross-modal auxiliary losses, :mod:`vlsae.sae.paired` arranges SAEs as shared or
modality-specific, and :mod:`vlsae.sae.train` trains any of them.
"""

from .base import Code, EncoderSAE, SparseAutoencoder
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReLUSAE
from .mp import MatchingPursuitSAE
from .paired import ARRANGEMENTS, PairedSAE, SAESpec, load_paired_sae
from .registry import ARCHITECTURES, build_sae
from .relu import ReLUSAE
from .topk import TopKSAE

__all__ = [
    "ARCHITECTURES", "ARRANGEMENTS", "BatchTopKSAE", "Code", "EncoderSAE", "JumpReLUSAE", "MatchingPursuitSAE",
    "PairedSAE", "ReLUSAE", "SAESpec", "SparseAutoencoder", "TopKSAE", "build_sae", "load_paired_sae",
]
