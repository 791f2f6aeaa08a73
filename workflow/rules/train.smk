# One SAE (or one modality-specific pair) per configuration and seed.


rule train_sae_synthetic:
    input:
        data=rules.synth_het.output.train,
    output:
        weights=f"{RESULTS}/saes/synthetic/het-alpha{{alpha}}/{{sae_id}}/seed{{seed}}/model.safetensors",
        config=f"{RESULTS}/saes/synthetic/het-alpha{{alpha}}/{{sae_id}}/seed{{seed}}/config.json",
        log_csv=f"{RESULTS}/saes/synthetic/het-alpha{{alpha}}/{{sae_id}}/seed{{seed}}/log.csv",
    params:
        sae=sae_json,
        training=json.dumps(HET["training"]),
        folder=subpath(output.weights, parent=True),
    log:
        f"{RESULTS}/logs/train/het-alpha{{alpha}}/{{sae_id}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/het-alpha{{alpha}}/{{sae_id}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "vlsae --threads {threads} train --data {input.data} --out {params.folder}"
        " --sae '{params.sae}' --training '{params.training}' --seed {wildcards.seed} > {log} 2>&1"


rule train_iso_toy:
    input:
        data=rules.synth_iso.output.train,
    output:
        weights=expand(f"{RESULTS}/saes/synthetic/iso-{{{{experiment}}}}/{{model}}/seed{{{{seed}}}}/model.safetensors",
                       model=ISO_MODEL_NAMES),
    params:
        runs=iso_train_args,
        training=json.dumps(ISO["training"]),
    log:
        f"{RESULTS}/logs/train/iso-{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/iso-{{experiment}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "vlsae --threads {threads} train --data {input.data} {params.runs}"
        " --training '{params.training}' --seed {wildcards.seed} > {log} 2>&1"


rule train_zoo:
    input:
        data=rules.embed.output[0],
    output:
        zoo_marker("{model}", "{dataset}", "{seed}", "trained"),
    params:
        runs=zoo_train_args,
        training=json.dumps(REAL["training"]),
    log:
        f"{RESULTS}/logs/train/{{model}}-{{dataset}}/zoo-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}-{{dataset}}/zoo-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=8000,
        runtime=12 * 60,
    shell:
        "vlsae --threads {threads} train --data {input.data} {params.runs}"
        " --training '{params.training}' --seed {wildcards.seed} > {log} 2>&1 && touch {output}"
