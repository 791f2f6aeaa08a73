"""The toy DGP of ISO App. C.1: bimodal and unimodal ground truths of the same data.

Atom groups (rows, unit norm): ``I`` and ``T`` (k each: high-energy, high-frequency unimodal
concepts), ``B`` (4k bimodal concepts) and their modality-specific companions ``BI`` and ``BT``
(4k each). The two realisations of bimodal atom ``b`` are ``BI'_b = a B_b + c BI_b`` and
``BT'_b = a B_b + c BT_b``. A pair draws one image atom ``i`` of ``I``, one text atom ``t`` of ``T``
and a set ``S`` of ``L - 1`` bimodal atoms; with ``P = sum_S B_b``, ``Q = sum_S BI_b`` and
``R = sum_S BT_b``::

    x~ = I_i + beta (a P + c Q),    y~ = T_t + beta (a P + c R)

and ``x = x~ / |x~|``, ``y = y~ / |y~|``. Two ground truths explain the same data:

* ``D1`` (14k atoms ``[I, T, B, BI, BT]``, the *bimodal* truth) with codes ``1, a beta, c beta``;
* ``D2`` (10k atoms ``[I, T, BI', BT']``, the *unimodal* truth) with codes ``1, beta``;

both times the sample's normalisation. Two constructions (``IsoDGP.construction``):

* ``toy_general`` (default): the authors' ``ToyGeneral`` (``Parabrele/MultimodalGeometry``,
  ``experiments/0_DGP.ipynb``), C.1 in numbers. Coordinate blocks of 10% / 10% / 80% of the
  dimensions hold ``I`` and ``BI``, ``T`` and ``BT``, and ``B``. ``I`` rows are N(0, 1) plus 10 times a
  unit offset shared by all image-only atoms (``T`` likewise, its own offset); ``B``, ``BI``, ``BT`` are
  normalised Gaussians. ``a = sqrt(tau1)``, ``c = sqrt(1 - tau1)``: both realisations are unit vectors
  with cosine exactly tau1. The ``L - 1`` bimodal atoms of a pair are drawn without replacement with
  probabilities proportional to a profile log-spaced from 0.5 down to 0.1 over the 4k atoms.
* ``subspaces`` (an earlier construction): the image group ``I + BI``, the text group ``T + BT`` and
  ``B`` in three mutually orthogonal subspaces of dimensions ``d_u``, ``d_u`` and ``d - 2 d_u``
  (``d_u = d // 4``); inside a group each atom has cosine ``coherence`` with the group's mean direction;
  ``a = tau1``, ``c = 1 - tau1``; bimodal atoms drawn uniformly.

**beta** (derivation, both constructions). Only these inner products survive the block structure:
``x~ . y~ = A beta^2`` with ``A = a^2 |P|^2``, and ``|x~|^2 = 1 + b_x beta + c_x beta^2`` with
``b_x = 2 c I_i . Q`` (``I_i`` and ``Q`` share the image block) and ``c_x = a^2 |P|^2 + c^2 |Q|^2``; the
same for ``y~`` with ``T_t``, ``R``. Asking ``cos(x, y) = tau2`` and squaring (``A beta^2 >= 0``, so no
spurious sign) gives the quartic

    A^2 beta^4 - tau2^2 (1 + b_x beta + c_x beta^2)(1 + b_y beta + c_y beta^2) = 0,

negative at ``beta = 0``. It has a positive root when the leading coefficient ``A^2 - tau2^2 c_x c_y``
is positive, i.e. when the bimodal part can carry a cosine tau2 at all; we take the smallest
positive real root, per pair. A pair without one redraws its bimodal set (the authors' notebook
sets ``beta = 10000`` instead, an evident bug).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..store import MODALITIES
from . import write_splits

TRUTHS = ("bimodal", "unimodal")
CONSTRUCTIONS = ("toy_general", "subspaces")
UNIMODAL_OFFSET = 10.0          # toy_general: strength of the offset shared by each modality's unimodal atoms
BIMODAL_PROFILE = (0.5, 0.1)    # toy_general: bimodal frequencies, log-spaced from the first to the second


@dataclass(frozen=True)
class IsoDGP:
    """Parameters of the ISO toy DGP; ``k`` sets the concept counts (10k and 14k), ``L`` the L0.
    ``coherence`` only shapes the ``subspaces`` construction."""

    d: int = 512
    k: int = 10
    L: int = 10
    tau1: float = 0.5
    tau2: float = 0.4
    coherence: float = 0.5
    construction: str = "toy_general"

    def __post_init__(self):
        if self.construction not in CONSTRUCTIONS:
            raise ValueError(f"construction must be one of {CONSTRUCTIONS}, got {self.construction!r}")
        if self.d < 10 or self.k < 1 or self.L < 2:
            raise ValueError(f"need d >= 10, k >= 1, L >= 2; got d={self.d}, k={self.k}, L={self.L}")
        if self.L - 1 > 4 * self.k:
            raise ValueError(f"L - 1 = {self.L - 1} bimodal atoms per pair exceed the 4k = {4 * self.k} available")
        if not (0 < self.tau2 < 1 and 0 < self.tau1 <= 1 and 0 <= self.coherence < 1):
            raise ValueError(f"need 0 < tau2 < 1, 0 < tau1 <= 1, 0 <= coherence < 1; got {self.tau1}, {self.tau2}, {self.coherence}")

    @property
    def mixing(self) -> tuple[float, float]:
        """``(a, c)``: a bimodal atom's realisation in one modality is ``a B + c BI``."""
        if self.construction == "toy_general":
            return float(np.sqrt(self.tau1)), float(np.sqrt(1 - self.tau1))
        return self.tau1, 1 - self.tau1


@dataclass
class IsoDictionaries:
    """The five atom groups (rows, ``d`` columns), the mixing ``(a, c)`` and the two ground-truth
    dictionaries built from them."""

    I: np.ndarray
    T: np.ndarray
    B: np.ndarray
    BI: np.ndarray
    BT: np.ndarray
    mixing: tuple[float, float]

    @property
    def d1(self) -> np.ndarray:
        """Bimodal truth, ``14k x d``: ``[I, T, B, BI, BT]``."""
        return np.concatenate([self.I, self.T, self.B, self.BI, self.BT])

    def truth(self, name: str) -> np.ndarray:
        """Identifiable ground truth ``name`` (see :func:`truth_columns`)."""
        return (self.d1 if name == "bimodal" else self.d2)[truth_columns(name, len(self.I))]

    @property
    def d2(self) -> np.ndarray:
        """Unimodal truth, ``10k x d``: ``[I, T, a B + c BI, a B + c BT]``."""
        a, c = self.mixing
        return np.concatenate([self.I, self.T, a * self.B + c * self.BI, a * self.B + c * self.BT])

    def full(self, name: str) -> np.ndarray:
        """The whole dictionary behind the truth ``name``: ``d1`` (bimodal) or ``d2`` (unimodal)."""
        iso_dictionary_size(name, len(self.I))  # checks the name
        return self.d1 if name == "bimodal" else self.d2


def truth_columns(name: str, k: int) -> slice:
    """Atoms of the ground truth ``name`` that Table 5 compares against (our reading of ISO C.2).

    ``unimodal`` is all of ``D2`` (10k atoms; the truth of Exp. 1, where tau1 = tau2 + 0.1).
    ``bimodal`` is ``D1`` without its companions ``BI, BT``: ``[I, T, B]``, 6k atoms (the truth of
    Exp. 2). At tau1 = 0.999 the companions carry codes ``c beta`` (``c = 1 - tau1`` or ``sqrt(1 - tau1)``),
    a small share of the bimodal energy, so no method can identify them; and their activation
    patterns are exactly ``B``'s restricted to one modality, so keeping them would reward the spurious
    unimodal split of ``B`` that the experiment tests for. (These are the truths of the Hungarian
    metrics; the energy-weighted metrics of :mod:`vlsae.metrics.dictionary` use the whole dictionaries,
    whose companions then weigh by their small energy.)
    """
    iso_dictionary_size(name, k)  # checks the name
    return slice(0, 6 * k if name == "bimodal" else 10 * k)


def iso_dictionary_size(truth: str, k: int) -> int:
    """Atoms of the full ground-truth dictionary behind ``truth``: ``D1`` (14k) for ``bimodal``, ``D2`` (10k)
    for ``unimodal``. Table 5's SAEs get this many atoms ("the same number of atoms as the DGP", C.2)."""
    if truth not in TRUTHS:
        raise ValueError(f"unknown ground truth {truth!r}; choose from {TRUTHS}")
    return 14 * k if truth == "bimodal" else 10 * k


def _group(rng: np.random.Generator, n: int, basis: np.ndarray, coherence: float) -> np.ndarray:
    """``n`` unit atoms in ``span(basis)`` (rows orthonormal), each at cosine ``coherence`` to the group mean."""
    g = rng.normal(size=(n, basis.shape[0]))
    mean = g.mean(0)
    mean /= np.linalg.norm(mean)
    noise = g - np.outer(g @ mean, mean)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (coherence * mean + np.sqrt(1 - coherence**2) * noise) @ basis


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _in_block(rows: np.ndarray, d: int, start: int) -> np.ndarray:
    """``rows`` placed in the coordinates ``start .. start + width`` of ``R^d``."""
    out = np.zeros((len(rows), d))
    out[:, start:start + rows.shape[1]] = rows
    return out


def make_dictionaries(dgp: IsoDGP, rng: np.random.Generator) -> IsoDictionaries:
    k = dgp.k
    if dgp.construction == "toy_general":
        di = dt = int(0.1 * dgp.d)
        offsets = [_unit(rng.normal(size=(1, width))) for width in (di, dt)]
        groups = {"I": (di, 0, offsets[0]), "T": (dt, di, offsets[1])}
        unimodal = {g: _unit(_in_block(rng.normal(size=(k, w)) + UNIMODAL_OFFSET * off, dgp.d, start))
                    for g, (w, start, off) in groups.items()}
        B = _unit(_in_block(rng.normal(size=(4 * k, dgp.d - di - dt)), dgp.d, di + dt))
        BI = _unit(_in_block(rng.normal(size=(4 * k, di)), dgp.d, 0))
        BT = _unit(_in_block(rng.normal(size=(4 * k, dt)), dgp.d, di))
        return IsoDictionaries(unimodal["I"], unimodal["T"], B, BI, BT, dgp.mixing)
    basis = np.linalg.qr(rng.normal(size=(dgp.d, dgp.d)))[0].T  # orthonormal rows
    du = dgp.d // 4
    sub_i, sub_t, sub_b = basis[:du], basis[du : 2 * du], basis[2 * du :]
    image = _group(rng, 5 * k, sub_i, dgp.coherence)
    text = _group(rng, 5 * k, sub_t, dgp.coherence)
    return IsoDictionaries(I=image[:k], T=text[:k], B=_group(rng, 4 * k, sub_b, dgp.coherence),
                           BI=image[k:], BT=text[k:], mixing=dgp.mixing)


def bimodal_sets(dgp: IsoDGP, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n x (L - 1)`` bimodal atoms per pair, without replacement: uniform (``subspaces``), or with
    probabilities proportional to the log-spaced profile (``toy_general``; the Gumbel top-k trick draws
    exactly the successive sampling of ``np.random.choice(..., replace=False, p=p)``)."""
    keys = rng.random((n, 4 * dgp.k))
    if dgp.construction == "toy_general":
        log_p = np.log(np.logspace(np.log10(BIMODAL_PROFILE[0]), np.log10(BIMODAL_PROFILE[1]), 4 * dgp.k))
        keys = log_p - np.log(-np.log(keys))   # log p + Gumbel noise
    return np.argsort(-keys, axis=1)[:, : dgp.L - 1]


def solve_beta(A, bx, cx, by, cy, tau2: float) -> np.ndarray:
    """Smallest positive real root of ``A^2 b^4 - tau2^2 (1 + bx b + cx b^2)(1 + by b + cy b^2)`` per entry."""
    t2 = tau2**2
    coeffs = np.stack([A**2 - t2 * cx * cy, -t2 * (bx * cy + by * cx), -t2 * (cx + cy + bx * by),
                       -t2 * (bx + by), np.full_like(A, -t2)], axis=-1)
    if (coeffs[:, 0] <= 0).any():
        raise ValueError(f"tau2={tau2} is out of reach: the bimodal part cannot carry that cosine (raise tau1)")
    monic = coeffs[:, 1:] / coeffs[:, :1]
    companion = np.zeros((len(A), 4, 4))
    companion[:, 0, :] = -monic
    companion[:, 1:, :3] = np.eye(3)
    roots = np.linalg.eigvals(companion)
    real = np.where((np.abs(roots.imag) < 1e-9) & (roots.real > 0), roots.real, np.inf)
    return real.min(1)


@dataclass
class IsoSample:
    """Paired unit embeddings and everything needed to write their ground-truth codes."""

    x: np.ndarray
    y: np.ndarray
    image_atom: np.ndarray
    text_atom: np.ndarray
    bimodal: np.ndarray  # n x (L-1)
    beta: np.ndarray
    scale_x: np.ndarray  # 1 / |x~|
    scale_y: np.ndarray

    def truth_codes(self, truth: str, side: str, k: int, mixing: tuple[float, float]) -> np.ndarray:
        """Codes of ``side`` on the identifiable truth ``truth`` (:func:`truth_columns`)."""
        return self.codes("d1" if truth == "bimodal" else "d2", side, k, mixing)[:, truth_columns(truth, k)]

    def codes(self, truth: str, side: str, k: int, mixing: tuple[float, float]) -> np.ndarray:
        """Dense ground-truth codes of ``side`` (``image``/``text``) on ``d1`` (14k) or ``d2`` (10k)."""
        n, scale = len(self.x), self.scale_x if side == "image" else self.scale_y
        width = 14 * k if truth == "d1" else 10 * k
        z = np.zeros((n, width))
        rows = np.arange(n)[:, None]
        unimodal = self.image_atom if side == "image" else k + self.text_atom
        z[np.arange(n), unimodal] = scale
        companion = 6 * k if side == "image" else 10 * k  # BI or BT block of d1
        if truth == "d1":
            a, c = mixing
            z[rows, 2 * k + self.bimodal] = (scale * self.beta * a)[:, None]
            z[rows, companion + self.bimodal] = (scale * self.beta * c)[:, None]
        else:
            block = 2 * k if side == "image" else 6 * k
            z[rows, block + self.bimodal] = (scale * self.beta)[:, None]
        return z


def _bimodal_terms(dicts: IsoDictionaries, ua, uc, bimodal):
    """``P, Q, R`` and the quartic's coefficients ``A, b_x, c_x, b_y, c_y`` (see the module docstring)."""
    a, c = dicts.mixing
    P, Q, R = dicts.B[bimodal].sum(1), dicts.BI[bimodal].sum(1), dicts.BT[bimodal].sum(1)
    pp = (P * P).sum(1)
    coef = (a**2 * pp, 2 * c * (ua * Q).sum(1), a**2 * pp + c**2 * (Q * Q).sum(1),
            2 * c * (uc * R).sum(1), a**2 * pp + c**2 * (R * R).sum(1))
    return (P, Q, R), coef


def sample_pairs(dgp: IsoDGP, dicts: IsoDictionaries, n: int, rng: np.random.Generator,
                 max_redraw_fraction: float = 0.5) -> IsoSample:
    """``n`` pairs. A pair whose bimodal set cannot carry cosine tau2 (quartic without positive root)
    redraws that set; if more than ``max_redraw_fraction`` of first draws fail, tau1 is too low."""
    k = dgp.k
    image, text = rng.integers(k, size=n), rng.integers(k, size=n)
    ua, uc = dicts.I[image], dicts.T[text]
    bimodal = bimodal_sets(dgp, n, rng)
    for attempt in range(100):
        _, (A, bx, cx, by, cy) = _bimodal_terms(dicts, ua, uc, bimodal)
        bad = A**2 - dgp.tau2**2 * cx * cy <= 1e-9 * A**2
        if attempt == 0 and bad.mean() > max_redraw_fraction:
            raise ValueError(f"tau2={dgp.tau2} is out of reach for {bad.mean():.0%} of pairs at tau1={dgp.tau1} (raise tau1)")
        if not bad.any():
            break
        bimodal[bad] = bimodal_sets(dgp, int(bad.sum()), rng)
    (P, Q, R), coef = _bimodal_terms(dicts, ua, uc, bimodal)
    beta = solve_beta(*coef, dgp.tau2)
    a, c = dicts.mixing
    x = ua + beta[:, None] * (a * P + c * Q)
    y = uc + beta[:, None] * (a * P + c * R)
    sx, sy = 1 / np.linalg.norm(x, axis=1), 1 / np.linalg.norm(y, axis=1)
    return IsoSample(x * sx[:, None], y * sy[:, None], image, text, bimodal, beta, sx, sy)


@dataclass
class IsoGroundTruth:
    """What Table 5 is scored against: the DGP, its atom groups, and the evaluation pairs' codes."""

    dgp: IsoDGP
    dicts: IsoDictionaries
    eval: IsoSample

    def save(self, path: str | Path) -> None:
        groups = {g: getattr(self.dicts, g) for g in ("I", "T", "B", "BI", "BT")}
        sample = {f"eval_{f.name}": getattr(self.eval, f.name) for f in fields(IsoSample)}
        params = {f"dgp_{k}": v for k, v in asdict(self.dgp).items()}
        with atomic_path(path) as tmp:
            np.savez(tmp, **groups, **sample, **params)

    @classmethod
    def load(cls, path: str | Path) -> "IsoGroundTruth":
        with np.load(path) as f:
            dgp = IsoDGP(**{k[4:]: f[k].item() for k in f.files if k.startswith("dgp_")})
            dicts = IsoDictionaries(*(f[g] for g in ("I", "T", "B", "BI", "BT")), mixing=dgp.mixing)
            sample = IsoSample(*(f[f"eval_{x.name}"] for x in fields(IsoSample)))
        return cls(dgp, dicts, sample)

    def codes(self, truth: str) -> np.ndarray:
        """``2N x K`` true codes of the evaluation images, then texts, on the identifiable truth ``truth``."""
        return np.concatenate([self.eval.truth_codes(truth, side, self.dgp.k, self.dgp.mixing)
                               for side in MODALITIES])

    def full_codes(self, truth: str) -> np.ndarray:
        """``2N x 14k`` (bimodal) or ``2N x 10k`` (unimodal) true codes of the evaluation images, then texts,
        on the whole dictionary :meth:`IsoDictionaries.full`."""
        name = "d1" if truth == "bimodal" else "d2"
        return np.concatenate([self.eval.codes(name, side, self.dgp.k, self.dgp.mixing) for side in MODALITIES])

    def truth_energy(self, truth: str, as_coded: bool = False) -> np.ndarray:
        """Energy of each atom of the whole truth: the mean squared true code over the 2N image and text
        samples. ``as_coded``: the authors' notebook, which adds the *unsquared* image code of the ``B``
        atoms of ``D1`` (``E[B] += Z_I[B] + Z_T[B]**2``), an evident bug (a perfect learner then scores W > 0)."""
        codes = self.full_codes(truth)
        energy = (codes ** 2).mean(0)
        if as_coded and truth == "bimodal":
            n, k = len(codes) // 2, self.dgp.k
            b = slice(2 * k, 6 * k)
            energy[b] = (codes[:n, b].sum(0) + (codes[n:, b] ** 2).sum(0)) / len(codes)
        return energy


def write_iso_dataset(dgp: IsoDGP, out_dir: str | Path, n_train: int, n_eval: int, seed: int,
                      shard_pairs: int = 65536, chunk: int = 8192, progress=None) -> IsoGroundTruth:
    """Write ``train/`` and ``eval/`` stores and ``ground_truth.npz`` (with the eval codes) under ``out_dir``."""
    dicts = make_dictionaries(dgp, np.random.default_rng([seed, 0]))
    kept: list[IsoSample] = []

    def draw(split, size, rng):
        sample = sample_pairs(dgp, dicts, size, rng)
        if split == "eval":
            kept.append(sample)
        return sample.x.astype(np.float32), sample.y.astype(np.float32)

    write_splits(out_dir, dgp.d, {"train": n_train, "eval": n_eval}, draw, seed, {"source": "iso", **asdict(dgp)},
                 shard_pairs, chunk, progress)
    merged = IsoSample(*(np.concatenate([getattr(s, f.name) for s in kept]) for f in fields(IsoSample)))
    gt = IsoGroundTruth(dgp, dicts, merged)
    gt.save(Path(out_dir) / "ground_truth.npz")
    return gt
