"""Store-level drivers of the intervention analyses, over one trained SAE each: modality-gap removal
(ISO App. I, L), vector arithmetic (ISO App. H), concept steering (HET Fig. 7) and the
monosemanticity score (HET Fig. 8). The formulas live in ``gap``, ``arithmetic``, ``steering`` and
``monosemanticity``; these functions only stream stores through the SAE. Rows are tidy
``{"metric", "value", ...}``.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..store import EmbeddingStore
from . import arithmetic, encoder, gap, steering
from .heterogeneity import normalised
from .monosemanticity import MonosemanticityAccumulator, code_range
from ..store import MODALITIES
from .real import EvalOptions, EvalSet, SAERun, TrainReference, side_rows, sparse_codes


def evaluate_gap(run: SAERun, data: EvalSet, ref: TrainReference, opts: EvalOptions, seed: int,
                 progress: bool = True) -> list[dict]:
    """ISO Tables 9-12 for every method of ``gap.METHODS``: DiM over the whole store; recall@1 in
    batches of ``recall_batch`` (caption stores) or zero-shot top-1 (ImageNet-format stores, Table 11,
    class embeddings transformed like captions); W, sep and the OOD score on the first
    ``sample_pairs`` pairs."""
    store, direction = data.store, gap.random_direction(data.store.dim, seed)

    def transform(side: int, x: np.ndarray) -> dict[str, np.ndarray]:
        full, bimodal = run.reconstruct(MODALITIES[side], x, ref.bimodal)
        return gap.interventions(side, x, full, bimodal, ref.raw, ref.recon, direction, opts.schrodi_dims)

    sums = {m: np.zeros((2, store.dim)) for m in gap.METHODS}
    hits, start = dict.fromkeys(gap.METHODS, 0.0), 0
    score = "recall@1" if data.labels is None else "zero_shot@1"
    classes = None if data.labels is None else transform(1, data.class_embeddings)
    for batch in tqdm(store.iter_batches(opts.recall_batch), total=store.n_batches(opts.recall_batch),
                      desc="gap removal", disable=not progress, mininterval=2.0):
        views = [transform(i, getattr(batch, side)) for i, side in enumerate(MODALITIES)]
        labels = None if classes is None else data.labels[start:start + len(batch)]
        for m in gap.METHODS:
            sums[m] += np.stack([views[0][m].sum(0), views[1][m].sum(0)])
            hits[m] += len(batch) * (encoder.recall_at_k(views[0][m], views[1][m], 1, opts.recall_batch) if classes is None
                                     else encoder.zero_shot_accuracy(views[0][m], labels, classes[m], data.classes, 1))
        start += len(batch)
    head = [transform(i, getattr(data.head, side)) for i, side in enumerate(MODALITIES)]
    rows = []
    for m in gap.METHODS:
        population, histogram = gap.population_metrics(head[0][m], head[1][m], opts.ood_k)
        metrics = {"gap_dim": encoder.difference_in_means(sums[m][0], sums[m][1]) / len(store), **population,
                   score: hits[m] / len(store)}
        rows += [{"method": m, "metric": k, "value": float(v)} for k, v in metrics.items()]
        rows += [{"method": m, **row} for row in histogram]
    return rows


def _reconstruct_all(run: SAERun, side: str, x: np.ndarray, keep: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [run.reconstruct(side, x[s:s + batch], keep) for s in range(0, len(x), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def evaluate_arithmetic(run: SAERun, store: EmbeddingStore, ref: TrainReference, opts: EvalOptions) -> list[dict]:
    """ISO Tables 7-8 on a FashionIQ-format store (sides: source ``image``, relative captions ``text``,
    ``target``), its first ``retrieval_pairs`` triplets: for each query set, r@10 and r@50 against the
    reconstructed targets in batches of ``recall_batch``, their mean, and the OOD score (K = ``ood_k``)
    of the unit queries against the unit reconstructed targets."""
    n = min(len(store), opts.retrieval_pairs)
    source, delta, target = (store.head_of_side(side, n) for side in ("image", "text", "target"))
    targets = normalised(_reconstruct_all(run, "image", target, ref.bimodal, opts.batch_size)[0])
    sets = arithmetic.queries(_reconstruct_all(run, "image", source, ref.bimodal, opts.batch_size),
                              _reconstruct_all(run, "text", delta, ref.bimodal, opts.batch_size))
    rows = []
    for name, q in sets.items():
        q = normalised(q)
        r = {k: encoder.query_recall_at_k(q, targets, k, opts.recall_batch) for k in (10, 50)}
        distances = arithmetic.ood_distances(q, targets, opts.ood_k)
        metrics = {"r@10": r[10], "r@50": r[50], "recall": (r[10] + r[50]) / 2,
                   "ood": arithmetic.ood_score(q, targets, opts.ood_k, distances)}
        rows += [{"method": name, "metric": k, "value": float(v)} for k, v in metrics.items()]
        rows += [{"method": name, **row} for row in arithmetic.knn_histogram_rows(distances)]
    return rows


class ConceptSet:
    """A caption store's test images (deduplicated) and captions, with concept labels, read once:
    ``images`` (unit, ``n x d``), ``has`` (``n x C``: image contains concept), ``text`` (caption
    embeddings) and ``mentioned`` (``N x C``: caption names concept); the first ``retrieval_pairs``."""

    def __init__(self, store: EmbeddingStore, names: list[str], image_concepts: dict[str, set[str]],
                 captions: dict[str, str], opts: EvalOptions):
        n = min(len(store), opts.retrieval_pairs)
        image_ids, text_ids = store.source_ids("image")[:n], store.source_ids("text")[:n]
        unique, first = np.unique(image_ids, return_index=True)
        self.names = names
        self.images = normalised(side_rows(store, "image", first, opts.batch_size))
        self.has = np.array([[c in image_concepts.get(i, ()) for c in names] for i in unique], dtype=bool)
        self.text = store.head_of_side("text", n)
        texts = [captions[t] for t in text_ids]
        self.mentioned = np.stack([steering.mentions(texts, c) for c in names], axis=1)


def evaluate_steering(run: SAERun, perm: np.ndarray | None, concepts: ConceptSet, opts: EvalOptions,
                      seed: int) -> list[dict]:
    """HET Fig. 7 (``steering`` module): per concept and steering strength ``alpha`` of
    ``steering_alphas``, ``delta_cos``, ``preserve``, mAP and MRR over ``steering_sources`` source images
    without the concept (the same sources for every alpha). A concept is skipped unless some captions
    mention it and some do not, and some test images have it and some do not."""
    if opts.steering not in steering.STEERING_MODES:
        raise ValueError(f"steering must be one of {steering.STEERING_MODES}, got {opts.steering!r}")
    text_codes = sparse_codes(run, "text", concepts.text, None, opts.batch_size)
    atoms, rng, rows = run.atoms("image"), np.random.default_rng(seed), []
    image_codes = np.concatenate([run("image", concepts.images[s:s + opts.batch_size])[1]
                                  for s in range(0, len(concepts.images), opts.batch_size)])
    spread = image_codes.std(0)
    sae = run.model.side("image")
    for c, name in enumerate(concepts.names):
        mentioned, relevant = concepts.mentioned[:, c], concepts.has[:, c]
        if mentioned.all() or not mentioned.any() or relevant.all() or not relevant.any():
            continue
        latent = steering.image_latent(steering.concept_latent(text_codes, mentioned), perm)
        lacking = np.flatnonzero(~relevant)
        sources = rng.choice(lacking, size=min(opts.steering_sources, len(lacking)), replace=False)
        t_c, base = steering.concept_direction(concepts.text, mentioned), concepts.images[sources]
        for alpha in opts.steering_alphas:
            if opts.steering == "atom":
                steered = base + alpha * atoms[latent] / max(np.linalg.norm(atoms[latent]), 1e-12)
            else:
                z = image_codes[sources].copy()
                z[:, latent] += alpha * spread[latent]
                steered = z @ atoms + sae.b_dec.detach().float().cpu().numpy()
            scores = steering.steering_scores(steered, base, concepts.images, sources, relevant, t_c)
            rows += [{"concept": name, "alpha": float(alpha), "metric": k, "value": v} for k, v in scores.items()]
    return rows


def evaluate_monosemanticity(run: SAERun, store: EmbeddingStore, external: EmbeddingStore,
                             opts: EvalOptions) -> list[dict]:
    """HET Fig. 8: MS of every latent of each side, with the same side of ``external`` (another
    encoder's store of the same dataset, rows matched by source id) as the similarity space."""
    rows = []
    for side in MODALITIES:
        if not np.array_equal(store.source_ids(side), external.source_ids(side)):
            raise ValueError(f"{external.root} does not hold the same {side} rows as {store.root}: "
                             "embed the same dataset with the external encoder")
        lo, hi = code_range(run(side, getattr(b, side))[1] for b in store.iter_batches(opts.batch_size))
        acc = MonosemanticityAccumulator(lo, hi, external.dim)
        for b, e in zip(store.iter_batches(opts.batch_size), external.iter_batches(opts.batch_size)):
            acc.update(run(side, getattr(b, side))[1], normalised(getattr(e, side)))
        rows += [{"component": side, "latent": i, "metric": "ms", "value": float(v)} for i, v in enumerate(acc.result())]
    return rows
