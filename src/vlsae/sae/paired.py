"""Modality arrangements (HET §5): one shared SAE, or one SAE per modality with m/2 latents each.

A :class:`PairedSAE` exposes ``side("image")`` and ``side("text")``; for the shared arrangement
both return the same SAE, so training, alignment and metrics never branch on the arrangement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_path, write_json
from ..store import MODALITIES
from ..strict import from_dict
from .base import EncoderSAE, SparseAutoencoder
from .losses import aux_slug, build_aux_losses
from .registry import ARCHITECTURES, build_sae, check_params

ARRANGEMENTS = ("shared", "specific")
ENCODER_INITS = ("transpose", "linear")
DECODER_INITS = ("gaussian", "xavier")
WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass(frozen=True)
class SAESpec:
    """What to build: architecture, total latents ``m``, its parameters, the arrangement, the
    cross-modal auxiliary losses it trains with (``aux``, see :mod:`vlsae.sae.losses`), and how an
    encoder starts (``encoder_init``: ``transpose`` of the decoder, or PyTorch's ``linear`` default, the
    HET authors' code; :meth:`~vlsae.sae.base.EncoderSAE.init_linear_`) and its dictionary starts
    (``decoder_init``: unit-norm ``gaussian`` rows, or overcomplete's ``xavier``, the ISO authors' code;
    :meth:`~vlsae.sae.base.SparseAutoencoder.init_xavier_`)."""

    architecture: str = "topk"
    latents: int = 8192
    arrangement: str = "shared"
    unit_norm_decoder: bool = True
    params: dict = field(default_factory=lambda: {"k": 16})  # the schema's default: HET E.2's k
    aux: dict = field(default_factory=dict)
    encoder_init: str = "transpose"
    decoder_init: str = "gaussian"

    def __post_init__(self):
        if self.latents < 2:
            raise ValueError(f"latents must be >= 2, got {self.latents}")
        build_aux_losses(self.aux)
        if self.arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {ARRANGEMENTS}, got {self.arrangement!r}")
        if self.arrangement == "specific" and self.latents % 2:
            raise ValueError(f"modality-specific SAEs split latents in two; latents={self.latents} is odd")
        check_params(self.architecture, self.latents_per_sae, self.params)
        if self.encoder_init not in ENCODER_INITS:
            raise ValueError(f"encoder_init must be one of {ENCODER_INITS}, got {self.encoder_init!r}")
        if self.encoder_init != "transpose" and not issubclass(ARCHITECTURES[self.architecture], EncoderSAE):
            raise ValueError(f"encoder_init {self.encoder_init!r}: architecture {self.architecture!r} has no encoder")
        if self.decoder_init not in DECODER_INITS:
            raise ValueError(f"decoder_init must be one of {DECODER_INITS}, got {self.decoder_init!r}")
        if self.decoder_init != "gaussian" and self.encoder_init == "linear":
            raise ValueError("encoder_init 'linear' sets the decoder from the encoder; it takes decoder_init 'gaussian'")

    @property
    def latents_per_sae(self) -> int:
        """``m`` of each SAE: all latents when shared, half of them per modality when specific."""
        return self.latents if self.arrangement == "shared" else self.latents // 2

    @classmethod
    def from_dict(cls, data: dict, dim: int | None = None) -> "SAESpec":
        """The spec of ``data``; an ``expansion`` key instead of ``latents`` gives ``latents =
        expansion * dim`` (ISO App. A: "expansion 8" on a 512-d CLIP is 4096 latents)."""
        if "expansion" in data:
            if dim is None:
                raise ValueError("SAE spec: `expansion` needs the embedding dimension")
            data = {**{k: v for k, v in data.items() if k != "expansion"}, "latents": int(round(data["expansion"] * dim))}
        return from_dict(cls, data, "SAE spec")

    @property
    def slug(self) -> str:
        """Readable id, e.g. ``topk-k16-m2048-shared`` or ``mp-k16-m2048-shared-iso_energy0.0001``."""
        ps = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in sorted(self.params.items()))
        init = "" if self.encoder_init == "transpose" else f"init_{self.encoder_init}"
        dictionary = "" if self.decoder_init == "gaussian" else f"dict_{self.decoder_init}"
        parts = (self.architecture, ps, f"m{self.latents}", self.arrangement, aux_slug(self.aux), init, dictionary)
        return "-".join(p for p in parts if p)


class PairedSAE(nn.Module):
    def __init__(self, spec: SAESpec, d: int):
        super().__init__()
        self.spec, self.d = spec, d
        names = ("shared",) if spec.arrangement == "shared" else MODALITIES
        self.saes = nn.ModuleDict(
            {n: build_sae(spec.architecture, d, spec.latents_per_sae, spec.unit_norm_decoder, **spec.params) for n in names}
        )
        for sae in self.saes.values():
            if spec.decoder_init == "xavier":
                sae.init_xavier_()
            if spec.encoder_init == "linear":
                sae.init_linear_()

    def component_of(self, modality: str) -> str:
        """Name of the SAE that encodes ``modality``: ``shared``, or the modality itself."""
        return "shared" if self.spec.arrangement == "shared" else modality

    def side(self, modality: str) -> SparseAutoencoder:
        """The SAE that encodes ``modality`` (``image`` or ``text``)."""
        return self.saes[self.component_of(modality)]

    def components(self) -> list[SparseAutoencoder]:
        """The distinct SAEs (one if shared, two if modality-specific)."""
        return list(self.saes.values())

    def save(self, out_dir: str | Path, extra_config: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` atomically."""
        out_dir = Path(out_dir)
        with atomic_path(out_dir / WEIGHTS) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        write_json(out_dir / CONFIG, {"d": self.d, "sae": asdict(self.spec), **(extra_config or {})})


def load_paired_sae(sae_dir: str | Path, device: str = "cpu") -> PairedSAE:
    """Rebuild a trained :class:`PairedSAE` from its folder."""
    sae_dir = Path(sae_dir)
    cfg = json.loads((sae_dir / CONFIG).read_text())
    model = PairedSAE(SAESpec.from_dict(cfg["sae"]), cfg["d"])
    model.load_state_dict(load_file(str(sae_dir / WEIGHTS), device=device))
    return model.to(device).eval()
