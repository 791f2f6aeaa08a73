# Tables (csv + markdown) and figures (pdf + png): pure functions of the tidy metric files.


rule report_het_fig5:
    input:
        fig5_metric_files(),
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
        theory_boundary_files(),
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
        fig6_metric_files(),
    output:
        table=report(f"{RESULTS}/tables/het_fig6_lambda_sweep.csv", caption="../report/het_fig6.rst", category="HET synthetic"),
        markdown=f"{RESULTS}/tables/het_fig6_lambda_sweep.md",
        pdf=f"{RESULTS}/figures/het_fig6_lambda_sweep.pdf",
        png=report(f"{RESULTS}/figures/het_fig6_lambda_sweep.png", caption="../report/het_fig6.rst", category="HET synthetic"),
    params:
        defaults=json.dumps({loss: options["weight"] for loss, options in FIG6["losses"].items()}),
        dgp=het_dgp_json(FIG6["alpha"]),
        settings=json.dumps({**STUDY["fig6"], "losses": FIG6["losses"]}),
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
    shell:
        "vlsae report-het-fig6 {input:q} --defaults {params.defaults:q} --dgp {params.dgp:q}"
        " --settings {params.settings:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_iso_table5:
    input:
        iso_metric_files(),
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
    params:
        data=lambda wildcards, input: shell_args(*(t for name, path in input.items() for t in ("--data", f"{name}={os.path.dirname(path)}"))),
        pairs=ISO["fig9_pairs"],
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
    shell:
        "vlsae report-cosines {params.data} --pairs {params.pairs:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_real_table:
    input:
        lambda wildcards: REAL_TABLES[wildcards.real_table][1](),
    output:
        table=report(f"{RESULTS}/tables/{{real_table}}.csv", caption="../report/real_tables.rst", category="Real data"),
        markdown=f"{RESULTS}/tables/{{real_table}}.md",
    wildcard_constraints:
        real_table=_one_of(REAL_TABLES),
    params:
        kind=lambda wildcards: REAL_TABLES[wildcards.real_table][0],
    log:
        f"{RESULTS}/logs/report/{{real_table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{real_table}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "vlsae report-table {input:q} --kind {params.kind:q} --table {output.table:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule report_real_figure:
    input:
        lambda wildcards: REAL_FIGURES[wildcards.real_figure][1](),
    output:
        table=f"{RESULTS}/tables/{{real_figure}}.csv",
        markdown=f"{RESULTS}/tables/{{real_figure}}.md",
        pdf=f"{RESULTS}/figures/{{real_figure}}.pdf",
        png=report(f"{RESULTS}/figures/{{real_figure}}.png", caption="../report/real_figures.rst", category="Real data"),
    wildcard_constraints:
        real_figure=_one_of(REAL_FIGURES),
    params:
        kind=lambda wildcards: REAL_FIGURES[wildcards.real_figure][0],
    log:
        f"{RESULTS}/logs/report/{{real_figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{real_figure}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "vlsae report-{params.kind:q} {input:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_iso_fig11:
    input:
        **real_fig11_stores(),
    output:
        table=f"{RESULTS}/tables/iso_fig11_cosines.csv",
        markdown=f"{RESULTS}/tables/iso_fig11_cosines.md",
        pdf=f"{RESULTS}/figures/iso_fig11_cosines.pdf",
        png=report(f"{RESULTS}/figures/iso_fig11_cosines.png", caption="../report/iso_fig11.rst", category="Real data"),
    params:
        data=lambda wildcards, input: shell_args(*(t for name, path in input.items() for t in ("--data", f"{name}={os.path.dirname(path)}"))),
        pairs=REAL["evaluation"]["sample_pairs"],
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
    shell:
        "vlsae report-cosines {params.data} --pairs {params.pairs:q} --heading 'ISO Fig. 11: cosine similarities of the encoders'"
        " --table {output.table:q} --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_het_fig2:
    input:
        fig2_alignments(),
    output:
        table=f"{RESULTS}/tables/het_fig2_directions.csv",
        markdown=f"{RESULTS}/tables/het_fig2_directions.md",
        pdf=f"{RESULTS}/figures/het_fig2_directions.pdf",
        png=report(f"{RESULTS}/figures/het_fig2_directions.png", caption="../report/het_fig2.rst", category="Real data"),
    params:
        runs=fig2_run_args(),
        pairs=REAL["fig2_pairs"],
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
    shell:
        "vlsae report-het-fig2 {params.runs} --pairs {params.pairs:q} --table {output.table:q} --markdown {output.markdown:q}"
        " --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"


rule report_claims:
    input:
        unpack(lambda wildcards: claim_tables()),
        claims=CLAIMS_FILE,
    output:
        csv=report(f"{RESULTS}/tables/claims.csv", caption="../report/claims.rst", category="Claims"),
        markdown=f"{RESULTS}/tables/claims.md",
    params:
        tables=lambda wildcards, input: shell_args(*(t for stem in claim_tables() for t in ("--table", f"{stem}={input[stem]}"))),
        real_data="--real-data" if REAL["enabled"] and design.real_embeddings(EMBED, MODELS, DATASETS) else "",
        settings=f"Configuration: {' + '.join(map(str, workflow.configfiles)) or 'config/config.yaml'}.",
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
    shell:
        "vlsae report-claims --claims {input.claims:q} {params.tables} {params.real_data} --settings {params.settings:q}"
        " --csv {output.csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"
