"""The study design, from the validated config: pure functions, no paths to outputs, no Snakemake.

Snakemake's rules (``workflow/rules/common.smk``) call these to check a config before anything runs
(so that ``snakemake -n`` fails at once, naming the key) and to know what to train where.
"""

from __future__ import annotations

from pathlib import Path

from .embed.readers import check_options
from .sae import SAESpec


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key {key}: {message}")


def sae_spec(data: dict, key: str, dim: int | None = None) -> SAESpec:
    """The :class:`~vlsae.sae.SAESpec` of config ``data``, or a :class:`ConfigError` naming ``key``."""
    try:
        return SAESpec.from_dict(data, dim)
    except ValueError as e:
        raise ConfigError(key, str(e)) from e


def check_results(results: str, project: str | Path, allow_external: bool) -> None:
    """``results`` must be a folder inside the project: not empty, no ``..`` part, and not an absolute
    path outside ``project`` unless ``allow_external_results`` says so (a scratch disk on a cluster)."""
    if not results.strip():
        raise ConfigError("results", "is empty")
    path = Path(results)
    if ".." in path.parts:
        raise ConfigError("results", f"{results!r} contains '..'")
    if path.is_absolute() and not allow_external:
        project = Path(project).resolve()
        if project != path.resolve() and project not in path.resolve().parents:
            raise ConfigError("results", f"{results!r} lies outside the working directory {str(project)!r}; set "
                                         "allow_external_results: true to write there (on the command line: "
                                         "--config allow_external_results=True)")


def check_datasets(datasets: dict) -> None:
    """Every dataset's reader options are ones its format's reader takes."""
    for name, entry in datasets.items():
        try:
            check_options(entry["format"], entry.get("options", {}))
        except ValueError as e:
            raise ConfigError(f"datasets.{name}.options", str(e)) from e


def real_embeddings(embed: dict, models: dict, datasets: dict) -> bool:
    """Whether some store pairs a real encoder with a real dataset (neither a toy one the workflow builds):
    only then are the real-data claims testable."""
    return (any("toy" not in models[m] for m in embed["models"])
            and any("toy" not in datasets[d] for d in embed["datasets"]))


# Peak memory of the rules that hold m x m matrices, per m^2 of their largest SAE (benchmarks/metrics_memory.py
# measured the fits: README, "Guarantees"); a base for the process, its libraries and one shard.
BASE_MB = 2000
ALIGN_BYTES_PER_PAIR = 20     # measured 9.6: the float64 cross moment turned into C in place; +8 for the live block
                              # the Hungarian assignment copies when some latents are dead
EVALUATE_BYTES_PER_PAIR = 48  # measured 42.1: FDA's exact OT (POT's network simplex over all m^2 arcs) dominates
NOMINAL_DIM = 1024            # the widest encoders of the studies (SigLIP2-L); used before a store exists


def square_mb(latents: list[int], bytes_per_pair: float) -> int:
    """Memory a rule declares for SAEs of ``latents`` (per SAE) that it handles one at a time."""
    return int(BASE_MB + bytes_per_pair * max(latents, default=0) ** 2 / 2 ** 20)


def train_mb(specs: list[SAESpec], dim: int, shard_pairs: int) -> int:
    """Memory of one training pass: per SAE its parameters with their gradients and two AdamW moments
    (``4 x 4`` bytes per parameter), plus the largest Matching Pursuit Gram matrix (``4 m^2`` bytes,
    recomputed each step) and one shuffled shard of paired embeddings (three copies)."""
    params = sum((1 if s.arrangement == "shared" else 2) * (2 * s.latents_per_sae * dim + s.latents_per_sae + dim) * 16
                 for s in specs)
    gram = max((4 * s.latents_per_sae ** 2 for s in specs if s.architecture == "mp"), default=0)
    return int(BASE_MB + (params + gram + 3 * 2 * shard_pairs * dim * 4) / 2 ** 20)
