"""SAELens interop: export, load with the real ``sae_lens`` package, import back; reconstructions agree to 1e-6."""

import json

import pytest
import torch

from vlsae.cli import main
from vlsae.sae import PairedSAE, SAESpec, load_paired_sae
from vlsae.sae.interop import export_saelens, import_saelens

D, M = 16, 64
SPECS = {
    "relu": SAESpec("relu", M, params={"l1": 1e-3}),
    "topk": SAESpec("topk", M, params={"k": 4}),
    "jumprelu": SAESpec("jumprelu", M, params={"l0": 1e-3}),
    "batchtopk": SAESpec("batchtopk", M, params={"k": 4}),
    "mp": SAESpec("mp", M, params={"k": 4, "selection": "signed", "pre_bias": True}),
    "topk-pair": SAESpec("topk", 2 * M, arrangement="specific", params={"k": 4}),
}


def _trained_looking(spec: SAESpec) -> PairedSAE:
    """Random weights with non-zero biases and thresholds, so every term of the encoder counts."""
    torch.manual_seed(0)
    model = PairedSAE(spec, D)
    with torch.no_grad():
        for sae in model.components():
            sae.b_dec.normal_(0, 0.1)
            if hasattr(sae, "b_enc"):
                sae.b_enc.normal_(0, 0.1)
            if hasattr(sae, "log_threshold"):
                sae.log_threshold.copy_(torch.empty(M).uniform_(-4, -2))
            if hasattr(sae, "threshold"):
                sae.threshold.fill_(0.05)
    return model.eval()


def _ours(model: PairedSAE, x: torch.Tensor, modality: str) -> torch.Tensor:
    with torch.no_grad():
        return model.side(modality)(x)[0]


@pytest.mark.parametrize("name", list(SPECS))
def test_saelens_round_trip_reconstructs_to_1e6(name, tmp_path):
    sae_lens = pytest.importorskip("sae_lens")  # installed by `make test` (the saelens extra)
    model = _trained_looking(SPECS[name])
    x = torch.randn(200, D) * 0.5
    folders = export_saelens(model, tmp_path / "saelens")
    for folder, modality in zip(folders, ("image", "text") if len(folders) == 2 else ("image",)):
        assert json.loads((folder / "cfg.json").read_text())["d_sae"] == M
        theirs = sae_lens.SAE.load_from_disk(folder)
        with torch.no_grad():
            reconstruction = theirs.decode(theirs.encode(x))
        torch.testing.assert_close(reconstruction, _ours(model, x, modality), atol=1e-6, rtol=0)
    back = import_saelens(tmp_path / "saelens")
    for modality in ("image", "text"):
        torch.testing.assert_close(_ours(back, x, modality), _ours(model, x, modality), atol=1e-6, rtol=0)


def test_cli_export_then_import_gives_a_loadable_run_folder(tmp_path):
    model = _trained_looking(SPECS["topk-pair"])
    model.save(tmp_path / "run")
    main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "saelens")])
    assert sorted(p.name for p in (tmp_path / "saelens").iterdir()) == ["image", "text"]
    assert sorted(p.name for p in (tmp_path / "saelens" / "text").iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    main(["import", "--source", str(tmp_path / "saelens"), "--out", str(tmp_path / "back")])
    back = load_paired_sae(tmp_path / "back")
    assert back.spec.arrangement == "specific" and back.spec.latents == 2 * M
    x = torch.randn(50, D)
    torch.testing.assert_close(_ours(back, x, "text"), _ours(model, x, "text"), atol=1e-6, rtol=0)


def test_what_saelens_cannot_represent_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match="selection: absolute"):
        export_saelens(_trained_looking(SAESpec("mp", M, params={"k": 4})), tmp_path / "mp")
    export_saelens(_trained_looking(SPECS["relu"]), tmp_path / "relu")
    cfg = json.loads((tmp_path / "relu" / "cfg.json").read_text())
    (tmp_path / "relu" / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(ValueError, match="normalize_activations"):
        import_saelens(tmp_path / "relu")
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        import_saelens(tmp_path)


def test_apply_b_dec_to_input_false_is_folded_into_the_encoder_bias(tmp_path):
    model = _trained_looking(SPECS["relu"])
    export_saelens(model, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "apply_b_dec_to_input": False}))
    back = import_saelens(tmp_path)  # act(x W_enc + b_enc): b_enc gains -W_enc b_dec relative to ours
    sae, new = model.side("image"), back.side("image")
    x = torch.randn(30, D)
    with torch.no_grad():
        torch.testing.assert_close(new.pre_activation(x), x @ sae.W_enc.T + sae.b_enc, atol=1e-6, rtol=0)
