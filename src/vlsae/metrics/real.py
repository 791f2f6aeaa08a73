"""Real-data evaluation of one embedding store: the encoder's metrics and every trained SAE's.

Both return tidy rows ``{"metric", "value", ...}``. Everything streams over the store in batches,
except what needs a population at once, which reads the store's first pairs:

* ``sample_pairs`` pairs: the Wasserstein gap, the linear probe, p_acc, C-insertion/deletion;
* ``retrieval_pairs`` pairs: COCO-protocol retrieval (the Karpathy test split has 25k captions).

The modality metrics (ISO E.2.2) are defined for one dictionary, so they are computed for shared
SAEs; modality-specific pairs get the general metrics per component and the HET retrieval metrics,
before and after post-hoc alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from tqdm import tqdm

from ..align import Alignment
from ..sae import PairedSAE
from ..sae.base import Code
from ..store import EmbeddingStore
from ..strict import from_dict
from . import encoder, heterogeneity, modality, sae as general

SIDES = ("image", "text")


@dataclass(frozen=True)
class EvalOptions:
    """Evaluation knobs; each paper ambiguity resolved here is documented where it is used."""

    tau: float = 0.05
    batch_size: int = 1024
    recall_batch: int = 256
    sample_pairs: int = 5000
    retrieval_pairs: int = 25000
    ot_solver: str = "emd"
    fda_denominator: str = "printed"

    @classmethod
    def from_dict(cls, data: dict) -> "EvalOptions":
        return from_dict(cls, data, "evaluation options")


def _head(store: EmbeddingStore, n: int):
    return next(store.iter_batches(min(n, len(store))))


def _labels(store: EmbeddingStore) -> np.ndarray | None:
    """Class labels of an ImageNet-format store (its text side is the class prompt ensemble)."""
    if store.metadata.get("dataset", {}).get("format") != "imagenet":
        return None
    return store.source_ids("text")


def evaluate_encoder(store: EmbeddingStore, opts: EvalOptions, progress: bool = True) -> list[dict]:
    """ISO Table 6 (and HET's encoder rows): recall@1/5 in batches of 256, DiM and W gaps, COCO-protocol
    retrieval, the cosine populations of Fig. 11 and, on ImageNet-format stores, zero-shot and
    linear-probe accuracy."""
    rows, sums, n = [], np.zeros((2, store.dim)), 0
    hits = {1: 0.0, 5: 0.0}
    for batch in tqdm(store.iter_batches(opts.recall_batch), total=store.n_batches(opts.recall_batch),
                      desc="encoder", disable=not progress, mininterval=2.0):
        for k in hits:
            hits[k] += encoder.recall_at_k(batch.image, batch.text, k, opts.recall_batch) * len(batch)
        sums += np.stack([batch.image.sum(0), batch.text.sum(0)])
        n += len(batch)
    rows += [{"metric": f"recall@{k}", "value": h / n} for k, h in hits.items()]
    rows.append({"metric": "gap_dim", "value": float(np.linalg.norm(sums[0] / n - sums[1] / n))})
    head = _head(store, opts.sample_pairs)
    rows.append({"metric": "gap_wasserstein", "value": encoder.wasserstein(head.image, head.text)})
    rows += [{"metric": f"cosine_{name}", "value": float(values.mean())}
             for name, values in encoder.cosine_samples(head.image, head.text).items()]
    labels = _labels(store)
    if labels is None:
        retrieval = _head(store, opts.retrieval_pairs)
        ids = store.source_ids("image")[:len(retrieval)]
        rows += [{"metric": m, "value": v} for m, v in heterogeneity.retrieval_recall(retrieval.image, retrieval.text, ids).items()]
    else:
        rows += _classification_rows(store, labels, opts)
    return rows


def _classification_rows(store: EmbeddingStore, labels: np.ndarray, opts: EvalOptions) -> list[dict]:
    """Zero-shot top-1/top-5 over the whole store, and a linear probe fit on every other pair of the
    first ``sample_pairs`` and scored on the rest (ISO E.1)."""
    classes, first = np.unique(labels, return_index=True)
    class_embeddings = _class_rows(store, first, opts.batch_size)
    correct = {1: 0.0, 5: 0.0}
    start = 0
    for batch in store.iter_batches(opts.batch_size):
        part = labels[start:start + len(batch)]
        for k in correct:
            correct[k] += encoder.zero_shot_accuracy(batch.image, part, class_embeddings, classes, k) * len(batch)
        start += len(batch)
    head = _head(store, opts.sample_pairs)
    head_labels = labels[:len(head)]
    probe = encoder.linear_probe_accuracy(head.image[::2], head_labels[::2], head.image[1::2], head_labels[1::2])
    return [{"metric": f"zero_shot@{k}", "value": c / len(store)} for k, c in correct.items()] + \
        [{"metric": "linear_probe", "value": probe}]


def _class_rows(store: EmbeddingStore, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Text rows at the given pair indices, streamed."""
    out, start, wanted = {}, 0, set(rows.tolist())
    for batch in store.iter_batches(batch_size):
        for i in range(len(batch)):
            if start + i in wanted:
                out[start + i] = batch.text[i]
        start += len(batch)
    return np.stack([out[i] for i in rows])


class _Run:
    """One paired SAE on a device: codes and reconstructions of either side as numpy."""

    def __init__(self, model: PairedSAE, device: torch.device):
        self.model, self.device = model.to(device).eval(), device

    def atoms(self, side: str) -> np.ndarray:
        return self.model.side(side).W_dec.detach().float().cpu().numpy()

    @torch.no_grad()
    def __call__(self, side: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x_hat, code = self.model.side(side)(torch.from_numpy(x).to(self.device))
        return x_hat.float().cpu().numpy(), code.dense().float().cpu().numpy()


def _sparse_gram(z: np.ndarray) -> np.ndarray:
    s = sparse.csr_matrix(z, dtype=np.float64)
    return (s.T @ s).toarray()


def _sparse_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (sparse.csr_matrix(a, dtype=np.float64).T @ sparse.csr_matrix(b, dtype=np.float64)).toarray()


def _insertion_deletion(run: _Run, side: str, x: np.ndarray, chunk: int = 256) -> tuple[float, float]:
    """Mean C-insertion and C-deletion over ``x`` (the support of each code gathered, then scored)."""
    atoms, bias = run.atoms(side), run.model.side(side).b_dec.detach().float().cpu().numpy()
    ins, dele = [], []
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        _, z = run(side, part)
        width = max(int((z != 0).sum(1).max()), 1)
        idx = np.argsort(-np.abs(z), axis=1, kind="stable")[:, :width]
        i, d = general.insertion_deletion(part, np.take_along_axis(z, idx, 1), atoms[idx], bias)
        ins.append(i)
        dele.append(d)
    return float(np.concatenate(ins).mean()), float(np.concatenate(dele).mean())


def _codes(run: _Run, side: str, x: np.ndarray, perm: np.ndarray | None, batch: int) -> sparse.csr_matrix:
    parts = [run(side, x[s:s + batch])[1] for s in range(0, len(x), batch)]
    z = np.concatenate(parts)
    return sparse.csr_matrix(z[:, perm] if perm is not None else z)


def evaluate_sae(model: PairedSAE, store: EmbeddingStore, alignment: Alignment | None, opts: EvalOptions,
                 device: torch.device, progress: bool = True) -> list[dict]:
    """Every metric of one trained SAE on ``store``; rows carry a ``method`` (``""`` or ``post-hoc``)."""
    run = _Run(model, device)
    components = {side: model.component_of(side) for side in SIDES}
    shared = model.spec.arrangement == "shared"
    means = np.zeros((2, store.dim))
    for batch in store.iter_batches(opts.batch_size):
        means += np.stack([batch.image.sum(0), batch.text.sum(0)])
    means /= len(store)
    recon = {side: general.ReconstructionStats(mean=means[i]) for i, side in enumerate(SIDES)}
    energy_sum = {side: np.zeros(model.side(side).m) for side in SIDES}
    grams = {c: np.zeros((model.side(s).m,) * 2) for s, c in components.items()}
    cross = np.zeros((model.side("image").m, model.side("text").m))
    for batch in tqdm(store.iter_batches(opts.batch_size), total=store.n_batches(opts.batch_size),
                      desc="sae metrics", disable=not progress, mininterval=2.0):
        codes = {}
        for side in SIDES:
            x = getattr(batch, side)
            x_hat, z = run(side, x)
            recon[side].update(x, x_hat, z)
            energy_sum[side] += (z.astype(np.float64) ** 2).sum(0)
            grams[components[side]] += _sparse_gram(z)
            codes[side] = z
        cross += _sparse_cross(codes["image"], codes["text"])
    energy = {side: energy_sum[side] / len(store) for side in SIDES}
    rows = []

    def add(metric, value, **keys):
        rows.append({"metric": metric, "value": float(value), "method": keys.get("method", ""),
                     "component": keys.get("component", "all")})

    head = _head(store, opts.sample_pairs)
    for side in SIDES:
        for metric, value in recon[side].result().items():
            add(metric, value, component=side)
        ins, dele = _insertion_deletion(run, side, getattr(head, side))
        add("c_insertion", ins, component=side)
        add("c_deletion", dele, component=side)
    for side, component in components.items():
        if side == "text" and shared:
            continue
        e = (energy["image"] + energy["text"]) / 2 if shared else energy[side]
        for metric, value in {**general.dictionary_structure(run.atoms(side), e),
                              **general.coactivation_structure(grams[component], run.atoms(side))}.items():
            add(metric, value, component=component)
    if shared:
        for metric, value in _modality_rows(run, store, energy, cross, head, opts).items():
            add(metric, value)
        if alignment is not None:
            add("self_match_rate", heterogeneity.self_match_rate(alignment.perm, alignment.matched))
    methods = {"": None}
    if alignment is not None and not shared:
        methods["post-hoc"] = alignment.perm
    for method, perm in methods.items():
        for metric, value in _het_rows(run, store, perm, opts).items():
            add(metric, value, method=method)
    return rows


def _modality_rows(run: _Run, store: EmbeddingStore, energy: dict, cross: np.ndarray, head, opts: EvalOptions) -> dict:
    """ISO E.2.2 on one dictionary: share of bimodal latents and of their energy, p_acc, rho, FDA, delta_r@1."""
    atoms = run.atoms("image")
    atoms = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-12)
    total = (energy["image"] + energy["text"]) / 2
    live = total > 0
    mu = modality.modality_score(energy["image"], energy["text"])
    bimodal = modality.bimodal_mask(mu, opts.tau)
    accuracy = np.zeros(len(atoms))
    accuracy[live] = modality.probe_accuracy(atoms[live], head.image, head.text)
    plan = modality.transport_plan(energy["image"], energy["text"], atoms, solver=opts.ot_solver)
    mask = torch.from_numpy(bimodal.astype(np.float32)).to(run.device)
    full = bimodal_only = 0.0
    for batch in store.iter_batches(opts.recall_batch):
        recon = {}
        for side in SIDES:
            sae = run.model.side(side)
            with torch.no_grad():
                code = sae.encode(torch.from_numpy(getattr(batch, side)).to(run.device))
                dense = code.dense()
                recon[side] = (sae.decode(Code(dense, None, code.m)).float().cpu().numpy(),
                               sae.decode(Code(dense * mask, None, code.m)).float().cpu().numpy())
        unit = [_unit(recon[s][j]) for j in (0, 1) for s in SIDES]
        full += encoder.recall_at_k(unit[0], unit[1], 1, opts.recall_batch) * len(batch)
        bimodal_only += encoder.recall_at_k(unit[2], unit[3], 1, opts.recall_batch) * len(batch)
    return {"live_latents": live.sum(), "bimodal_share": bimodal[live].mean() if live.any() else 0.0,
            "bimodal_energy_share": (bimodal * total).sum() / total.sum(),
            "p_acc": modality.probing_score(accuracy[live], bimodal[live], total[live]),
            "rho": modality.functional_alignment(cross / len(store), atoms, bimodal),
            "fda": modality.fda(plan, atoms, bimodal, total, opts.fda_denominator),
            "delta_r@1": (full - bimodal_only) / len(store)}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _het_rows(run: _Run, store: EmbeddingStore, perm: np.ndarray | None, opts: EvalOptions) -> dict:
    """HET Table 1 on latent codes: COCO-protocol retrieval, or zero-shot on an ImageNet-format store.
    ``perm`` re-indexes the text codes (post-hoc alignment)."""
    labels = _labels(store)
    if labels is None:
        head = _head(store, opts.retrieval_pairs)
        image = _codes(run, "image", head.image, None, opts.batch_size)
        text = _codes(run, "text", head.text, perm, opts.batch_size)
        return heterogeneity.retrieval_recall(image, text, store.source_ids("image")[:len(head)])
    classes, first = np.unique(labels, return_index=True)
    class_codes = _codes(run, "text", _class_rows(store, first, opts.batch_size), perm, opts.batch_size).toarray()
    correct = {1: 0.0, 5: 0.0}
    start = 0
    for batch in store.iter_batches(opts.batch_size):
        image = _codes(run, "image", batch.image, None, opts.batch_size).toarray()
        for k in correct:
            correct[k] += encoder.zero_shot_accuracy(_unit(image), labels[start:start + len(batch)], _unit(class_codes),
                                                     classes, k) * len(batch)
        start += len(batch)
    return {f"zero_shot@{k}": c / len(store) for k, c in correct.items()}
