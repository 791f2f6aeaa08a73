"""The study design (vlsae.design.Design) from validated configs: what trains where, and every config
check that stops `snakemake -n` at once naming the key."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate, update_config

from vlsae.design import ConfigError, Design

ROOT = Path(__file__).resolve().parents[1]


def _design(*patches, base="config/config.yaml"):
    cfg = yaml.safe_load((ROOT / base).read_text())
    if base != "config/config.yaml":  # the paper config is layered over the default, as Snakemake does
        default = yaml.safe_load((ROOT / "config/config.yaml").read_text())
        update_config(default, cfg)
        cfg = default
    for patch in patches:
        update_config(cfg, copy.deepcopy(patch))
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return Design(cfg, ROOT)


ZOO = [{"name": "s", "sae": {"architecture": "topk", "latents": 64, "params": {"k": 4}}},
       {"name": "p", "sae": {"architecture": "topk", "latents": 64, "params": {"k": 4}, "arrangement": "specific"}},
       {"name": "a", "sae": {"architecture": "mp", "expansion": 2, "params": {"k": 4}}, "models": ["toy-clip"],
        "protocol": "slow", "align": False}]
REAL = {"embeddings": {"models": ["toy-clip", "toy-siglip"], "datasets": ["toy-coco"]},
        "real_saes": {"train_on": ["toy-coco"], "evaluate_on": ["toy-coco"], "zoo": ZOO, "bimodal_sae": "a",
                      "selections": {**{k: {"saes": ["a"]} for k in ("beta_sweep", "iso_main")},
                                     **{f"het_table{i}": {"saes": ["s", "p"], "models": ["toy-clip"]} for i in range(1, 5)},
                                     "het_fig9": {"saes": ["p"]}},
                      "protocols": {"slow": {"epochs": 3}}}}


def test_het_references_and_fig6_sweep():
    d = _design()
    assert [s.arrangement for s in d.reference_specs] == ["shared", "specific"]
    assert len(d.fig6_sweep) == 2 * 5 and d.fig6_trained[:2] == d.reference_specs
    weights = {(loss, m): spec.aux[loss]["weight"] for loss, m, spec in d.fig6_sweep}
    assert weights[("iso_energy", 64.0)] == pytest.approx(0.03 * 64) and weights[("group_sparse", 0.25)] == pytest.approx(0.0125)
    assert all(spec.aux["iso_energy"]["mask_top1"] for loss, _, spec in d.fig6_sweep if loss == "iso_energy")
    assert set(d.sae_specs) == {s.slug for s in d.fig6_trained}
    assert d.studies["fig6"]["training"]["reconstruction"] == "fvu" and d.studies["fig5"]["training"]["reconstruction"] == "mse"
    assert d.het_dgp(0.5)["alpha"] == 0.5 and d.iso_dgp("exp2")["tau1"] == 0.999


def test_iso_models_have_the_authors_atoms_or_the_scored_truths():
    d = _design()
    for exp in ("exp1", "exp2"):
        models = d.iso_models(exp)
        assert models["sae"].latents == 140 and models["sae"].params == {"k": 10, "selection": "signed"}
        assert models["sae"].decoder_init == models["sae_a"].decoder_init == "gaussian"
        assert models["sae_a"].aux == {"iso_energy": {"weight": 5e-5, "mask_top1": True}} and not models["sae"].aux
    scored = _design({"iso_toy": {"sae": {"atoms": "scored"}}})
    assert (scored.iso_models("exp1")["sae"].latents, scored.iso_models("exp2")["sae"].latents) == (100, 140)


def test_zoo_members_protocols_and_evaluation_sets():
    d = _design(REAL)
    assert d.members("toy-clip", "toy-coco") == ["s", "p", "a"] and d.members("toy-siglip", "toy-coco") == ["s", "p"]
    assert d.members("toy-clip", "toy-coco", protocol="slow") == ["a"]
    assert d.member_protocols("toy-clip", "toy-coco") == ["default", "slow"]
    assert d.zoo_pairs() == [("toy-clip", "toy-coco"), ("toy-siglip", "toy-coco")]
    assert [s.latents for s in d.member_specs("toy-clip", "toy-coco", 32)] == [64, 64, 64]  # expansion 2 x 32
    assert d.zoo_aligned == {"s", "p"} and d.fig2_members("toy-clip", "toy-coco") == ["p"]
    assert d.eval_sets("pairs") == ["toy-coco"] and d.eval_sets("triplets") == [] and d.eval_sets("concepts") == ["toy-coco"]
    # align holds the aligned members (64 latents), evaluation every member (a: 2 x 4096)
    assert d.member_mb("align", "toy-clip", "toy-coco", 4096) == 2000 < d.member_mb("evaluate", "toy-clip", "toy-coco", 4096)
    assert not d.real_embeddings()  # toy models on toy data
    assert d.reader_entry("toy-coco", "t")["root"] == "t" and d.model_entry("toy-clip", "m")["source"] == "m"


def test_browser_stores_and_gallery_sources():
    d = _design(REAL)
    assert d.browse_sets() == ["toy-coco"]
    # ISO galleries from the bimodal SAE (trained on toy-clip only), HET Fig. 3 from the pair, Fig. 10 from the first
    # shared member without an auxiliary loss of the pair's architecture
    assert d.gallery_sources() == {"iso": ("toy-clip", "toy-coco", "toy-coco", "a"),
                                   "het_pair": ("toy-clip", "toy-coco", "toy-coco", "p"),
                                   "het_shared": ("toy-clip", "toy-coco", "toy-coco", "s")}
    assert _design(REAL, {"real_saes": {"browser": {"enabled": False}}}).gallery_sources() == {}
    assert _design(REAL, {"real_saes": {"browser": {"shared_sae": "a"}}}).gallery_sources()["het_shared"][3] == "a"
    default = _design()
    assert default.browse_sets() == ["toy-coco", "toy-imagenet"] and default.gallery_sources()["iso"][3] == "mp-a"
    assert default.gallery_sources()["het_shared"][3] == "topk"  # the pair's architecture, no auxiliary loss


def test_paper_design():
    d = _design(base="config/paper.yaml")
    assert len(d.zoo) == 46 and d.real_embeddings() and d.bimodal_sae == "sae-a-x8"
    betas = sorted(d.zoo[n].aux.get("iso_energy", {}).get("weight", 0.0) for n in d.real["selections"]["beta_sweep"]["saes"])
    assert betas == pytest.approx([0, 1e-6, 3.2e-6, 1e-5, 3.2e-5, 1e-4, 3.2e-4, 1e-3, 3.2e-3, 1e-2])  # ISO App. B, half-decades
    assert d.members("clip-b32", "coco-train") == ["het-fig2"] and d.protocols["iso"]["schedule"] == "onecycle"
    assert d.eval_sets("triplets") == ["fashioniq-val"] and d.eval_sets("captions") == ["laion-1m", "coco-karpathy-test", "cc3m-val"]


@pytest.mark.parametrize("patch, message", [
    ({"embeddings": {"models": ["clip-b33"]}}, r"config key embeddings.models: \['clip-b33'\] not defined"),
    ({"real_saes": {"train_on": ["coco-trian"]}}, r"config key real_saes.train_on: \['coco-trian'\] not defined"),
    ({"models": {"synthetic": {"toy": "clip"}}}, "config key models.synthetic: the name `synthetic` is reserved"),
    ({"real_saes": {"zoo": ZOO[:1] * 2}}, "config key real_saes.zoo: names must be unique"),
    ({"real_saes": {"zoo": [{**ZOO[0], "models": ["clip-b32"]}]}}, r"config key real_saes.zoo\[s\].models: \['clip-b32'\] not among"),
    ({"real_saes": {"zoo": [{**ZOO[0], "protocol": "fast"}]}}, r"config key real_saes.zoo\[s\].protocol: 'fast' not defined"),
    ({"real_saes": {"zoo": [{**ZOO[1], "align": False}]}}, r"config key real_saes.zoo\[p\].align: a modality-specific pair"),
    ({"real_saes": {"bimodal_sae": "p"}}, "config key real_saes.bimodal_sae: 'p' is not a shared SAE"),
    ({"real_saes": {"selections": {"beta_sweep": {"saes": ["s", "p"]}}}},
     r"config key real_saes.selections.beta_sweep.saes: \['p'\] are not shared SAEs"),
    ({"real_saes": {"selections": {"het_table2": {"saes": ["s", "q"]}}}}, r"config key real_saes.selections.het_table2.saes: \['q'\] not in"),
    ({"real_saes": {"selections": {"het_table2": {"saes": ["s"], "models": ["dino"]}}}},
     r"config key real_saes.selections.het_table2.models: \['dino'\] not among"),
    ({"real_saes": {"selections": {"het_table3": {"saes": ["a"], "models": ["toy-siglip"]}}}},
     r"config key real_saes.selections.het_table3.models: 'a' is not trained on \['toy-siglip'\]"),
    ({"real_saes": {"fig2_saes": ["s"]}}, r"config key real_saes.fig2_saes: \['s'\] are not modality-specific"),
    ({"real_saes": {"monosemanticity_encoder": "dino"}}, "config key real_saes.monosemanticity_encoder: 'dino' not defined"),
    ({"real_saes": {"browser": {"shared_sae": "p"}}}, "config key real_saes.browser.shared_sae: 'p' is not a shared zoo member"),
    ({"real_saes": {"zoo": [{"name": "r", "sae": {"architecture": "relu", "latents": 64, "params": {}}}]}},
     r"config key real_saes.zoo\[r\].sae: SAE architecture 'relu' needs parameter\(s\) \['l1'\]"),
    ({"het_synthetic": {"sae": {"architecture": "topk", "latents": 64, "params": {"k": 100}}}},
     r"config key het_synthetic.sae: SAE architecture 'topk': k = 100 must lie in \[1, m = 64\]"),
    ({"datasets": {"coco-train": {"format": "coco", "root": "r", "options": {"karpaty": "x.json"}}}},
     r"config key datasets.coco-train.options: format 'coco' takes no option \['karpaty'\]"),
    ({"results": "/elsewhere"}, "config key results: '/elsewhere' lies outside the working directory"),
    ({"results": ""}, "config key results: is empty"),
    ({"results": "../out"}, "config key results: '../out' contains '..'"),
])
def test_every_check_names_the_key(patch, message):
    with pytest.raises(ConfigError, match=message):
        _design(REAL, patch)


def test_zoo_checks_wait_for_the_zoo_to_be_on():
    _design(REAL, {"real_saes": {"enabled": False, "zoo": [{**ZOO[0], "protocol": "fast"}]}})
