# Tables (csv + markdown) and figures (pdf + png): pure functions of the tidy metric files.


rule report_het_fig5:
    input:
        het_files(HET_METRICS, D.reference_specs, alpha=FIG5["alphas"], seed=FIG5["seeds"], study="fig5"),
    output:
        table=report(f"{RESULTS}/tables/het_fig5_alpha_sweep.csv", caption="../report/het_fig5.rst", category="HET synthetic"),
        markdown=f"{RESULTS}/tables/het_fig5_alpha_sweep.md",
        pdf=f"{RESULTS}/figures/het_fig5_alpha_sweep.pdf",
        png=report(f"{RESULTS}/figures/het_fig5_alpha_sweep.png", caption="../report/het_fig5.rst", category="HET synthetic"),
    log:
        f"{RESULTS}/logs/report/het_fig5_alpha_sweep.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/het_fig5_alpha_sweep.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "vlsae report-het-fig5 {input:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_het_theory:
    input:
        expand(rules.theory_phases.output[0], rho=THEORY["rhos"]),
    output:
        table=report(f"{RESULTS}/tables/het_theory_phases.csv", caption="../report/het_theory.rst", category="HET theory"),
        markdown=f"{RESULTS}/tables/het_theory_phases.md",
        pdf=f"{RESULTS}/figures/het_theory_phases.pdf",
        png=report(f"{RESULTS}/figures/het_theory_phases.png", caption="../report/het_theory.rst", category="HET theory"),
    log:
        f"{RESULTS}/logs/report/het_theory_phases.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/het_theory_phases.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "vlsae report-het-theory {input:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_het_fig6:
    input:
        het_files(HET_METRICS, D.fig6_trained, alpha=FIG6["alpha"], seed=FIG6["seeds"], study="fig6"),
    output:
        table=report(f"{RESULTS}/tables/het_fig6_lambda_sweep.csv", caption="../report/het_fig6.rst", category="HET synthetic"),
        markdown=f"{RESULTS}/tables/het_fig6_lambda_sweep.md",
        pdf=f"{RESULTS}/figures/het_fig6_lambda_sweep.pdf",
        png=report(f"{RESULTS}/figures/het_fig6_lambda_sweep.png", caption="../report/het_fig6.rst", category="HET synthetic"),
    log:
        f"{RESULTS}/logs/report/het_fig6_lambda_sweep.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/het_fig6_lambda_sweep.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sweep=json.dumps({spec.slug: [loss, multiplier] for loss, multiplier, spec in D.fig6_sweep}),
        dgp=json.dumps(D.het_dgp(FIG6["alpha"])),
        settings=json.dumps({**D.studies["fig6"], "losses": FIG6["losses"]}),
    shell:
        "vlsae report-het-fig6 {input:q} --sweep {params.sweep:q} --dgp {params.dgp:q}"
        " --settings {params.settings:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_iso_table5:
    input:
        expand(rules.evaluate_iso_toy.output[0], experiment=ISO["experiments"], seed=ISO["seeds"]),
    output:
        table=report(f"{RESULTS}/tables/iso_table5_toy_dgp.csv", caption="../report/iso_table5.rst", category="ISO toy DGP"),
        markdown=f"{RESULTS}/tables/iso_table5_toy_dgp.md",
    log:
        f"{RESULTS}/logs/report/iso_table5_toy_dgp.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/iso_table5_toy_dgp.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "vlsae report-iso-table5 {input:q} --table {output.table:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule report_iso_fig9:
    input:
        **iso_fig9_stores(),
    output:
        table=f"{RESULTS}/tables/iso_fig9_toy_cosines.csv",
        markdown=f"{RESULTS}/tables/iso_fig9_toy_cosines.md",
        pdf=f"{RESULTS}/figures/iso_fig9_toy_cosines.pdf",
        png=report(f"{RESULTS}/figures/iso_fig9_toy_cosines.png", caption="../report/iso_fig9.rst", category="ISO toy DGP"),
    log:
        f"{RESULTS}/logs/report/iso_fig9_toy_cosines.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/iso_fig9_toy_cosines.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=lambda wildcards, input: shell_args(
            *(t for name, path in input.items() for t in ("--data", f"{name}={os.path.dirname(path)}"))
        ),
        pairs=ISO["fig9_pairs"],
    shell:
        "vlsae report-cosines {params.data} --pairs {params.pairs:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_real_table:
    input:
        lambda wildcards: real_report_inputs(wildcards.real_table),
    output:
        table=report(f"{RESULTS}/tables/{{real_table}}.csv", caption="../report/real_tables.rst", category="Real data"),
        markdown=f"{RESULTS}/tables/{{real_table}}.md",
    log:
        f"{RESULTS}/logs/report/{{real_table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{real_table}}.tsv"
    wildcard_constraints:
        real_table=_one_of(REAL_TABLES),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind=lambda wildcards: REAL_REPORTS[wildcards.real_table]["kind"],
        saes=real_report_saes,
    shell:
        "vlsae report-table {input:q} --kind {params.kind:q} {params.saes} --table {output.table:q}"
        " --markdown {output.markdown:q} > {log:q} 2>&1"


rule report_real_figure:
    input:
        lambda wildcards: real_report_inputs(wildcards.real_figure),
    output:
        table=f"{RESULTS}/tables/{{real_figure}}.csv",
        markdown=f"{RESULTS}/tables/{{real_figure}}.md",
        pdf=f"{RESULTS}/figures/{{real_figure}}.pdf",
        png=report(f"{RESULTS}/figures/{{real_figure}}.png", caption="../report/real_figures.rst", category="Real data"),
    log:
        f"{RESULTS}/logs/report/{{real_figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{real_figure}}.tsv"
    wildcard_constraints:
        real_figure=_one_of(REAL_FIGURES),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind=lambda wildcards: REAL_REPORTS[wildcards.real_figure]["kind"],
        saes=real_report_saes,
    shell:
        "vlsae report-figure {input:q} --kind {params.kind:q} {params.saes} --table {output.table:q}"
        " --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_iso_fig11:
    input:
        **real_fig11_stores(),
    output:
        table=f"{RESULTS}/tables/iso_fig11_cosines.csv",
        markdown=f"{RESULTS}/tables/iso_fig11_cosines.md",
        pdf=f"{RESULTS}/figures/iso_fig11_cosines.pdf",
        png=report(f"{RESULTS}/figures/iso_fig11_cosines.png", caption="../report/iso_fig11.rst", category="Real data"),
    log:
        f"{RESULTS}/logs/report/iso_fig11_cosines.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/iso_fig11_cosines.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=lambda wildcards, input: shell_args(
            *(t for name, path in input.items() for t in ("--data", f"{name}={os.path.dirname(path)}"))
        ),
        pairs=REAL["evaluation"]["sample_pairs"],
    shell:
        "vlsae report-cosines {params.data} --pairs {params.pairs:q} --heading 'ISO Fig. 11: cosine similarities of the encoders'"
        " --table {output.table:q} --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_iso_fig10:
    input:
        **real_fig11_stores(),
    output:
        table=f"{RESULTS}/tables/iso_fig10_pca.csv",
        markdown=f"{RESULTS}/tables/iso_fig10_pca.md",
        pdf=f"{RESULTS}/figures/iso_fig10_pca.pdf",
        png=report(f"{RESULTS}/figures/iso_fig10_pca.png", caption="../report/real_figures.rst", category="Real data"),
    log:
        f"{RESULTS}/logs/report/iso_fig10_pca.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/iso_fig10_pca.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=lambda wildcards, input: shell_args(
            *(t for name, path in input.items() for t in ("--data", f"{name}={os.path.dirname(path)}"))
        ),
        pairs=REAL["evaluation"]["sample_pairs"],
    shell:
        "vlsae report-pca {params.data} --pairs {params.pairs:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_het_fig2:
    input:
        fig2_alignments(),
    output:
        table=f"{RESULTS}/tables/het_fig2_directions.csv",
        markdown=f"{RESULTS}/tables/het_fig2_directions.md",
        pdf=f"{RESULTS}/figures/het_fig2_directions.pdf",
        png=report(f"{RESULTS}/figures/het_fig2_directions.png", caption="../report/het_fig2.rst", category="Real data"),
    log:
        f"{RESULTS}/logs/report/het_fig2_directions.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/het_fig2_directions.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=fig2_run_args(),
        pairs=REAL["fig2_pairs"],
    shell:
        "vlsae report-het-fig2 {params.runs} --pairs {params.pairs:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


use rule report_het_fig2 as report_het_fig9 with:
    input:
        fig2_alignments("fig9"),
    output:
        table=f"{RESULTS}/tables/het_fig9_directions_large.csv",
        markdown=f"{RESULTS}/tables/het_fig9_directions_large.md",
        pdf=f"{RESULTS}/figures/het_fig9_directions_large.pdf",
        png=report(f"{RESULTS}/figures/het_fig9_directions_large.png", caption="../report/het_fig2.rst", category="Real data"),
    log:
        f"{RESULTS}/logs/report/het_fig9_directions_large.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/het_fig9_directions_large.tsv"
    params:
        runs=fig2_run_args("fig9"),
        pairs=REAL["fig2_pairs"],


rule report_claims:
    input:
        unpack(lambda wildcards: claim_tables()),
        claims=CLAIMS_FILE,
    output:
        csv=report(f"{RESULTS}/tables/claims.csv", caption="../report/claims.rst", category="Claims"),
        markdown=f"{RESULTS}/tables/claims.md",
    log:
        f"{RESULTS}/logs/report/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/claims.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tables=lambda wildcards, input: shell_args(*(t for stem in claim_tables() for t in ("--table", f"{stem}={input[stem]}"))),
        real_data="--real-data" if D.real_embeddings() else "",
        settings=f"Configuration: {' + '.join(map(str, workflow.configfiles)) or 'config/config.yaml'}.",
    shell:
        "vlsae report-claims --claims {input.claims:q} {params.tables} {params.real_data} --settings {params.settings:q}"
        " --csv {output.csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule report_iso_features:
    input:
        trained=sorted({marker for _, _, marker in iso_feature_runs()[0]}),
        data=iso_feature_runs()[1] or [],
    output:
        **{
            f"{stem}_{ext}": f"{RESULTS}/{'tables' if ext in ('csv', 'md') else 'figures'}/{stem}.{ext}"
            for stem in FEATURE_STEMS
            for ext in ("csv", "md", "pdf", "png")
        },
    log:
        f"{RESULTS}/logs/report/iso_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/iso_features.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        # the m x m cross moment, bridge and Gram in float64 (nominal dimension until the store exists)
        mem_mb=design.square_mb([D.zoo[n].latents_per_sae for n in REAL["selections"].get("iso_main", {}).get("saes", [])], 32),
        runtime=30,
    params:
        runs=shell_args(*(t for label, folder, _ in iso_feature_runs()[0] for t in ("--run", label, folder))),
        data_folder=lambda wildcards, input: shell_args(os.path.dirname(input.data)),
        pairs=REAL["evaluation"]["sample_pairs"],
        tau=REAL["evaluation"]["tau"],
        tables=lambda wildcards, output: os.path.dirname(output[0]),
        figures=lambda wildcards, output: os.path.dirname(output[2]),
    shell:
        "vlsae report-features {params.runs} --data {params.data_folder} --pairs {params.pairs:q} --tau {params.tau:q}"
        " --tables {params.tables:q} --figures {params.figures:q} > {log:q} 2>&1"
