# Embedding stores: real VLM embeddings of image-caption datasets, and synthetic datasets with ground truth.


rule synth_het:
    output:
        train=f"{RESULTS}/embeddings/synthetic/het-alpha{{alpha}}/seed{{seed}}/train/manifest.json",
        eval=f"{RESULTS}/embeddings/synthetic/het-alpha{{alpha}}/seed{{seed}}/eval/manifest.json",
        ground_truth=f"{RESULTS}/embeddings/synthetic/het-alpha{{alpha}}/seed{{seed}}/ground_truth.npz",
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
    params:
        dgp=lambda wildcards: json.dumps(D.het_dgp(wildcards.alpha)),
        folder=subpath(output.ground_truth, parent=True),
        n_train=HET["n_train"],
        n_eval=HET["n_eval"],
        shard_pairs=HET["shard_pairs"],
    shell:
        "vlsae --threads {threads} synth-het --out {params.folder:q} --dgp {params.dgp:q}"
        " --n-train {params.n_train:q} --n-eval {params.n_eval:q} --seed {wildcards.seed}"
        " --shard-pairs {params.shard_pairs:q} > {log:q} 2>&1"


rule synth_iso:
    output:
        train=f"{RESULTS}/embeddings/synthetic/iso-{{experiment}}/seed{{seed}}/train/manifest.json",
        eval=f"{RESULTS}/embeddings/synthetic/iso-{{experiment}}/seed{{seed}}/eval/manifest.json",
        ground_truth=f"{RESULTS}/embeddings/synthetic/iso-{{experiment}}/seed{{seed}}/ground_truth.npz",
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
    params:
        dgp=lambda wildcards: json.dumps(D.iso_dgp(wildcards.experiment)),
        folder=subpath(output.ground_truth, parent=True),
        n_train=ISO["n_train"],
        n_eval=ISO["n_eval"],
        shard_pairs=ISO["shard_pairs"],
    shell:
        "vlsae --threads {threads} synth-iso --out {params.folder:q} --dgp {params.dgp:q}"
        " --n-train {params.n_train:q} --n-eval {params.n_eval:q} --seed {wildcards.seed}"
        " --shard-pairs {params.shard_pairs:q} > {log:q} 2>&1"


rule toy_model:
    output:
        directory(toy_model_folder("{toy}")),
    log:
        f"{RESULTS}/logs/toy/model-{{toy}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/toy/model-{{toy}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "vlsae --threads {threads} toy-vlm --{wildcards.toy} {output:q} > {log:q} 2>&1"


rule toy_dataset:
    output:
        f"{toy_dataset_folder('{dataset}')}/{TOY_MARKER}",
    log:
        f"{RESULTS}/logs/toy/dataset-{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/toy/dataset-{{dataset}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folder=lambda wc: toy_dataset_folder(wc.dataset),
        format=lambda wc: DATASETS[wc.dataset]["format"],
        toy=lambda wc: DATASETS[wc.dataset]["toy"],
    shell:
        "vlsae toy-vlm --dataset {params.folder:q} --format {params.format:q} --n-images {params.toy[n_images]}"
        " --captions-per-image {params.toy[captions_per_image]} --corrupt {params.toy[corrupt]}"
        " --empty {params.toy[empty]} > {log:q} 2>&1"


rule embed:
    input:
        toy_inputs,
        downloaded,
    output:
        f"{RESULTS}/embeddings/{{model}}/{{dataset}}/manifest.json",
    log:
        f"{RESULTS}/logs/embed/{{model}}-{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed/{{model}}-{{dataset}}.tsv"
    conda:
        "../../environment.yml"
    threads: EMBED["workers"] + 1
    resources:
        gpu=model_gpus,
        mem_mb=16000,
        runtime=24 * 60,
    params:
        model=model_json,
        dataset=lambda wildcards: reader_json(wildcards.dataset),
        folder=subpath(output[0], parent=True),
        shard_pairs=EMBED["shard_pairs"],
        batch_size=EMBED["batch_size"],
        precision=EMBED["precision"],
        workers=EMBED["workers"],
        fast_decode="--fast-decode" if EMBED["fast_decode"] else "",
    shell:
        "vlsae --threads {threads} embed --model {params.model:q} --dataset {params.dataset:q} --out {params.folder:q}"
        " --shard-pairs {params.shard_pairs:q} --batch-size {params.batch_size:q} --workers {params.workers:q}"
        " --precision {params.precision:q} {params.fast_decode} > {log:q} 2>&1"


rule download:
    output:
        f"{DOWNLOADED}/{{archive}}.zip",
    log:
        f"{RESULTS}/logs/download/{{archive}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{archive}}.tsv"
    retries: 2
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=12 * 60,
    params:
        url=lambda wc: DOWNLOADS[wc.archive]["url"],
        md5=lambda wc: shell_args("--md5", DOWNLOADS[wc.archive]["md5"]) if DOWNLOADS[wc.archive]["md5"] else "",
    shell:
        "vlsae download --url {params.url:q} --out {output:q} {params.md5} > {log:q} 2>&1"


rule unpack:
    input:
        rules.download.output[0],
    output:
        f"{DOWNLOADED}/{{archive}}.unpacked.json",
    log:
        f"{RESULTS}/logs/download/{{archive}}-unpack.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{archive}}-unpack.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=3 * 60,
    params:
        into=lambda wc: DOWNLOADS[wc.archive]["into"],
    shell:
        "vlsae unpack --archive {input:q} --into {params.into:q} --marker {output:q} > {log:q} 2>&1"


rule verify_store:
    input:
        f"{RESULTS}/embeddings/{{store}}/{MANIFEST}",
    output:
        f"{RESULTS}/embeddings/{{store}}/{VERIFIED}",
    log:
        f"{RESULTS}/logs/verify/{{store}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/verify/{{store}}.tsv"
    wildcard_constraints:
        store=r"(?!synthetic/).+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "vlsae verify-store --data {input:q} --out {output:q} > {log:q} 2>&1"


# The same check for the synthetic stores, as rules of their own so that a cluster profile can group
# each with its study's chain (profiles/slurm).
use rule verify_store as verify_het_store with:
    wildcard_constraints:
        store=r"synthetic/het-.+",


use rule verify_store as verify_iso_store with:
    wildcard_constraints:
        store=r"synthetic/iso-.+",
