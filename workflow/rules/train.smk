# Several SAEs per pass over a store where they share data and seed: the HET SAEs of one (alpha,
# seed), the ISO SAE and SAE-A of one experiment, the zoo members of one real store and protocol.
# The synthetic training jobs are the workflow's longest (ISO Table 5's: minutes each): they start
# first among ready jobs (priority), so that short jobs fill the other cores instead of a long tail.


rule train_het_references:
    input:
        data=rules.synth_het.output.train,
        verified=verified(rules.synth_het.output.train),
    output:
        weights=het_files(f"{HET_SAE}/model.safetensors", D.reference_specs, study="fig5"),
    log:
        f"{RESULTS}/logs/train/het-alpha{{alpha}}/references-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/het-alpha{{alpha}}/references-seed{{seed}}.tsv"
    priority: 10
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60 * len(D.reference_specs),
    params:
        tensorboard=TENSORBOARD,
        runs=het_train_args(D.reference_specs),
        training=json.dumps(D.studies["fig5"]["training"]),
    shell:
        "vlsae --threads {threads} train --data {input.data:q} {params.runs}"
        " --training {params.training:q} --seed {wildcards.seed} {params.tensorboard} > {log:q} 2>&1"


use rule train_het_references as train_het_fig6 with:
    input:
        data=expand(rules.synth_het.output.train, alpha=FIG6["alpha"], allow_missing=True),
        verified=expand(verified(rules.synth_het.output.train), alpha=FIG6["alpha"], allow_missing=True),
    output:
        weights=het_files(f"{HET_SAE}/model.safetensors", D.fig6_trained, alpha=FIG6["alpha"], study="fig6"),
    log:
        f"{RESULTS}/logs/train/het-alpha{FIG6['alpha']}/fig6-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/het-alpha{FIG6['alpha']}/fig6-seed{{seed}}.tsv"
    resources:
        mem_mb=4000,
        runtime=60 * len(D.fig6_trained),
    params:
        tensorboard=TENSORBOARD,
        runs=het_train_args(D.fig6_trained),
        training=json.dumps(D.studies["fig6"]["training"]),


rule train_iso_toy:
    input:
        data=rules.synth_iso.output.train,
        verified=verified(rules.synth_iso.output.train),
    output:
        weights=expand(
            f"{RESULTS}/saes/synthetic/iso-{{{{experiment}}}}/{{model}}/seed{{{{seed}}}}/model.safetensors",
            model=design.ISO_MODEL_NAMES,
        ),
    log:
        f"{RESULTS}/logs/train/iso-{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/iso-{{experiment}}-seed{{seed}}.tsv"
    priority: 20
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tensorboard=TENSORBOARD,
        runs=iso_train_args,
        training=json.dumps(ISO["training"]),
    shell:
        "vlsae --threads {threads} train --data {input.data:q} {params.runs}"
        " --training {params.training:q} --seed {wildcards.seed} {params.tensorboard} > {log:q} 2>&1"


rule train_zoo:
    input:
        data=rules.embed.output[0],
        verified=verified(rules.embed.output[0]),
    output:
        zoo_marker("{model}", "{dataset}", "{seed}", "{protocol}.trained"),
    log:
        f"{RESULTS}/logs/train/{{model}}-{{dataset}}/zoo-{{protocol}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}-{{dataset}}/zoo-{{protocol}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=zoo_mb("train"),
        runtime=12 * 60,
    params:
        tensorboard=TENSORBOARD,
        runs=zoo_train_args,
        training=lambda wildcards: json.dumps(D.protocols[wildcards.protocol]),
    shell:
        "vlsae --threads {threads} train --data {input.data:q} {params.runs}"
        " --training {params.training:q} --seed {wildcards.seed} {params.tensorboard} > {log:q} 2>&1 && touch {output:q}"
