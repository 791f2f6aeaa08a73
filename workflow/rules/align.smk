# Hungarian alignment: one permutation per trained SAE, on its training data (HET §5). For a
# modality-specific pair it is the post-hoc alignment; for a shared SAE it gives the self-match rate (HET F.2).


rule align_synthetic:
    input:
        weights=f"{HET_SAE}/model.safetensors",
        data=rules.synth_het.output.train,
    output:
        f"{HET_SAE}/alignment.npz",
    log:
        f"{RESULTS}/logs/align/het-alpha{{alpha}}/{{study}}/{{sae_id}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align/het-alpha{{alpha}}/{{study}}/{{sae_id}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        folder=subpath(input.weights, parent=True),
        matching=lambda wildcards: D.studies[wildcards.study]["matching"],
    shell:
        "vlsae --threads {threads} align --model {params.folder:q} --data {input.data:q} --matching {params.matching:q}"
        " --out {output:q} > {log:q} 2>&1"


rule align_zoo:
    input:
        trained=zoo_trained,
        data=rules.embed.output[0],
    output:
        zoo_marker("{model}", "{dataset}", "{seed}", "aligned"),
    log:
        f"{RESULTS}/logs/align/{{model}}-{{dataset}}/zoo-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align/{{model}}-{{dataset}}/zoo-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=zoo_mb("align"),
        runtime=60,
    params:
        runs=zoo_align_args,
    shell:
        "vlsae --threads {threads} align --data {input.data:q} {params.runs} > {log:q} 2>&1 && touch {output:q}"
