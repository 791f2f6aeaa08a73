"""Auxiliary losses against values computed by hand."""

import math

import pytest
import torch

from vlsae.sae import SAESpec
from vlsae.sae.base import Code
from vlsae.sae.losses import GroupSparse, IsoEnergy, build_aux_losses, inner

M = 4
IMG = Code(torch.tensor([[3.0, 0.0, 4.0, 0.0], [0.0, 1.0, 0.0, 0.0]]), None, M)
TXT = Code(torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 2.0]]), None, M)


def _sparse(code: Code, k: int = 2) -> Code:
    values, indices = code.values.abs().topk(k, dim=1)
    return Code(code.values.gather(1, indices), indices, code.m)


def test_iso_energy_is_minus_mean_paired_cosine():
    # pair 1: cos((3,0,4,0), (0,0,1,0)) = 4/5; pair 2: cos((0,1,0,0), (0,2,0,2)) = 2/(1*sqrt(8))
    expected = -(0.8 + 2 / math.sqrt(8)) / 2
    assert IsoEnergy(weight=1.0)(IMG, TXT).item() == pytest.approx(expected)
    assert IsoEnergy(weight=1.0)(_sparse(IMG), _sparse(TXT)).item() == pytest.approx(expected)
    # inner-product form of HET Prop. 4: -(4 + 2) / 2
    assert IsoEnergy(weight=1.0, normalize=False)(IMG, TXT).item() == pytest.approx(-3.0)


def test_iso_energy_top1_mask_zeroes_both_top1_latents_in_both_codes():
    # pair 1: image top-1 is latent 2 (4), text top-1 latent 2 too: both codes lose latent 2 ->
    #   (3,0,0,0) vs (0,0,0,0): cos 0
    # pair 2: image top-1 latent 1, text top-1 latent 1 (first of the two 2s): both lose latent 1 ->
    #   (0,0,0,0) vs (0,0,0,2): cos 0
    assert IsoEnergy(weight=1.0, mask_top1=True)(IMG, TXT).item() == pytest.approx(0.0)
    # the two top-1 latents differ: image (1, 5, 2, 0) top-1 = 1, text (1, 0, 2, 3) top-1 = 3; both codes
    # lose latents 1 and 3 -> (1, 0, 2, 0) vs (1, 0, 2, 0): cos 1
    img, txt = Code(torch.tensor([[1.0, 5, 2, 0]]), None, M), Code(torch.tensor([[1.0, 0, 2, 3]]), None, M)
    assert IsoEnergy(weight=1.0, mask_top1=True)(img, txt).item() == pytest.approx(-1.0)
    # image (2, 3, 0, 1), text (2, 1, 0, 3): latents 1 and 3 go from both -> (2,0,0,0) vs (2,0,0,0): cos 1;
    # each code losing only its own largest entry would leave (2,0,0,1) vs (2,1,0,0): cos 0.8
    img, txt = Code(torch.tensor([[2.0, 3, 0, 1]]), None, M), Code(torch.tensor([[2.0, 1, 0, 3]]), None, M)
    assert IsoEnergy(weight=1.0, mask_top1=True)(img, txt).item() == pytest.approx(-1.0)
    # the same on sparse codes
    assert IsoEnergy(weight=1.0, mask_top1=True)(_sparse(img, 3), _sparse(txt, 3)).item() == pytest.approx(-1.0)


def test_top1_mask_on_matching_pursuit_codes_with_repeated_indices():
    from vlsae.sae.losses import mask_top1, top1_index

    # MP picked latent 0 twice (1.5 + 1.5 = 3 on the dense code), latent 2 once with 2.5: the top-1 is
    # latent 0, which no single entry reveals; text: latent 2 (value 4); latent 1 negative
    img = Code(torch.tensor([[1.5, 2.5, 1.5, -0.5]]), torch.tensor([[0, 2, 0, 1]]), M)
    txt = Code(torch.tensor([[4.0, 1.0, 0.0, 0.0]]), torch.tensor([[2, 3, 0, 0]]), M)
    assert top1_index(img).tolist() == [0] and top1_index(txt).tolist() == [2]
    a, b = mask_top1(img, txt)
    assert a.dense().tolist() == [[0.0, -0.5, 0.0, 0.0]] and b.dense().tolist() == [[0.0, 0.0, 0.0, 1.0]]
    # a code without a positive entry masks nothing of its own (the dense argmax is a zero entry)
    neg = Code(torch.tensor([[-1.0, -2.0]]), torch.tensor([[1, 3]]), M)
    assert top1_index(neg).tolist() == [-1]
    assert mask_top1(neg, txt)[0].dense().tolist() == [[0.0, -1.0, 0.0, -2.0]]


def test_sparse_inner_product_handles_repeats_and_disjoint_supports():
    a = Code(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0, 0, 2]]), M)  # dense (3, 0, 3, 0)
    b = Code(torch.tensor([[5.0, 7.0]]), torch.tensor([[2, 0]]), M)  # dense (7, 0, 5, 0)
    assert inner(a, b).item() == pytest.approx(3 * 7 + 3 * 5)
    assert inner(a, a).item() == pytest.approx(18.0)
    assert inner(a, Code(torch.tensor([[1.0]]), torch.tensor([[1]]), M)).item() == 0.0


def test_group_sparse_sum_of_pair_norms():
    # pair 1: sqrt(9) + sqrt(16 + 1) ; pair 2: sqrt(1 + 4) + sqrt(4)
    expected = (3 + math.sqrt(17) + math.sqrt(5) + 2) / 2
    assert GroupSparse(weight=1.0)(IMG, TXT).item() == pytest.approx(expected)
    assert GroupSparse(weight=1.0)(_sparse(IMG), _sparse(TXT)).item() == pytest.approx(expected)


def test_group_sparse_on_supports_matches_the_dense_loss_and_its_gradient():
    # supports with repeats (Matching Pursuit), zero padding and partial overlap between modalities
    gen = torch.Generator().manual_seed(0)
    indices = {name: torch.randint(0, 6, (64, 5), generator=gen) for name in ("img", "txt")}
    values = {name: torch.rand(64, 5, generator=gen) * (torch.rand(64, 5, generator=gen) > 0.2)
              for name in ("img", "txt")}
    grads = []
    for sparse in (True, False):
        leaves = {name: v.clone().requires_grad_() for name, v in values.items()}
        codes = [Code(leaves[name], indices[name], 6) for name in ("img", "txt")]
        if not sparse:
            codes = [Code(code.dense(), None, 6) for code in codes]
        loss = GroupSparse(weight=1.0)(*codes)
        loss.backward()
        grads.append((loss.detach(), leaves["img"].grad, leaves["txt"].grad))
    for on_support, dense in zip(*grads):
        torch.testing.assert_close(on_support, dense)


def test_group_sparse_gradient_is_finite_at_zero():
    zi = torch.tensor([[0.0, 3.0]], requires_grad=True)
    zt = torch.tensor([[0.0, 4.0]], requires_grad=True)
    GroupSparse(weight=1.0)(Code(zi, None, 2), Code(zt, None, 2)).backward()
    torch.testing.assert_close(zi.grad, torch.tensor([[0.0, 0.6]]))
    torch.testing.assert_close(zt.grad, torch.tensor([[0.0, 0.8]]))


def test_config_errors_name_the_key_and_slug_lists_the_losses():
    with pytest.raises(ValueError, match="unknown auxiliary loss 'iso'"):
        build_aux_losses({"iso": {"weight": 1.0}})
    with pytest.raises(ValueError, match="needs a 'weight'"):
        build_aux_losses({"iso_energy": {}})
    with pytest.raises(ValueError, match="'mask_p1'"):
        SAESpec(aux={"group_sparse": {"weight": 0.05, "mask_p1": 0.2}})
    with pytest.raises(ValueError, match="mask_p"):
        GroupSparse(weight=0.05, mask_p=1.5)
    spec = SAESpec(architecture="mp", latents=64, params={"k": 8},
                   aux={"iso_energy": {"weight": 1e-4, "mask_top1": True, "normalize": True},
                        "group_sparse": {"weight": 0.05, "mask_p": 0.0}})
    assert spec.slug == "mp-k8-m64-shared-group_sparse0.05-iso_energy0.0001-mask_top1True"
