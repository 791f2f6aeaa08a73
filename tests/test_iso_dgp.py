"""ISO App. C.1 toy DGP: the authors' ToyGeneral construction (and the earlier subspace one): block
orthogonality, unit norms, the tau1 and tau2 cosines, the frequency profile, the quartic, both truths."""

import numpy as np
import pytest

from vlsae.store import EmbeddingStore
from vlsae.synth.iso import (IsoDGP, IsoGroundTruth, bimodal_sets, iso_dictionary_size, make_dictionaries,
                             sample_pairs, solve_beta, write_iso_dataset)

DGPS = {"toy_general": IsoDGP(d=100, k=8, L=5, tau1=0.5, tau2=0.4),
        "subspaces": IsoDGP(d=64, k=8, L=5, tau1=0.5, tau2=0.4, coherence=0.5, construction="subspaces")}


@pytest.fixture(scope="module", params=list(DGPS))
def drawn(request):
    dgp = DGPS[request.param]
    rng = np.random.default_rng(0)
    dicts = make_dictionaries(dgp, rng)
    return dgp, dicts, sample_pairs(dgp, dicts, 2000, rng)


def test_orthogonality_constraints_and_unit_atoms(drawn):
    _, D, _ = drawn
    for group in (D.I, D.T, D.B, D.BI, D.BT):
        np.testing.assert_allclose(np.linalg.norm(group, axis=1), 1.0)
    orthogonal = [(D.I, D.T), (D.I, D.B), (D.I, D.BT), (D.BI, D.T), (D.BI, D.BT), (D.T, D.B), (D.T, D.BI),
                  (D.B, D.BI), (D.B, D.BT)]
    for a, b in orthogonal:
        assert np.abs(a @ b.T).max() < 1e-12
    assert np.abs(D.I @ D.BI.T).max() > 0.1  # image atoms and their companions are *not* orthogonal
    assert D.d1.shape == (14 * 8, D.I.shape[1]) and D.d2.shape == (10 * 8, D.I.shape[1])


def test_toy_general_blocks_offsets_and_the_tau1_cosine():
    dgp = IsoDGP(d=100, k=8, L=5, tau1=0.7, tau2=0.4)
    D = make_dictionaries(dgp, np.random.default_rng(1))
    # coordinate blocks: image 0..9, text 10..19, bimodal 20..99
    assert not D.I[:, 10:].any() and not D.BI[:, 10:].any() and not D.T[:, :10].any() and not D.T[:, 20:].any()
    assert not D.BT[:, :10].any() and not D.BT[:, 20:].any() and not D.B[:, :20].any()
    # the shared offset (10 x a unit vector) makes each modality's unimodal atoms nearly parallel
    cos = D.I @ D.I.T
    assert cos[np.triu_indices(8, 1)].min() > 0.8
    # the two realisations of a bimodal atom: unit vectors with cosine exactly tau1 (sqrt mixing)
    a, c = D.mixing
    realised_image, realised_text = a * D.B + c * D.BI, a * D.B + c * D.BT
    np.testing.assert_allclose(np.linalg.norm(realised_image, axis=1), 1.0)
    np.testing.assert_allclose((realised_image * realised_text).sum(1), 0.7)
    np.testing.assert_allclose(D.d2[16:48], realised_image)


def test_bimodal_atoms_follow_the_log_spaced_profile_without_replacement():
    dgp = IsoDGP(d=100, k=10, L=4, tau1=0.999, tau2=0.4)
    sets = bimodal_sets(dgp, 40_000, np.random.default_rng(2))
    assert all(len(set(row)) == dgp.L - 1 for row in sets[:500])            # no atom twice in a pair
    counts = np.bincount(sets.ravel(), minlength=40)
    # sequential sampling without replacement of 3 out of 40 with p ~ logspace(0.5 -> 0.1): compare with
    # numpy's own choice(replace=False, p=p) on the same number of draws
    p = np.logspace(np.log10(0.5), np.log10(0.1), 40)
    rng = np.random.default_rng(3)
    reference = np.bincount(np.concatenate([rng.choice(40, 3, replace=False, p=p / p.sum()) for _ in range(40_000)]),
                            minlength=40)
    np.testing.assert_allclose(counts / counts.sum(), reference / reference.sum(), atol=0.003)
    assert counts[0] > 3 * counts[-1]                                      # frequent to rare
    uniform = bimodal_sets(DGPS["subspaces"], 40_000, np.random.default_rng(2))
    assert np.bincount(uniform.ravel()).std() / np.bincount(uniform.ravel()).mean() < 0.05


def test_unit_embeddings_and_tau2_cosine(drawn):
    dgp, _, s = drawn
    np.testing.assert_allclose(np.linalg.norm(s.x, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(s.y, axis=1), 1.0)
    np.testing.assert_allclose((s.x * s.y).sum(1), dgp.tau2, atol=1e-9)


def test_both_ground_truths_reproduce_the_data_with_the_right_sparsity(drawn):
    dgp, D, s = drawn
    for side, emb in (("image", s.x), ("text", s.y)):
        z2 = s.codes("d2", side, dgp.k, dgp.mixing)
        np.testing.assert_allclose(z2 @ D.d2, emb, atol=1e-10)
        assert ((z2 != 0).sum(1) == dgp.L).all()
        z1 = s.codes("d1", side, dgp.k, dgp.mixing)
        np.testing.assert_allclose(z1 @ D.d1, emb, atol=1e-10)
        assert ((z1 != 0).sum(1) == 1 + 2 * (dgp.L - 1)).all()


def test_quartic_root_by_hand_and_out_of_reach():
    # orthogonal case b = 0: A^2 b^4 = tau2^2 (1 + c b^2)^2  ->  b^2 = tau2 / (A - tau2 c)
    A, c, tau2 = np.array([2.0]), np.array([3.0]), 0.5
    beta = solve_beta(A, np.zeros(1), c, np.zeros(1), c, tau2)
    assert beta[0] == pytest.approx(np.sqrt(tau2 / (A[0] - tau2 * c[0])))
    # with linear terms the root still zeroes the quartic and gives the cosine tau2
    A, bx, cx, by, cy = (np.array([v]) for v in (1.5, 0.4, 2.0, -0.3, 2.2))
    b = solve_beta(A, bx, cx, by, cy, 0.4)[0]
    assert A[0] * b**2 / np.sqrt((1 + bx[0] * b + cx[0] * b**2) * (1 + by[0] * b + cy[0] * b**2)) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="tau2=0.9 is out of reach"):
        solve_beta(np.array([1.0]), np.zeros(1), np.array([2.0]), np.zeros(1), np.array([2.0]), 0.9)


def test_tau1_too_low_for_tau2_fails_by_name():
    dgp = IsoDGP(d=64, k=8, L=5, tau1=0.25, tau2=0.4, construction="subspaces")
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="tau2=0.4 is out of reach .* tau1=0.25"):
        sample_pairs(dgp, make_dictionaries(dgp, rng), 100, rng)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="L - 1"):
        IsoDGP(k=1, L=6)
    with pytest.raises(ValueError, match="tau2"):
        IsoDGP(tau2=1.2)
    with pytest.raises(ValueError, match="construction"):
        IsoDGP(construction="gaussian")


def test_identifiable_truths_reproduce_the_data(drawn):
    dgp, D, s = drawn
    assert D.truth("bimodal").shape == (6 * dgp.k, dgp.d) and D.truth("unimodal").shape == (10 * dgp.k, dgp.d)
    # Table 5's SAEs get as many atoms as the full dictionary behind each truth: D1 (14k), D2 (10k)
    assert iso_dictionary_size("bimodal", dgp.k) == len(D.d1) and iso_dictionary_size("unimodal", dgp.k) == len(D.d2)
    exact = IsoDGP(**{**dgp.__dict__, "tau1": 1.0})  # no companions at all: [I, T, B] is then exact
    D1 = make_dictionaries(exact, np.random.default_rng(3))
    s1 = sample_pairs(exact, D1, 200, np.random.default_rng(4))
    for side, emb in (("image", s1.x), ("text", s1.y)):
        z = s1.truth_codes("bimodal", side, exact.k, exact.mixing)
        np.testing.assert_allclose(z @ D1.truth("bimodal"), emb, atol=1e-10)
        assert ((z != 0).sum(1) == exact.L).all()  # one unimodal + L - 1 bimodal atoms
    with pytest.raises(ValueError, match="unknown ground truth 'd3'"):
        D.truth("d3")


def test_truth_energy_and_the_as_coded_variant(tmp_path):
    dgp = IsoDGP(d=40, k=4, L=3, tau1=0.5, tau2=0.4)
    gt = write_iso_dataset(dgp, tmp_path, n_train=50, n_eval=400, seed=0, shard_pairs=100)
    for truth in ("bimodal", "unimodal"):
        codes = gt.full_codes(truth)
        np.testing.assert_allclose(gt.truth_energy(truth), (codes ** 2).mean(0))
        np.testing.assert_allclose(codes @ gt.dicts.full(truth), np.concatenate([gt.eval.x, gt.eval.y]), atol=1e-10)
    # the notebook's accumulation adds the image code of D1's B atoms unsquared: only those differ
    codes, b = gt.full_codes("bimodal"), slice(8, 24)
    as_coded = gt.truth_energy("bimodal", as_coded=True)
    np.testing.assert_allclose(as_coded[b], (codes[:400, b].sum(0) + (codes[400:, b] ** 2).sum(0)) / 800)
    np.testing.assert_allclose(np.delete(as_coded, np.arange(8, 24)), np.delete(gt.truth_energy("bimodal"), np.arange(8, 24)))
    np.testing.assert_allclose(gt.truth_energy("unimodal", as_coded=True), gt.truth_energy("unimodal"))


def test_dataset_files_round_trip(tmp_path):
    dgp = IsoDGP(d=32, k=4, L=3, tau1=0.999, tau2=0.4)
    gt = write_iso_dataset(dgp, tmp_path, n_train=300, n_eval=150, seed=1, shard_pairs=100, chunk=64)
    again = IsoGroundTruth.load(tmp_path / "ground_truth.npz")
    assert again.dgp == dgp
    np.testing.assert_array_equal(again.codes("bimodal"), gt.codes("bimodal"))
    stored = EmbeddingStore(tmp_path / "eval")
    batch = next(stored.iter_batches(150))
    assert len(EmbeddingStore(tmp_path / "train")) == 300 and stored.metadata["tau1"] == 0.999
    # the stored eval embeddings are the ones whose codes were kept: C D = [x; y]
    np.testing.assert_allclose(again.full_codes("bimodal") @ again.dicts.full("bimodal"),
                               np.concatenate([batch.image, batch.text]), atol=1e-6)
    np.testing.assert_allclose(again.codes("unimodal") @ again.dicts.truth("unimodal"),
                               np.concatenate([batch.image, batch.text]), atol=1e-6)
