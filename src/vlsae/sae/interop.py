"""SAELens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``), written and read back.

SAELens encodes ``act((x - b_dec) W_enc + b_enc)`` with ``W_enc`` of shape ``d_in x d_sae`` (ours is
its transpose) and decodes ``z W_dec + b_dec``. Architectures map one to one:

========================  ================================================================
vlsae                     SAELens
========================  ================================================================
``relu``                  ``standard`` (the L1 weight is training state and is not kept)
``topk``                  ``topk`` with ``rescale_acts_by_decoder_norm: false``
``jumprelu``              ``jumprelu``, ``threshold = exp(log_threshold)``
``batchtopk``             ``jumprelu`` with every threshold at the inference threshold (what
                          SAELens itself does with a trained BatchTopK)
``mp``, signed selection  ``matching_pursuit``, ``max_iterations: k``, ``residual_threshold: 0``,
                          ``stop_on_duplicate_support: false``; SAELens clips each step's
                          value at 0, so the two differ only on a step whose correlations are
                          all negative
========================  ================================================================

``mp`` with ``selection: absolute`` (ISO Alg. 1's ``argmax |w . r|``) has no SAELens counterpart and
is refused. A modality-specific pair is written as two SAELens folders, ``image/`` and ``text/``.
Reading accepts those architectures back, folds ``apply_b_dec_to_input: false`` into ``b_enc``, and
refuses what would change the codes (input normalisation, reshaping, non-unit atoms under decoder-norm
rescaling), naming the key. Only safetensors and JSON are read: nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, write_json
from ..store import MODALITIES
from .base import SparseAutoencoder
from .paired import PairedSAE, SAESpec

SAELENS_WEIGHTS, SAELENS_CONFIG = "sae_weights.safetensors", "cfg.json"
FORMATS = ("saelens",)


def _saelens_side(sae: SparseAutoencoder, spec: SAESpec) -> tuple[dict, dict]:
    """SAELens ``(cfg, tensors)`` of one SAE."""
    arch, params = spec.architecture, spec.params
    w_dec, b_dec = sae.W_dec.detach().float().cpu(), sae.b_dec.detach().float().cpu()
    tensors = {"W_dec": w_dec, "b_dec": b_dec}
    cfg = {"d_in": sae.d, "d_sae": sae.m, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "reshape_activations": "none", "metadata": {}}
    if arch == "mp":
        if sae.selection != "signed":
            raise ValueError("SAELens's matching_pursuit picks argmax w . r (selection: signed); this SAE uses "
                             "selection: absolute, which SAELens cannot represent")
        cfg.update(architecture="matching_pursuit", max_iterations=sae.k, residual_threshold=0.0,
                   stop_on_duplicate_support=False)
        return cfg, tensors
    tensors.update(W_enc=sae.W_enc.detach().float().cpu().T.contiguous(), b_enc=sae.b_enc.detach().float().cpu())
    if arch == "relu":
        cfg["architecture"] = "standard"
    elif arch == "topk":
        cfg.update(architecture="topk", k=params["k"], rescale_acts_by_decoder_norm=False)
    elif arch == "jumprelu":
        cfg["architecture"] = "jumprelu"
        tensors["threshold"] = sae.log_threshold.detach().float().cpu().exp()
    elif arch == "batchtopk":
        cfg["architecture"] = "jumprelu"
        tensors["threshold"] = torch.full((sae.m,), max(float(sae.threshold), 0.0))
    else:  # pragma: no cover - every registered architecture is handled above
        raise ValueError(f"no SAELens mapping for architecture {arch!r}")
    return cfg, tensors


def export_saelens(model: PairedSAE, out_dir: str | Path) -> list[Path]:
    """Write ``model`` as SAELens folder(s) under ``out_dir``: the folder itself for a shared SAE, else
    ``out_dir/image`` and ``out_dir/text``. Returns the folders written."""
    out_dir = Path(out_dir)
    sides = {"shared": out_dir} if model.spec.arrangement == "shared" else {m: out_dir / m for m in MODALITIES}
    for name, folder in sides.items():
        cfg, tensors = _saelens_side(model.saes[name], model.spec)
        cfg["metadata"] = {"vlsae_sae": model.spec.slug, "vlsae_component": name}
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / SAELENS_WEIGHTS) as tmp:
            save_file(tensors, str(tmp))
        write_json(folder / SAELENS_CONFIG, cfg)
    return list(sides.values())


def _refuse(cfg: dict, key: str, allowed, folder: Path) -> None:
    if cfg.get(key, allowed[0]) not in allowed:
        raise ValueError(f"{folder / SAELENS_CONFIG}: {key} = {cfg[key]!r} is not supported (only {list(allowed)})")


def _read_saelens_side(folder: Path) -> tuple[dict, dict]:
    """The ``(spec fields, state dict)`` of one SAELens folder, in vlsae's layout."""
    cfg = json.loads((folder / SAELENS_CONFIG).read_text())
    t = load_file(str(folder / SAELENS_WEIGHTS))
    for key, allowed in (("normalize_activations", ("none",)), ("reshape_activations", ("none",)),
                         ("architecture", ("standard", "topk", "jumprelu", "matching_pursuit"))):
        _refuse(cfg, key, allowed, folder)
    w_dec = t["W_dec"].float()
    unit = bool(torch.allclose(w_dec.norm(dim=1), torch.ones(w_dec.shape[0]), atol=1e-4))
    state = {"W_dec": w_dec, "b_dec": t["b_dec"].float()}
    arch = cfg["architecture"]
    if arch == "matching_pursuit":
        if not unit:
            raise ValueError(f"{folder}: matching_pursuit needs unit-norm decoder rows")
        if cfg.get("residual_threshold", 0.0) > 0 or cfg.get("stop_on_duplicate_support", False):
            raise ValueError(f"{folder / SAELENS_CONFIG}: only a fixed number of steps is supported "
                             "(residual_threshold 0, stop_on_duplicate_support false)")
        k = cfg.get("max_iterations") or cfg["d_in"]
        return {"architecture": "mp", "params": {"k": k, "selection": "signed", "pre_bias": bool(state["b_dec"].any())},
                "unit_norm_decoder": True}, state
    if cfg.get("rescale_acts_by_decoder_norm") and not unit:
        raise ValueError(f"{folder / SAELENS_CONFIG}: rescale_acts_by_decoder_norm with non-unit decoder rows is not supported")
    w_enc, b_enc = t["W_enc"].float().T.contiguous(), t["b_enc"].float()
    if not cfg.get("apply_b_dec_to_input", True):  # act(x W_enc + b_enc) = act((x - b_dec) W_enc + b_enc + b_dec W_enc)
        b_enc = b_enc + w_enc @ state["b_dec"]
    state.update(W_enc=w_enc, b_enc=b_enc)
    fields = {"unit_norm_decoder": unit}
    if arch == "standard":
        return {**fields, "architecture": "relu", "params": {"l1": 0.0}}, state
    if arch == "topk":
        return {**fields, "architecture": "topk", "params": {"k": cfg["k"]}}, state
    threshold = t["threshold"].float()
    if bool((threshold <= 0).any()):
        raise ValueError(f"{folder}: jumprelu thresholds must be > 0 (vlsae learns log thresholds)")
    state["log_threshold"] = threshold.log()
    return {**fields, "architecture": "jumprelu", "params": {"l0": 0.0}}, state


def import_saelens(folder: str | Path) -> PairedSAE:
    """A :class:`PairedSAE` from a SAELens folder (shared), or from a folder holding ``image/`` and ``text/``
    SAELens folders of the same architecture and size (modality-specific)."""
    folder = Path(folder)
    if (folder / SAELENS_CONFIG).exists():
        sides = {"shared": _read_saelens_side(folder)}
    elif all((folder / m / SAELENS_CONFIG).exists() for m in MODALITIES):
        sides = {m: _read_saelens_side(folder / m) for m in MODALITIES}
    else:
        raise FileNotFoundError(f"{folder}: no {SAELENS_CONFIG}, nor image/ and text/ folders holding one")
    fields = [f for f, _ in sides.values()]
    if any(f != fields[0] for f in fields):
        raise ValueError(f"{folder}: the image and text SAEs differ in architecture or parameters: {fields}")
    d, m = next(iter(sides.values()))[1]["W_dec"].shape[::-1]
    spec = SAESpec(**fields[0], latents=m * len(sides), arrangement="shared" if len(sides) == 1 else "specific")
    model = PairedSAE(spec, d)
    state = {f"saes.{name}.{key}": value for name, (_, tensors) in sides.items() for key, value in tensors.items()}
    for name, sae in model.saes.items():  # buffers the SAELens file has no value for keep their start
        for key, value in sae.state_dict().items():
            state.setdefault(f"saes.{name}.{key}", value)
    model.load_state_dict(state)
    return model.eval()
