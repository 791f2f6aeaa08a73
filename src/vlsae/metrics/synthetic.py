"""The five synthetic metrics of HET App. E.3, formulas (i)-(v).

For a shared SAE both modalities go through the same encoder/decoder ``W``; for
modality-specific SAEs the image side uses ``V`` and the text side ``W`` (after post-hoc
alignment the text latents, and hence its decoder atoms, are re-indexed by ``perm``). The cosine
of a zero vector is taken as 0, so an input that activates no latent counts as fully misaligned.

Two metrics have the HET authors' definitions as options (:class:`HetMetrics`): ``reconstruction: fvu``
is their eval loss, the fraction of variance unexplained per batch of 256 pairs, averaged over batches
and modalities; ``feature_recovery: top1`` is their ``compute_gre_top1``, which encodes each feature
with the top-1 latent only (and, as coded, without subtracting the pre-encoder bias ``b_dec``). Both
definitions are always reported too (:data:`DEFINITIONS`), so a claim can be checked under each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..sae import PairedSAE
from ..store import EmbeddingStore
from ..synth.het import IMAGE_ONLY, TEXT_ONLY, GroundTruth, HetDGP, sample_pair_codes

METRICS = ("reconstruction_error", "feature_recovery_error", "alignment_error", "feature_alignment_error", "collapse_rate")
DEFINITIONS = ("reconstruction_error_mse", "reconstruction_error_fvu", "feature_recovery_error_topk",
               "feature_recovery_error_top1")
FVU_BATCH = 256  # the HET authors' evaluation batch (their training batch size)


@dataclass(frozen=True)
class HetMetrics:
    """Definitions of metrics (i) and (ii): HET E.3 (``mse``, ``topk``; the defaults) or the authors' code."""

    reconstruction: str = "mse"
    feature_recovery: str = "topk"

    def __post_init__(self):
        if self.reconstruction not in ("mse", "fvu") or self.feature_recovery not in ("topk", "top1"):
            raise ValueError(f"metrics need reconstruction in (mse, fvu) and feature_recovery in (topk, top1); got "
                             f"{self.reconstruction!r}, {self.feature_recovery!r}")


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, 0 where either row is zero."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    denom = na * nb
    return np.divide((a * b).sum(1), denom, out=np.zeros_like(denom), where=denom > 0)


def squared_error(a: np.ndarray, a_hat: np.ndarray) -> np.ndarray:
    """``||a - a_hat||_2^2`` per row."""
    return ((a - a_hat) ** 2).sum(1)


def reconstruction_error(x, x_hat, y, y_hat) -> float:
    """(i) ``1/2 E[||x - x~||^2 + ||y - y~||^2]``."""
    return 0.5 * float(squared_error(x, x_hat).mean() + squared_error(y, y_hat).mean())


def feature_recovery_error(phi, phi_hat, psi, psi_hat) -> float:
    """(ii) ``1/(2 n_S) sum_i ||psi_i - psi~_i||^2 + ||phi_i - phi~_i||^2`` (rows = shared concepts)."""
    return 0.5 * float(squared_error(phi, phi_hat).mean() + squared_error(psi, psi_hat).mean())


def alignment_error(z_image, z_text) -> float:
    """(iii) ``1 - E[cos(z~(x), z~(y))]`` over paired inputs (also (iv) on feature pairs)."""
    return 1.0 - float(row_cosine(z_image, z_text).mean())


def true_code_alignment_error(dgp: HetDGP, n_samples: int = 100_000, seed: int = 0, chunk: int = 2000) -> float:
    """(iii) on the ground-truth codes: ``z_I`` on the concepts an image shows (shared and image-only),
    ``z_T`` on those its caption shows (shared and text-only); ``z_I = z_T = z`` under HET eq. 1.

    This is the alignment error of an SAE that recovers every concept exactly; a lower value means
    codes that no longer carry what differs between an image and its caption. Monte Carlo over the
    code distribution of HET E.2 (the feature directions do not enter), drawn in chunks of ``chunk``.
    """
    rng, types, cosines = np.random.default_rng(seed), dgp.concept_types(), []
    for start in range(0, n_samples, chunk):
        z_image, z_text = sample_pair_codes(dgp, min(chunk, n_samples - start), rng)
        cosines.append(row_cosine(z_image * (types != TEXT_ONLY), z_text * (types != IMAGE_ONLY)))
    return 1.0 - float(np.concatenate(cosines).mean())


def collapse_rate(atoms_image: np.ndarray, atoms_text: np.ndarray, phi: np.ndarray, psi: np.ndarray) -> float:
    """(v) fraction of shared concepts with ``argmax_j cos(w_j, phi_i) = argmax_j cos(w'_j, psi_i)``.

    ``atoms_*`` are ``m x d`` decoder rows (any norm), ``phi``/``psi`` are ``n_S x d``.
    """
    def nearest(atoms, feats):
        unit = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-12)
        return np.argmax(feats @ unit.T, axis=1)

    return float((nearest(atoms_image, phi) == nearest(atoms_text, psi)).mean())


@torch.no_grad()
def _run(model: PairedSAE, side: str, inputs: np.ndarray, perm: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruction and dense code of ``inputs`` through ``side``; text codes re-indexed by ``perm``.

    ``perm`` is only ever given for modality-specific pairs (:func:`evaluate_het` checks).
    """
    sae = model.side(side)
    x_hat, code = sae(torch.as_tensor(inputs, dtype=torch.float32))
    z = code.dense().numpy()
    if side == "text" and perm is not None:
        z = z[:, perm]
    return x_hat.numpy(), z


def fvu(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Fraction of variance unexplained of one batch: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``."""
    return float(squared_error(x, x_hat).sum() / ((x - x.mean(0)) ** 2).sum())


@torch.no_grad()
def top1_reconstruction(model: PairedSAE, side: str, inputs: np.ndarray) -> np.ndarray:
    """The authors' ``compute_gre_top1``: ``z = top1(ReLU(W_enc g + b_enc))``, ``g_hat = z W_dec + b_dec``
    (no ``b_dec`` subtracted before the encoder, as coded)."""
    sae = model.side(side)
    g = torch.as_tensor(inputs, dtype=torch.float32)
    pre = torch.relu(g @ sae.W_enc.T + sae.b_enc)
    value, index = pre.max(1)
    return (value[:, None] * sae.W_dec[index] + sae.b_dec).numpy()


def het_methods(model: PairedSAE, alignment_perm: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """Figs. 5-6's methods of one trained SAE: its arrangement and auxiliary losses (``shared + iso_energy``,
    ``modality-specific``) and, for a modality-specific pair with an alignment, ``... + post-hoc``."""
    spec = model.spec
    name = " + ".join(["shared" if spec.arrangement == "shared" else "modality-specific", *sorted(spec.aux)])
    methods = {name: None}
    if spec.arrangement == "specific" and alignment_perm is not None:
        methods[f"{name} + post-hoc"] = alignment_perm
    return methods


def evaluate_het(model: PairedSAE, gt: GroundTruth, eval_store: EmbeddingStore, perm: np.ndarray | None = None,
                 metrics: HetMetrics = HetMetrics()) -> dict[str, float]:
    """All five metrics of one trained model, streaming the evaluation store in batches of ``FVU_BATCH``;
    (i) and (ii) as ``metrics`` defines them, and both definitions of each under their own names
    (``reconstruction_error_mse``, ``_fvu``; ``feature_recovery_error_topk``, ``_top1``).

    ``perm`` (post-hoc alignment) re-indexes the text SAE of a modality-specific pair.
    """
    if perm is not None and model.spec.arrangement != "specific":
        raise ValueError("a post-hoc permutation applies only to a modality-specific SAE pair")
    model = model.cpu().eval()
    n, mse_sum, fvu_sum, cos_sum, batches = 0, 0.0, 0.0, 0.0, 0
    for batch in eval_store.iter_batches(FVU_BATCH):
        x_hat, zx = _run(model, "image", batch.image, perm)
        y_hat, zy = _run(model, "text", batch.text, perm)
        mse_sum += reconstruction_error(batch.image, x_hat, batch.text, y_hat) * len(batch)
        fvu_sum += 0.5 * (fvu(batch.image, x_hat) + fvu(batch.text, y_hat))
        cos_sum += row_cosine(zx, zy).sum()
        n += len(batch)
        batches += 1
    shared = gt.shared
    phi, psi = gt.phi[:, shared].T, gt.psi[:, shared].T
    phi_hat, z_phi = _run(model, "image", phi, perm)
    psi_hat, z_psi = _run(model, "text", psi, perm)
    top1 = top1_reconstruction(model, "image", phi), top1_reconstruction(model, "text", psi)
    atoms_text = model.side("text").W_dec.detach().numpy()
    if perm is not None:
        atoms_text = atoms_text[perm]
    definitions = {
        "reconstruction_error_mse": mse_sum / n,
        "reconstruction_error_fvu": fvu_sum / batches,
        "feature_recovery_error_topk": feature_recovery_error(phi, phi_hat, psi, psi_hat),
        "feature_recovery_error_top1": feature_recovery_error(phi, top1[0], psi, top1[1]),
    }
    return {
        "reconstruction_error": definitions[f"reconstruction_error_{metrics.reconstruction}"],
        "feature_recovery_error": definitions[f"feature_recovery_error_{metrics.feature_recovery}"],
        "alignment_error": 1.0 - cos_sum / n,
        "feature_alignment_error": alignment_error(z_phi, z_psi),
        "collapse_rate": collapse_rate(model.side("image").W_dec.detach().numpy(), atoms_text, phi, psi),
        **definitions,
    }
