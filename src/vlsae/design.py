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
