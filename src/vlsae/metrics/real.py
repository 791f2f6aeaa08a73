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

from ..align import Alignment, CoactivationStats
from ..align.hungarian import accumulate_cross
from ..sae import PairedSAE
from ..store import MODALITIES, EmbeddingStore, PairBatch
from ..strict import from_dict
from . import encoder, heterogeneity, modality, sae as general
from .heterogeneity import normalised



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
    ood_k: int = 10
    schrodi_dims: int = 20
    probe: str = "sign"
    steering: str = "latent"
    steering_alphas: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
    steering_sources: int = 100

    def __post_init__(self):
        object.__setattr__(self, "steering_alphas", tuple(float(a) for a in self.steering_alphas))

    @classmethod
    def from_dict(cls, data: dict) -> "EvalOptions":
        return from_dict(cls, data, "evaluation options")


def _head(store: EmbeddingStore, n: int) -> PairBatch:
    return next(store.iter_batches(min(n, len(store))))


@dataclass
class EvalSet:
    """What every evaluation of one store shares, read once: the modality means, the first
    ``sample_pairs`` pairs and, by store format, the COCO-protocol retrieval pairs with their image
    ids or the ImageNet labels with one class embedding per class (the text side of an
    ImageNet-format store is the class's prompt ensemble)."""

    store: EmbeddingStore
    means: np.ndarray
    head: PairBatch
    retrieval: PairBatch | None = None
    image_ids: np.ndarray | None = None
    labels: np.ndarray | None = None
    classes: np.ndarray | None = None
    class_embeddings: np.ndarray | None = None

    @classmethod
    def read(cls, store: EmbeddingStore, opts: EvalOptions) -> "EvalSet":
        sums = np.zeros((2, store.dim))
        for batch in store.iter_batches(opts.batch_size):
            sums += np.stack([batch.image.sum(0), batch.text.sum(0)])
        data = cls(store, sums / len(store), _head(store, opts.sample_pairs))
        if store.metadata.get("dataset", {}).get("format") == "imagenet":
            data.labels = store.source_ids("text")
            data.classes, first = np.unique(data.labels, return_index=True)
            data.class_embeddings = side_rows(store, "text", first, opts.batch_size)
        else:
            data.retrieval = _head(store, opts.retrieval_pairs)
            data.image_ids = store.source_ids("image")[:len(data.retrieval)]
        return data

    def zero_shot(self, embed_images, class_vectors: np.ndarray, batch_size: int) -> dict[str, float]:
        """Zero-shot top-1 and top-5 over the whole store, images mapped by ``embed_images`` and
        classes given by ``class_vectors`` (rows in ``classes`` order); cosine scores."""
        correct, start, classes = {1: 0.0, 5: 0.0}, 0, normalised(class_vectors)
        for batch in self.store.iter_batches(batch_size):
            images, labels = normalised(embed_images(batch.image)), self.labels[start:start + len(batch)]
            for k in correct:
                correct[k] += encoder.zero_shot_accuracy(images, labels, classes, self.classes, k) * len(batch)
            start += len(batch)
        return {f"zero_shot@{k}": c / len(self.store) for k, c in correct.items()}


def side_rows(store: EmbeddingStore, side: str, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """``side`` embeddings (image or text) at the given pair indices, streamed."""
    out, start = np.empty((len(rows), store.dim), dtype=np.float32), 0
    for batch in store.iter_batches(batch_size):
        inside = (rows >= start) & (rows < start + len(batch))
        out[inside] = getattr(batch, side)[rows[inside] - start]
        start += len(batch)
    return out


def evaluate_encoder(data: EvalSet, opts: EvalOptions, progress: bool = True) -> list[dict]:
    """ISO Table 6 (and HET's encoder rows): recall@1/5 in batches of 256, DiM and W gaps, COCO-protocol
    retrieval, the cosine populations of Fig. 11 and, on ImageNet-format stores, zero-shot and a linear
    probe fit on every other pair of the first ``sample_pairs`` and scored on the rest (ISO E.1)."""
    store, head = data.store, data.head
    hits = {1: 0.0, 5: 0.0}
    for batch in tqdm(store.iter_batches(opts.recall_batch), total=store.n_batches(opts.recall_batch),
                      desc="encoder", disable=not progress, mininterval=2.0):
        for k in hits:
            hits[k] += encoder.recall_at_k(batch.image, batch.text, k, opts.recall_batch) * len(batch)
    metrics = {f"recall@{k}": h / len(store) for k, h in hits.items()}
    metrics["gap_dim"] = encoder.difference_in_means(data.means[0], data.means[1])
    metrics["gap_wasserstein"] = encoder.wasserstein(head.image, head.text)
    metrics.update({f"cosine_{name}": float(values.mean())
                    for name, values in encoder.cosine_samples(head.image, head.text).items()})
    if data.labels is None:
        metrics.update(heterogeneity.retrieval_recall(data.retrieval.image, data.retrieval.text, data.image_ids))
    else:
        metrics.update(data.zero_shot(lambda images: images, data.class_embeddings, opts.batch_size))
        labels = data.labels[:len(head)]
        metrics["linear_probe"] = encoder.linear_probe_accuracy(head.image[::2], labels[::2], head.image[1::2], labels[1::2])
    return [{"metric": metric, "value": value} for metric, value in metrics.items()]


class SAERun:
    """One paired SAE on a device: codes and reconstructions of either side as numpy."""

    def __init__(self, model: PairedSAE, device: torch.device):
        self.model, self.device = model.to(device).eval(), device

    def atoms(self, side: str) -> np.ndarray:
        return self.model.side(side).W_dec.detach().float().cpu().numpy()

    @torch.no_grad()
    def __call__(self, side: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x_hat, code = self.model.side(side)(torch.from_numpy(x).to(self.device))
        return x_hat.float().cpu().numpy(), code.dense().float().cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, side: str, x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Z D, (Z * keep) D)``: the dictionary reconstruction ``A^ := Z D`` and the one from the latents in
        ``keep`` only (``A~ := (Z * delta) D`` when ``keep`` is the bimodal mask; ISO App. E.2.2, H, I). Neither
        adds the decoder bias: ISO defines both as products with the dictionary alone."""
        sae = self.model.side(side)
        dense = sae.encode(torch.from_numpy(x).to(self.device)).dense()
        mask = torch.from_numpy(np.asarray(keep, dtype=np.float32)).to(self.device)
        return tuple((z.to(sae.W_dec.dtype) @ sae.W_dec).float().cpu().numpy() for z in (dense, dense * mask))


@dataclass
class TrainReference:
    """What ISO App. H, I and L take from the SAE's *training* store, one pass: the modality means of
    the embeddings and of their reconstructions ``Z D`` (``mu_I, mu_T, mu_I^, mu_T^``; used on every
    evaluation set, "for fairness", ISO App. I) and the bimodal mask from the training energies."""

    raw: np.ndarray
    recon: np.ndarray
    bimodal: np.ndarray

    @classmethod
    def read(cls, run: SAERun, store: EmbeddingStore, opts: EvalOptions, progress: bool = True) -> "TrainReference":
        sums, energy = np.zeros((4, store.dim)), {}
        for batch in tqdm(store.iter_batches(opts.batch_size), total=store.n_batches(opts.batch_size),
                          desc="training means", disable=not progress, mininterval=2.0):
            for i, side in enumerate(MODALITIES):
                _, z = run(side, getattr(batch, side))
                sums[i] += getattr(batch, side).sum(0)
                sums[2 + i] += z.sum(0) @ run.atoms(side)  # the sum of Z D, without the decoder bias
                energy[side] = energy.get(side, 0.0) + (z.astype(np.float64) ** 2).sum(0)
        mu = modality.modality_score(energy["image"], energy["text"])
        return cls(sums[:2] / len(store), sums[2:] / len(store), modality.bimodal_mask(mu, opts.tau))


def _insertion_deletion(run: SAERun, side: str, x: np.ndarray, chunk: int = 256) -> tuple[float, float]:
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


def sparse_codes(run: SAERun, side: str, x: np.ndarray, perm: np.ndarray | None, batch: int) -> sparse.csr_matrix:
    """Codes of ``x`` as a CSR matrix, columns re-indexed by ``perm`` (post-hoc alignment) if given."""
    z = sparse.vstack([sparse.csr_matrix(run(side, x[s:s + batch])[1]) for s in range(0, len(x), batch)], format="csr")
    return z[:, perm] if perm is not None else z


def evaluate_sae(model: PairedSAE, data: EvalSet, alignment: Alignment | None, opts: EvalOptions,
                 device: torch.device, progress: bool = True) -> list[dict]:
    """Every metric of one trained SAE on ``data``; rows carry a ``method`` (``""`` or ``post-hoc``)."""
    run, store = SAERun(model, device), data.store
    components = {side: model.component_of(side) for side in MODALITIES}
    shared = model.spec.arrangement == "shared"
    recon = {side: general.ReconstructionStats(mean=data.means[i]) for i, side in enumerate(MODALITIES)}
    # energies and Sigma; Z^T Z per component. The m x m moments in float32: half the memory, and the
    # structure metrics built on them need a few digits only
    paired = CoactivationStats.empty(model.side("image").m, model.side("text").m, dtype=np.float32)
    grams = {c: np.zeros((model.side(s).m,) * 2, dtype=np.float32) for s, c in components.items()}
    fired = {side: np.zeros(model.side(side).m, dtype=np.int64) for side in MODALITIES}  # samples each latent fires on
    for batch in tqdm(store.iter_batches(opts.batch_size), total=store.n_batches(opts.batch_size),
                      desc="sae metrics", disable=not progress, mininterval=2.0):
        codes = {}
        for side in MODALITIES:
            x = getattr(batch, side)
            x_hat, codes[side] = run(side, x)
            recon[side].update(x, x_hat, codes[side])
            fired[side] += (codes[side] != 0).sum(0)
            accumulate_cross(grams[components[side]], codes[side], codes[side])
        paired.update(codes["image"], codes["text"])
    energy = {"image": paired.sumsq_image / paired.n, "text": paired.sumsq_text / paired.n}
    rows = []

    def add(metric, value, **keys):
        rows.append({"metric": metric, "value": float(value), "method": keys.get("method", ""),
                     "component": keys.get("component", "all")})

    for side in MODALITIES:
        for metric, value in recon[side].result().items():
            add(metric, value, component=side)
        ins, dele = _insertion_deletion(run, side, getattr(data.head, side))
        add("c_insertion", ins, component=side)
        add("c_deletion", dele, component=side)
    for side, component in components.items():
        if side == "text" and shared:
            continue
        e = (energy["image"] + energy["text"]) / 2 if shared else energy[side]
        structure = {**general.dictionary_structure(run.atoms(side), e),
                     **general.coactivation_structure(grams.pop(component), run.atoms(side))}  # consumes Z^T Z
        for metric, value in structure.items():
            add(metric, value, component=component)
    if shared:
        paired.cross /= paired.n       # Sigma, in place; _modality_rows releases it before FDA's transport plan
        degenerate = modality.degenerate_mask(fired["image"] + fired["text"], 2 * paired.n)
        for metric, value in _modality_rows(run, data, energy, paired, opts, degenerate).items():
            add(metric, value)
        if alignment is not None:
            add("self_match_rate", heterogeneity.self_match_rate(alignment.perm, alignment.matched))
    for method, perm in alignment_methods(model, alignment).items():
        for metric, value in _het_rows(run, data, perm, opts).items():
            add(metric, value, method=method)
    return rows


def evaluate_zoo(runs, data: EvalSet, opts: EvalOptions) -> list[dict]:
    """Rows of :func:`evaluate_sae` for each ``(name, seed, SAERun, alignment)`` of ``runs``; a name trained
    with several seeds also gets ``stability`` across them (seed ``-1``, mean over its components)."""
    rows, dictionaries = [], {}  # name -> (spec, signed codes, per seed: one dictionary per component)
    for name, seed, run, alignment in runs:
        model = run.model
        beta = model.spec.aux.get("iso_energy", {}).get("weight", 0.0)  # ISO App. B's beta (0 without the loss)
        family = {"architecture": model.spec.architecture, "k": model.spec.params.get("k", np.nan)}  # HET Tables 2-4's sections
        rows += [{"sae": name, "seed": seed, "spec": model.spec.slug, "beta": beta, **family, **row}
                 for row in evaluate_sae(model, data, alignment, opts, run.device)]
        components = model.components()
        dictionaries.setdefault(name, (model.spec, components[0].signed_codes, []))[2].append(
            [c.W_dec.detach().float().cpu().numpy() for c in components])
    for name, (spec, signed, seeds) in dictionaries.items():
        if len(seeds) > 1:
            value = float(np.mean([general.stability(list(per_component), signed) for per_component in zip(*seeds)]))
            rows.append({"sae": name, "seed": -1, "spec": spec.slug, "metric": "stability", "value": value,
                         "method": "", "component": "all"})
    return rows


def alignment_methods(model: PairedSAE, alignment: Alignment | None) -> dict[str, np.ndarray | None]:
    """The HET methods one trained SAE stands for: itself (``""``, no re-indexing) and, for a
    modality-specific pair with a saved alignment, ``post-hoc`` (text latents re-indexed by ``perm``)."""
    methods = {"": None}
    if alignment is not None and model.spec.arrangement == "specific":
        methods["post-hoc"] = alignment.perm
    return methods


def _modality_rows(run: SAERun, data: EvalSet, energy: dict, paired: CoactivationStats, opts: EvalOptions,
                   degenerate: np.ndarray) -> dict:
    """ISO E.2.2 on one dictionary: share of bimodal latents and of their energy, p_acc, rho, FDA, delta_r@1, and
    the share of degenerate latents (``degenerate``: fire on every sample, App. B) and of their energy.
    ``paired.cross`` holds ``Sigma``; it is released once rho is computed (the transport plan needs the room)."""
    atoms = normalised(run.atoms("image"))
    total = (energy["image"] + energy["text"]) / 2
    live = total > 0
    mu = modality.modality_score(energy["image"], energy["text"])
    bimodal = modality.bimodal_mask(mu, opts.tau)
    accuracy = np.zeros(len(atoms))
    accuracy[live] = modality.probe_accuracy(atoms[live], data.head.image, data.head.text, mu[live], opts.tau, opts.probe)
    rho = modality.functional_alignment(paired.cross, atoms, bimodal)
    paired.cross = None
    plan = modality.transport_plan(energy["image"], energy["text"], atoms, solver=opts.ot_solver)
    full = bimodal_only = 0.0
    for batch in data.store.iter_batches(opts.recall_batch):
        recon = {side: run.reconstruct(side, getattr(batch, side), bimodal) for side in MODALITIES}
        unit = [normalised(recon[s][j]) for j in (0, 1) for s in MODALITIES]
        full += encoder.recall_at_k(unit[0], unit[1], 1, opts.recall_batch) * len(batch)
        bimodal_only += encoder.recall_at_k(unit[2], unit[3], 1, opts.recall_batch) * len(batch)
    return {"live_latents": live.sum(), "bimodal_share": bimodal[live].mean() if live.any() else 0.0,
            "bimodal_energy_share": modality.energy_share(total, bimodal),
            "degenerate_share": degenerate[live].mean() if live.any() else 0.0,
            "degenerate_energy_share": modality.energy_share(total, degenerate),
            "p_acc": modality.probing_score(accuracy[live], bimodal[live], total[live]),
            "rho": rho,
            "fda": modality.fda(plan, atoms, bimodal, total, opts.fda_denominator),
            "delta_r@1": (full - bimodal_only) / len(data.store)}


def _het_rows(run: SAERun, data: EvalSet, perm: np.ndarray | None, opts: EvalOptions) -> dict:
    """HET Table 1 on latent codes: COCO-protocol retrieval, or zero-shot on an ImageNet-format store.
    ``perm`` re-indexes the text codes (post-hoc alignment)."""
    if data.labels is None:
        image = sparse_codes(run, "image", data.retrieval.image, None, opts.batch_size)
        text = sparse_codes(run, "text", data.retrieval.text, perm, opts.batch_size)
        return heterogeneity.retrieval_recall(image, text, data.image_ids)
    class_codes = sparse_codes(run, "text", data.class_embeddings, perm, opts.batch_size).toarray()
    return data.zero_shot(lambda images: sparse_codes(run, "image", images, None, opts.batch_size).toarray(), class_codes,
                          opts.batch_size)
