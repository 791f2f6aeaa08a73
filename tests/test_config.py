import copy
import subprocess
import sys

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = "workflow/schemas/config.schema.yaml"


def _validate(repo, cfg):
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(repo / SCHEMA))
    return cfg


@pytest.mark.parametrize("name", ["config/config.yaml", "config/paper.yaml", ".test/config/config.yaml"])
def test_shipped_configs_validate_and_get_defaults(repo, name):
    cfg = _validate(repo, yaml.safe_load((repo / name).read_text()))
    assert cfg["results"] == "results"
    assert cfg["het_synthetic"]["training"]["lr"] == 5e-4 or name.startswith(".test")
    assert cfg["het_synthetic"]["dgp"]["sparsity"] == 0.99


def test_paper_config_is_exact(repo):
    cfg = _validate(repo, yaml.safe_load((repo / "config/paper.yaml").read_text()))
    het, fig5 = cfg["het_synthetic"], cfg["het_fig5"]
    assert (het["dgp"]["d"], het["dgp"]["n_shared"], het["dgp"]["n_image"], het["dgp"]["n_text"]) == (256, 1024, 512, 512)
    assert (het["n_train"], het["n_eval"], het["dgp"]["noise_std"], het["dgp"]["max_interference"]) == (50000, 10000, 0.05, 0.30)
    assert fig5["alphas"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and fig5["seeds"] == [0, 1, 2]
    assert het["sae"]["latents"] == 8192 and het["sae"]["params"] == {"k": 16}
    fig6 = cfg["het_fig6"]
    assert fig6["alpha"] == 0.5 and fig6["multipliers"] == [1 / 64, 1 / 4, 1, 4, 64]
    assert fig6["losses"] == {"iso_energy": {"weight": 0.03, "mask_top1": True}, "group_sparse": {"weight": 0.05}}
    f6 = fig6["training"]  # the HET authors' objective, on which their weights are centred
    assert (f6["reconstruction"], f6["weight_decay"], f6["grad_clip"], f6["weight_decay_biases"]) == ("fvu", 1e-5, 1.0, False)
    assert (fig6["metrics"], fig6["matching"]) == ({"reconstruction": "mse", "feature_recovery": "topk"}, "signed")
    iso = cfg["iso_toy"]  # the ISO authors' toy run (0_DGP.ipynb)
    assert iso["dgp"] == {"d": 512, "k": 10, "L": 10, "tau2": 0.4, "construction": "toy_general", "coherence": 0.5}
    assert (iso["n_train"], iso["n_eval"], iso["seeds"], iso["sae"]) == (10000, 10000, [0, 1, 2], {"atoms": "bimodal",
                                                                                              "selection": "signed", "decoder_init": "gaussian"})
    it = iso["training"]
    assert (it["lr"], it["batch_size"], it["epochs"], it["grad_clip"], it["reconstruction"], it["decoder_grad"]) == \
        (5e-4, 512, 500, 1.0, "element_mean", "full")
    assert iso["alignment"] == {"weight": 5e-5, "mask_top1": True}
    t = het["training"]
    assert (t["batch_size"], t["epochs"], t["weight_decay"], t["warmup_fraction"], t["schedule"]) == (256, 10, 0.0, 0.0, "constant")


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"het_fig5": {"sead": [0]}}, r"'sead' was unexpected"),
        ({"het_synthetic": {"dgp": {"d": "sixty-four"}}}, "'sixty-four' is not of type 'integer'"),
        ({"het_synthetic": {"training": {"schedule": "linear"}}}, "linear"),
        ({"het_fig5": {"alphas": [1.5]}}, "1.5"),
        ({"het_synthetic": {"sae": {"latents": 33}}}, "33"),
        ({"het_synthetic": {"sae": {"architecture": "gated"}}}, "'gated' is not one of"),
        ({"het_synthetic": {"sae": {"aux": {"iso": {"weight": 1}}}}}, "'iso' was unexpected"),
        ({"het_synthetic": {"sae": {"aux": {"group_sparse": {"mask_p": 0.2}}}}}, "'weight' is a required property"),
        ({"het_fig6": {"losses": {"group_sparse": {"weight": -1}}}}, "-1"),
        ({"datasets": {"mine": {"format": "coco"}}}, r"(?s)not valid under any.*instance\['datasets'\]\['mine'\]"),
        ({"datasets": {"mine": {"format": "tfrecord", "root": "x"}}}, "'tfrecord' is not one of"),
        ({"models": {"mine": {"source": "a/b", "toy": "clip"}}}, r"(?s)valid under each.*instance\['models'\]\['mine'\]"),
        ({"models": {"mine": {"sorce": "a/b"}}}, "'sorce' was unexpected"),
        ({"embeddings": {"precision": "int8"}}, "'int8' is not one of"),
    ],
)
def test_bad_config_names_the_key(repo, patch, message):
    with pytest.raises(WorkflowError, match=message):
        _validate(repo, patch)


def test_every_architecture_and_aux_loss_validates_and_builds(repo):
    from vlsae.sae import ARCHITECTURES, SAESpec
    from vlsae.sae.losses import AUX_LOSSES

    params = {"relu": {"l1": 0.1}, "jumprelu": {"l0": 0.1, "threshold": 0.1, "bandwidth": 0.05},
              "topk": {"k": 4}, "batchtopk": {"k": 4, "threshold_momentum": 0.9}, "mp": {"k": 4}}
    assert set(params) == set(ARCHITECTURES)
    aux = {"iso_energy": {"weight": 1e-4, "mask_top1": True}, "group_sparse": {"weight": 0.05}}
    assert set(aux) == set(AUX_LOSSES)
    for arch, p in params.items():
        cfg = _validate(repo, {"het_synthetic": {"sae": {"architecture": arch, "latents": 64, "params": p, "aux": aux}}})
        SAESpec(**cfg["het_synthetic"]["sae"])


def _failed_dry_run(repo, tmp_path, config_text):
    """Output of a Snakemake dry run with ``config_text``; asserts that it failed."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_text)
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--cores", "1"],
                         cwd=repo, capture_output=True, text=True)
    assert out.returncode != 0
    return out.stdout + out.stderr


def test_snakemake_refuses_a_bad_key_at_once(repo, tmp_path):
    assert "sead" in _failed_dry_run(repo, tmp_path, "het_fig5:\n  sead: [0]\n")


def test_snakemake_refuses_an_unregistered_model(repo, tmp_path):
    output = _failed_dry_run(repo, tmp_path, "embeddings:\n  models: [clip-b33]\n")
    assert "config key embeddings.models: ['clip-b33'] not defined" in output


def test_cli_rejects_unknown_keys(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vlsae.cli", "synth-het", "--out", str(tmp_path), "--dgp", '{"dd": 3}'],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "unknown DGP key(s): ['dd']" in out.stderr


def test_duplicate_seeds_and_alphas_are_refused_by_the_schema(repo):
    # the design's own checks (vlsae.design.Design) are unit-tested in tests/test_design.py
    for patch in ({"het_fig5": {"seeds": [0, 1, 1]}}, {"het_fig5": {"alphas": [0.5, 0.5]}}):
        with pytest.raises(WorkflowError, match="has non-unique elements"):
            _validate(repo, patch)


def test_external_results_need_an_explicit_yes(repo, tmp_path):
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q", "--cores", "1", "--config",
                          f"results={tmp_path}/out", "allow_external_results=True"], cwd=repo, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
