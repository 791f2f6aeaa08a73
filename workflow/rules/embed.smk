# Embedding stores: synthetic datasets with ground truth (real VLM extraction comes later).


rule synth_het:
    output:
        train=f"{RESULTS}/embeddings/synthetic/het-alpha{{alpha}}/seed{{seed}}/train/manifest.json",
        eval=f"{RESULTS}/embeddings/synthetic/het-alpha{{alpha}}/seed{{seed}}/eval/manifest.json",
        ground_truth=f"{RESULTS}/embeddings/synthetic/het-alpha{{alpha}}/seed{{seed}}/ground_truth.npz",
    params:
        dgp=het_dgp_json,
        folder=subpath(output.ground_truth, parent=True),
        n_train=HET["n_train"],
        n_eval=HET["n_eval"],
        shard_pairs=HET["shard_pairs"],
    log:
        f"{RESULTS}/logs/synth_het/het-alpha{{alpha}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synth_het/het-alpha{{alpha}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "vlsae --threads {threads} synth-het --out {params.folder} --dgp '{params.dgp}'"
        " --n-train {params.n_train} --n-eval {params.n_eval} --seed {wildcards.seed}"
        " --shard-pairs {params.shard_pairs} > {log} 2>&1"


rule synth_iso:
    output:
        train=f"{RESULTS}/embeddings/synthetic/iso-{{experiment}}/seed{{seed}}/train/manifest.json",
        eval=f"{RESULTS}/embeddings/synthetic/iso-{{experiment}}/seed{{seed}}/eval/manifest.json",
        ground_truth=f"{RESULTS}/embeddings/synthetic/iso-{{experiment}}/seed{{seed}}/ground_truth.npz",
    params:
        dgp=iso_dgp_json,
        folder=subpath(output.ground_truth, parent=True),
        n_train=ISO["n_train"],
        n_eval=ISO["n_eval"],
        shard_pairs=ISO["shard_pairs"],
    log:
        f"{RESULTS}/logs/synth_iso/iso-{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synth_iso/iso-{{experiment}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "vlsae --threads {threads} synth-iso --out {params.folder} --dgp '{params.dgp}'"
        " --n-train {params.n_train} --n-eval {params.n_eval} --seed {wildcards.seed}"
        " --shard-pairs {params.shard_pairs} > {log} 2>&1"
