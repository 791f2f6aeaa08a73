# The offline latent browser of every zoo member on each image-text evaluation store, and the galleries
# (ISO Figs. 18-22, HET Figs. 3 and 10) drawn from it.


rule browse:
    input:
        unpack(browse_inputs),
    output:
        directory(f"{RESULTS}/browser/{{model}}/{{dataset}}/on-{{eval_dataset}}"),
    log:
        f"{RESULTS}/logs/browse/{{model}}-{{dataset}}-on-{{eval_dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/browse/{{model}}-{{dataset}}-on-{{eval_dataset}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=zoo_mb("evaluate"),
        runtime=2 * 60,
    params:
        folder=lambda wildcards, input: subpath(input.data, parent=True),
        runs=browse_run_args,
        monosemanticity=browse_ms_arg,
        top=REAL["browser"]["top"],
        thumb_size=REAL["browser"]["thumb_size"],
        tau=REAL["evaluation"]["tau"],
    shell:
        "vlsae --threads {threads} browse --data {params.folder:q} {params.runs} {params.monosemanticity}"
        " --title model={wildcards.model:q} --title dataset={wildcards.eval_dataset:q} --top {params.top:q}"
        " --thumb-size {params.thumb_size:q} --tau {params.tau:q} --out {output:q} > {log:q} 2>&1"


rule report_gallery:
    input:
        browser=gallery_browser,
    output:
        table=f"{RESULTS}/tables/{{gallery}}.csv",
        markdown=f"{RESULTS}/tables/{{gallery}}.md",
        pdf=f"{RESULTS}/figures/{{gallery}}.pdf",
        png=report(f"{RESULTS}/figures/{{gallery}}.png", caption="../report/gallery.rst", category="Latents"),
    log:
        f"{RESULTS}/logs/report/{{gallery}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/{{gallery}}.tsv"
    wildcard_constraints:
        gallery="|".join(GALLERIES),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folder=lambda wildcards, input: f"{input.browser}/{GALLERY_SOURCES[GALLERIES[wildcards.gallery]['source']][3]}",
        kind=lambda wildcards: GALLERIES[wildcards.gallery]["kind"],
    shell:
        "vlsae report-gallery --browser {params.folder:q} --kind {params.kind:q} --table {output.table:q}"
        " --markdown {output.markdown:q} --pdf {output.pdf:q} --png {output.png:q} > {log:q} 2>&1"
