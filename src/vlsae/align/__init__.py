"""Post-hoc alignment of modality-specific SAEs (HET §5, eqs. 5-7)."""

from .hungarian import Alignment, CoactivationStats, align_paired_sae, coactivation_stats, hungarian_permutation

__all__ = ["Alignment", "CoactivationStats", "align_paired_sae", "coactivation_stats", "hungarian_permutation"]
