"""Tables and figures from tidy metrics, and the claims scorecard."""

from __future__ import annotations

from pathlib import Path

from .args import (DEVICE, METRICS_IN, POSITIVE, REPORT_OUTPUTS, RUNS, TABLE_OUTPUTS, LazyChoices, arg, command, each_run,
                   json_object, key_value, log, read_tidy)


@command("report-het-fig5", "HET Fig. 5 table and figure from tidy metrics", METRICS_IN, *REPORT_OUTPUTS)
def report_het_fig5(a) -> None:
    from ..report.het_fig5 import plot, wide_table, write_table

    table = wide_table(read_tidy(a.metrics))
    write_table(table, a.table, a.markdown)
    plot(table, a.pdf, a.png)


@command("report-het-fig6", "HET Fig. 6 table and figure from tidy metrics", METRICS_IN,
         arg("--sweep", type=json_object, required=True,
             help="the swept SAEs (JSON): sae_id -> [loss, weight multiplier], e.g. "
                  "'{\"topk-k4-m2048-shared-iso_energy0.0075\": [\"iso_energy\", 0.25]}'"),
         arg("--dgp", type=json_object, help="the HET DGP (JSON): marks the ground-truth codes' alignment error"),
         arg("--settings", type=json_object, default={},
             help="training, losses, metrics and matching of the sweep (JSON), stated in the table's notes"),
         *REPORT_OUTPUTS)
def report_het_fig6(a) -> None:
    from ..metrics.synthetic import true_code_alignment_error
    from ..report.het_fig6 import plot, wide_table, write_table
    from ..strict import from_dict
    from ..synth.het import HetDGP

    table = wide_table(read_tidy(a.metrics), a.sweep)
    floor = true_code_alignment_error(from_dict(HetDGP, a.dgp, "--dgp")) if a.dgp else None
    write_table(table, a.table, a.markdown, floor, {**a.settings, "dgp": a.dgp or {}})
    plot(table, a.pdf, a.png, floor)


@command("report-het-theory", "HET theory phase figure and table",
         arg("boundaries", nargs="+", type=Path, help="theory-phases outputs (.parquet)"), *REPORT_OUTPUTS)
def report_het_theory(a) -> None:
    from ..report.het_theory import plot, write_table

    table = read_tidy(a.boundaries)
    write_table(table, a.table, a.markdown)
    plot(table, a.pdf, a.png)


@command("report-iso-table5", "ISO Table 5 (csv + markdown with the paper's values)", METRICS_IN, *TABLE_OUTPUTS)
def report_iso_table5(a) -> None:
    from ..report.iso_toy import table5, write_table5

    write_table5(table5(read_tidy(a.metrics)), a.table, a.markdown)


@command("report-cosines", "cosine histograms of stores (ISO Fig. 9 on the toy DGP, Fig. 11 on VLMs)",
         arg("--data", required=True, type=key_value, action="append",
             help="NAME=STORE: a store per panel, e.g. exp1=results/.../eval; repeatable"),
         arg("--pairs", type=POSITIVE, default=5000, help="pairs of each type to draw"),
         arg("--heading", default="ISO Fig. 9: cosine similarities of the toy DGP", help="markdown title"),
         *REPORT_OUTPUTS)
def report_cosines(a) -> None:
    from ..report.iso_toy import cosine_table, pair_cosines, panel_titles, plot_cosines, write_cosine_table
    from ..store import EmbeddingStore

    stores = {name: EmbeddingStore(path) for name, path in a.data}
    cosines = {name: pair_cosines(store, a.pairs) for name, store in stores.items()}
    write_cosine_table(cosine_table(cosines), a.table, a.markdown, a.heading)
    plot_cosines(cosines, panel_titles(stores), a.pdf, a.png)


@command("report-pca", "ISO Fig. 10: PCA of each store's image and text embeddings, with DiM and W",
         arg("--data", required=True, type=key_value, action="append", help="NAME=STORE: a store per panel; repeatable"),
         arg("--pairs", type=POSITIVE, default=2000, help="pairs drawn per store (the first ones)"),
         *REPORT_OUTPUTS)
def report_pca(a) -> None:
    from ..report.iso_toy import pca_panel, pca_table, plot_pca
    from ..report.real import write_table
    from ..store import EmbeddingStore

    panels = {name: pca_panel(EmbeddingStore(path), a.pairs) for name, path in a.data}
    write_table(pca_table(panels), a.table, a.markdown, "ISO Fig. 10: modality gap of the encoders in PCA",
                "DiM and W on the drawn pairs (Table 6 has them on whole stores); the principal components of images "
                "and texts together, centred on their joint mean.")
    plot_pca(panels, a.pdf, a.png)


@command("report-features", "ISO Figs. 12-17: the latents of the MP-SAE and SAE-A one by one",
         arg("--run", required=True, nargs=2, action="append", metavar=("LABEL", "FOLDER"), help="a trained SAE; repeatable"),
         arg("--data", required=True, type=Path, help="evaluation store"),
         arg("--pairs", type=POSITIVE, default=5000, help="pairs drawn (the first ones)"),
         arg("--tau", type=float, default=0.05, help="bimodal threshold"),
         arg("--tables", required=True, type=Path, help="folder of the six tables"),
         arg("--figures", required=True, type=Path, help="folder of the six figures"))
def report_features(a) -> None:
    from ..report.features import feature_runs, write_figures
    from ..store import EmbeddingStore

    write_figures(feature_runs(a.run, EmbeddingStore(a.data), a.pairs, a.tau), str(a.tables), str(a.figures))


SAE_FILTER = arg("--sae", action="append", default=[], help="only these SAEs (zoo names; repeatable; default: every one)")
MODEL_FILTER = arg("--model", action="append", default=[], help="only these models (repeatable; default: every one)")


def _selected(tidy, saes: list[str], models: list[str]):
    """The rows of the SAEs ``saes`` and models ``models`` (all where none is named), the SAEs in the order named;
    a name without rows is an error."""
    for column, names in (("sae", saes), ("model", models)):
        missing = sorted(set(names) - set(tidy[column])) if names else []
        if missing:
            raise ValueError(f"--{column} {missing}: no rows in the metrics (there: {sorted(set(tidy[column]))})")
        if names:
            tidy = tidy[tidy[column].isin(names)]
    if saes:
        tidy = tidy.assign(_order=tidy["sae"].map({n: i for i, n in enumerate(saes)})).sort_values("_order", kind="stable")
        tidy = tidy.drop(columns="_order")
    return tidy


@command("report-table", "a real-data table (ISO Tables 3, 6, 7-8, 9-12, HET Table 1) from tidy metrics", METRICS_IN,
         arg("--kind", required=True, choices=LazyChoices("vlsae.report.real", "TABLES"), metavar="KIND",
             help="which table (ISO Table 3, 6, ...: a wrong one lists them)"), SAE_FILTER, MODEL_FILTER, *TABLE_OUTPUTS)
def report_table(a) -> None:
    from ..report.real import write_kind

    write_kind(a.kind, _selected(read_tidy(a.metrics), a.sae, a.model), a.table, a.markdown)


@command("report-figure", "a real-data figure: HET Fig. 7 (eval-steering), Fig. 8 (eval-monosemanticity) or ISO "
         "Figs. 7-8 (eval-saes of the beta sweep) from tidy metrics", METRICS_IN,
         arg("--kind", required=True, choices=LazyChoices("vlsae.report.real", "FIGURES"), metavar="KIND",
             help="which figure (a wrong one lists them)"), SAE_FILTER, MODEL_FILTER, *REPORT_OUTPUTS)
def report_figure(a) -> None:
    from ..report.real import write_figure

    write_figure(a.kind, _selected(read_tidy(a.metrics), a.sae, a.model), a.table, a.markdown, a.pdf, a.png)


@command("report-het-fig2", "HET Fig. 2 from aligned modality-specific pairs",
         arg("--run", required=True, nargs=2, action="append", metavar=("PANEL", "FOLDER"),
             help="a trained pair with alignment.npz; runs of one panel (e.g. seeds) are pooled"),
         arg("--pairs", choices=("all", "matched"), default="all",
             help="all live latent pairs (HET App. E.1) or only the Hungarian-matched ones (the authors' code)"),
         *REPORT_OUTPUTS)
def report_het_fig2(a) -> None:
    from ..report import real

    histograms = real.pooled_directions(a.run, a.pairs)
    pairs = "all live image-text latent pairs" if a.pairs == "all" else "Hungarian-matched latent pairs"
    real.write_table(real.directions_table(histograms), a.table, a.markdown,
                     f"HET Fig. 2: decoder cosine distance of {pairs}, by coactivation correlation")
    real.plot_directions(histograms, a.pdf, a.png, pairs)


@command("report-claims", "the claims scorecard: every claim of workflow/claims.yaml on this run's tables",
         arg("--claims", required=True, type=Path, help="workflow/claims.yaml"),
         arg("--table", type=key_value, action="append", default=[],
             help="STEM=CSV: a table this run built; repeatable (claims on missing tables are `not built`)"),
         arg("--real-data", action="store_true",
             help="the stores hold real embeddings (else real-data claims are `not testable here`)"),
         arg("--settings", default="", help="a line naming the run's configuration, shown above the scorecard"),
         arg("--csv", required=True, help="scorecard to write (.csv)"),
         arg("--markdown", required=True, help="scorecard to write (.md)"))
def report_claims(a) -> None:
    import pandas as pd
    import yaml

    from ..report.claims import counts, load_claims, scorecard, write_scorecard

    with open(a.claims) as f:
        claims = load_claims(yaml.safe_load(f))
    card = scorecard(claims, {stem: pd.read_csv(path) for stem, path in a.table}, real_data=a.real_data)
    write_scorecard(card, a.csv, a.markdown, a.settings)
    log.info("%d claims: %s", len(card), counts(card))


@command("claims-readme", "rewrite README.md's claims section from scorecards (make claims)",
         arg("scorecard", nargs="+", type=Path, help="claims.csv of each run, named by its file stem; the first sets the rows"),
         arg("--readme", default="README.md", help="file whose claims block is rewritten"))
def claims_readme(a) -> None:
    import pandas as pd

    from ..atomic import write_text
    from ..report.claims import readme_block, replace_block

    cards = {Path(p).stem: pd.read_csv(p, keep_default_na=False) for p in a.scorecard}
    write_text(a.readme, replace_block(Path(a.readme).read_text(), readme_block(cards)))


@command("browse", "the offline latent browser of trained SAEs on one store (static HTML, opened from disk)",
         arg("--data", required=True, type=Path, help="store to browse (made by `vlsae embed`: it names its dataset)"),
         RUNS, DEVICE,
         arg("--monosemanticity", type=Path, default=None, help="eval-monosemanticity rows of these SAEs on this store"),
         arg("--title", type=key_value, action="append", default=[], help="KEY=VALUE shown in the header (model, dataset)"),
         arg("--top", type=POSITIVE, default=12, help="most activating samples per latent and modality"),
         arg("--tau", type=float, default=0.05, help="bimodal band [tau, 1 - tau] of the modality score"),
         arg("--thumb-size", type=POSITIVE, default=128),
         arg("--out", required=True, type=Path, help="folder: one sub-folder per --run NAME, and thumbs/"))
def browse(a) -> None:
    from ..browser.site import build_browsers
    from ..store import EmbeddingStore

    ms = None
    if a.monosemanticity is not None:
        import pandas as pd

        frame = pd.read_parquet(a.monosemanticity)
        ms = {(name, int(seed)): {side: g.sort_values("latent")["value"].to_numpy() for side, g in rows.groupby("component")}
              for (name, seed), rows in frame.groupby(["sae", "seed"])}
    build_browsers(EmbeddingStore(a.data), list(each_run(a)), a.out, dict(a.title), ms, a.tau, a.top, a.thumb_size)


@command("report-gallery", "a latent gallery (ISO Figs. 18-22, HET Figs. 3 and 10) from one SAE's latent browser",
         arg("--browser", required=True, type=Path, help="the SAE's browser folder (latents.json; thumbnails in ../thumbs)"),
         arg("--kind", required=True, choices=("bimodal", "image-only", "text-only", "coactivation", "collapsed")),
         *REPORT_OUTPUTS)
def report_gallery(a) -> None:
    from ..report.galleries import gallery

    gallery(a.browser, a.kind, a.table, a.markdown, a.pdf, a.png)
