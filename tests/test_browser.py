"""The latent browser: statistics checked by hand, then the site opened in a real headless Chromium."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vlsae.align import align_paired_sae
from vlsae.browser.latents import classes, latent_records, nearest_latents, side_stats
from vlsae.cli import main
from vlsae.embed.encoders import ModelSpec, load_encoder
from vlsae.embed.extract import extract
from vlsae.embed.readers import read_dataset
from vlsae.embed.toy import TOY_COCO_OPTIONS, save_tiny_clip, write_toy_coco
from vlsae.metrics.real import SAERun
from vlsae.sae import PairedSAE, SAESpec
from vlsae.sae.train import TrainConfig, train_paired_sae
from vlsae.store import EmbeddingStore, StoreWriter

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def _identity_topk(d: int) -> PairedSAE:
    """TopK with k = 1 and W_enc = W_dec = I: the code of x is its largest coordinate, where it sits."""
    model = PairedSAE(SAESpec("topk", d, params={"k": 1}), d)
    with torch.no_grad():
        sae = model.side("image")
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
    return model.eval()


def test_side_stats_energy_frequency_top_and_histogram_by_hand(tmp_path):
    image = np.array([[1, 0], [0, 2], [3, 0], [0, 0.5]], dtype=np.float32)
    text = np.array([[0, 1], [0, 1], [0, 1], [2, 0]], dtype=np.float32)
    with StoreWriter(tmp_path / "s", 2, shard_pairs=3) as w:
        w.add(np.arange(4), image, text)
    store, run = EmbeddingStore(tmp_path / "s"), SAERun(_identity_topk(2), CPU)
    s = side_stats(run, store, "image", top=3, bins=4, batch_size=3)
    np.testing.assert_allclose(s.energy, [(1 + 9) / 4, (4 + 0.25) / 4])
    np.testing.assert_allclose(s.frequency, [0.5, 0.5])
    assert s.top_rows[:, 0].tolist() == [2, 0, -1] and s.top_values[:, 0].tolist() == [3, 1, 0]
    assert s.top_rows[:, 1].tolist() == [1, 3, -1]
    # non-zero values: latent 0 has 1 and 3 (bins of width 0.5 from 1), latent 1 has 2 and 0.5, 0.5 and 2 apart
    assert s.lo.tolist() == [1, 0.5] and s.hi.tolist() == [3, 2]
    assert s.hist[0].tolist() == [1, 0, 0, 1] and s.hist[1].tolist() == [1, 0, 0, 1]  # the top edge closes the last bin
    with StoreWriter(tmp_path / "t", 2) as w:
        w.add(np.arange(4), np.array([[1, 0], [2, 0], [3, 0], [4, 0]], dtype=np.float32), text)
    s = side_stats(run, EmbeddingStore(tmp_path / "t"), "image", top=3, bins=4)  # latent 1 never fires
    assert s.lo[1] == s.hi[1] == 0 and s.hist[1].sum() == 0 and s.frequency[1] == 0
    records = latent_records(run, store, tau=0.2, top=3, near=1)
    # latent 0: E_img 2.5, E_txt 1; latent 1: E_img 1.0625, E_txt 0.75
    assert records[0]["mu"] == pytest.approx(2.5 / 3.5) and records[0]["class"] == "bimodal"
    assert records[0]["near"] == [[1, 0.0]] and sorted(records[1]["text"]["top"]) == [[0, 1.0], [1, 1.0], [2, 1.0]]
    assert records[0]["text"]["top"] == [[3, 2.0]] and records[0]["text"]["energy"] == pytest.approx(1.0)


def test_signed_codes_rank_by_magnitude(tmp_path):
    """Matching Pursuit uses w and -w alike: its most activating samples are those of largest |z|."""
    model = PairedSAE(SAESpec("mp", 2, params={"k": 1}), 2)
    with torch.no_grad():
        model.side("image").W_dec.copy_(torch.eye(2))
    image = np.array([[-3, 0], [1, 0], [0, 2]], dtype=np.float32)
    with StoreWriter(tmp_path / "s", 2) as w:
        w.add(np.arange(3), image, image)
    s = side_stats(SAERun(model.eval(), CPU), EmbeddingStore(tmp_path / "s"), "image", top=2)
    assert s.top_rows[:, 0].tolist() == [0, 1] and s.top_values[:, 0].tolist() == [-3, 1]
    assert s.lo[0] == -3 and s.hi[0] == 1


def test_classes_follow_the_modality_score_band():
    mu = np.array([0.5, 0.04, 0.97, np.nan, 0.05, 0.95])
    assert classes(mu, 0.05).tolist() == ["bimodal", "text-only", "image-only", "dead", "bimodal", "bimodal"]


def test_nearest_latents_by_decoder_cosine():
    atoms = np.array([[1, 0], [0.8, 0.6], [-1, 0], [0, 1]], dtype=float)
    ids, cos = nearest_latents(atoms, 2, signed_codes=False)
    assert ids[0].tolist() == [1, 3] and cos[0].tolist() == pytest.approx([0.8, 0.0])
    ids, cos = nearest_latents(atoms, 1, signed_codes=True)  # w and -w are one atom for signed codes
    assert ids[0].tolist() == [2] and cos[0].tolist() == [-1.0]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A toy COCO embedded by a tiny CLIP, a shared TopK SAE and an aligned modality-specific pair, browsed."""
    root = tmp_path_factory.mktemp("browse")
    write_toy_coco(root / "coco", n_images=48, captions_per_image=2, seed=0, corrupt=1, empty=1)
    spec = ModelSpec(name="toy-clip", source=str(save_tiny_clip(root / "clip")))
    dataset = {"format": "coco", "root": str(root / "coco"), "options": TOY_COCO_OPTIONS}
    extract(load_encoder(spec, CPU), spec, read_dataset("coco", root / "coco", **TOY_COCO_OPTIONS), root / "store", dataset,
            shard_pairs=40, batch_size=16, workers=0, progress=False)
    store, cfg = EmbeddingStore(root / "store"), TrainConfig(epochs=5, batch_size=16, lr=1e-3)
    shared = train_paired_sae(SAESpec("topk", 48, params={"k": 2}), store, cfg, root / "shared", progress=False)
    align_paired_sae(shared, store, progress=False).save(root / "shared" / "alignment.npz")
    pair = train_paired_sae(SAESpec("topk", 64, arrangement="specific", params={"k": 2}), store, cfg, root / "pair",
                            progress=False)
    align_paired_sae(pair, store, progress=False).save(root / "pair" / "alignment.npz")
    main(["browse", "--data", str(root / "store"), "--run", "shared", "0", str(root / "shared"),
          "--run", "pair", "0", str(root / "pair"), "--title", "model=toy-clip", "--title", "dataset=toy-coco",
          "--top", "6", "--out", str(root / "browser")])
    return root / "browser"


def _data(folder: Path) -> dict:
    return json.loads((folder / "latents.json").read_text())


def test_site_files_and_records(site):
    assert sorted(p.name for p in site.iterdir()) == ["pair", "shared", "thumbs"]
    for name in ("shared", "pair"):
        assert sorted(p.name for p in (site / name).iterdir()) == ["data.js", "index.html", "latent.html", "latents.json"]
    shared, pair = _data(site / "shared"), _data(site / "pair")
    assert len(shared["latents"]) == 48 and len(pair["latents"]) == 32
    assert all("partner" in r and -1 <= r["partner"]["cosine"] <= 1 for r in pair["latents"])
    assert all("match" in r for r in shared["latents"])
    shown = {r for rec in shared["latents"] for r, _ in rec["image"]["top"]}
    thumbs = {s["thumb"] for r, s in shared["samples"].items() if int(r) in shown}
    assert None not in thumbs and all((site / "shared" / t).exists() for t in thumbs)
    # one thumbnail per distinct image, shared by both SAEs' pages (48 images, 1 corrupt)
    assert len(list((site / "thumbs").iterdir())) <= 47


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("Debian chromium and chromium-driver are not installed (make test installs them where apt can)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_browser_in_headless_chromium(site):
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    shots = REPO / "results" / "browser-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser = _chromium()
    try:
        data = _data(site / "shared")
        live = [r for r in data["latents"] if r["class"] != "dead"]
        browser.get((site / "shared" / "index.html").as_uri())
        rows = browser.find_elements(By.CSS_SELECTOR, "#latents tbody tr")
        assert sorted(int(r.get_attribute("data-id")) for r in rows) == sorted(r["id"] for r in live)

        def visible_ids():
            return [int(r.get_attribute("data-id")) for r in browser.find_elements(By.CSS_SELECTOR, "#latents tbody tr")
                    if r.is_displayed()]

        by_energy = [r["id"] for r in sorted(live, key=lambda r: (-r["energy"], r["id"]))]
        assert visible_ids() == by_energy  # the default order: energy, highest first
        browser.find_element(By.CSS_SELECTOR, 'th[data-key="mu"]').click()
        mus = [next(r["mu"] for r in live if r["id"] == i) for i in visible_ids()]
        assert mus == sorted(mus, reverse=True)
        browser.find_element(By.CSS_SELECTOR, 'th[data-key="mu"]').click()
        mus = [next(r["mu"] for r in live if r["id"] == i) for i in visible_ids()]
        assert mus == sorted(mus)
        browser.save_screenshot(str(shots / "index.png"))
        both = [r for r in live if r["image"]["top"] and r["text"]["top"]]  # fires on images and on captions
        target = both[0]["id"]
        search = browser.find_element(By.ID, "search")
        search.send_keys(f"#{target}")
        assert visible_ids() == [target]
        word = data["samples"][str(both[0]["text"]["top"][0][0])]["caption"].split()[-1].lower()
        search.clear()
        search.send_keys(word)
        assert target in visible_ids() and all(
            any(word in data["samples"][str(r)]["caption"].lower() for r, _ in next(x for x in live if x["id"] == i)["text"]["top"])
            for i in visible_ids())
        browser.get((site / "shared" / "index.html").as_uri().replace("index.html", f"latent.html#{target}"))
        record = next(r for r in live if r["id"] == target)
        images = browser.find_elements(By.CSS_SELECTOR, "#top-images img")
        assert len(images) == len(record["image"]["top"]) > 0
        assert all(browser.execute_script("return arguments[0].naturalWidth", im) > 0 for im in images)  # thumbnails load
        captions = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#top-captions li")]
        assert len(captions) == len(record["text"]["top"])
        assert data["samples"][str(record["text"]["top"][0][0])]["caption"] in captions[0]
        assert f"Latent #{target}" in browser.find_element(By.ID, "latent-title").text
        browser.save_screenshot(str(shots / "latent.png"))
        browser.get((site / "pair" / "latent.html").as_uri() + "#0")
        assert "text partner #" in browser.find_element(By.ID, "latent-stats").text
    finally:
        browser.quit()


def _record(i, kind, energy, mu, **extra):
    side = {"energy": energy, "frequency": 0.1, "top": [[i, 1.0 + i]], "hist": {"lo": 0, "hi": 1, "counts": [1]}, "ms": None}
    return {"id": i, "class": kind, "mu": mu, "energy": energy, "image": side, "text": side, "near": [], **extra}


def test_gallery_selection_rules():
    from vlsae.report.galleries import NEAREST, select

    records = [_record(0, "bimodal", 5.0, 0.5), _record(1, "bimodal", 1.0, 0.4), _record(2, "bimodal", 3.0, 0.6),
               _record(3, "bimodal", 2.0, 0.5), _record(4, "bimodal", 4.0, 0.5), _record(5, "image-only", 9.0, 0.99),
               _record(6, "text-only", 8.0, 0.02), _record(7, "dead", 0.0, None)]
    # ISO Fig. 18: the two highest- and the two lowest-energy bimodal latents
    assert [(r["id"], label) for r, label in select(records, "bimodal")] == [
        (0, "high energy"), (4, "high energy"), (3, "low energy"), (1, "low energy")]
    assert [r["id"] for r, _ in select(records, "image-only")] == [5]
    # too few bimodal latents: the unimodal ones nearest mu = 0.5 fill the rows, marked
    assert [(r["id"], label) for r, label in select(records[:1] + records[5:], "bimodal")] == [
        (0, "high energy"), (6, NEAREST), (5, NEAREST)]
    pairs = [_record(i, "bimodal", 1.0, 0.5, partner={"id": 9 - i, "corr": c, "cosine": 0.1})
             for i, c in enumerate([0.2, 0.9, None, 0.5, 0.7])]
    assert [r["id"] for r, _ in select(pairs, "coactivation")] == [1, 4, 3]  # highest c first; unmatched left out
    shared = [_record(i, "bimodal", 1.0, 0.5, match={"id": i if collapsed else 0, "corr": c, "collapsed": collapsed})
              for i, (c, collapsed) in enumerate([(0.3, True), (0.1, False), (0.6, True), (0.2, True), (0.9, True)])]
    assert [r["id"] for r, _ in select(shared, "collapsed")] == [3, 0, 2]  # collapsed only, lowest c first (HET Fig. 10)
    with pytest.raises(ValueError, match="gallery kind"):
        select(records, "bimodals")


@pytest.mark.parametrize("kind", ["bimodal", "image-only", "text-only", "collapsed"])
def test_gallery_files_from_a_browser(site, tmp_path, kind):
    import pandas as pd

    from vlsae.report.galleries import gallery

    out = {ext: tmp_path / f"g.{ext}" for ext in ("csv", "md", "pdf", "png")}
    frame = gallery(site / "shared", kind, *(str(out[e]) for e in ("csv", "md", "pdf", "png")))
    assert all(p.stat().st_size > 0 for p in out.values())
    assert pd.read_csv(out["csv"]).shape[0] == len(frame) <= 4
    records = {r["id"]: r for r in _data(site / "shared")["latents"]}
    for _, row in frame.iterrows():  # the stated mean activation is that of the samples shown
        shown = records[row["latent"]]["image"]["top"][:5]
        if shown:
            assert row["mean_image_activation_shown"] == pytest.approx(sum(v for _, v in shown) / len(shown))
