# Metric suites -> tidy Parquet (one row per method x metric).


rule evaluate_het_references:
    input:
        weights=het_files(f"{HET_SAE}/model.safetensors", D.reference_specs, study="fig5"),
        alignments=het_files(f"{HET_SAE}/alignment.npz", specific(D.reference_specs), study="fig5"),
        data=rules.synth_het.output.eval,
        ground_truth=rules.synth_het.output.ground_truth,
    output:
        metrics=het_files(HET_METRICS, D.reference_specs, study="fig5"),
    log:
        f"{RESULTS}/logs/evaluate/het-alpha{{alpha}}/references-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/het-alpha{{alpha}}/references-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10 * len(D.reference_specs),
    params:
        runs=het_eval_args,
        metrics=json.dumps(D.studies["fig5"]["metrics"]),
    shell:
        "vlsae --threads {threads} eval-het {params.runs} --metrics {params.metrics:q} --data {input.data:q}"
        " --ground-truth {input.ground_truth:q} --seed {wildcards.seed} > {log:q} 2>&1"


use rule evaluate_het_references as evaluate_het_fig6 with:
    input:
        weights=het_files(f"{HET_SAE}/model.safetensors", D.fig6_trained, alpha=FIG6["alpha"], study="fig6"),
        alignments=het_files(f"{HET_SAE}/alignment.npz", specific(D.fig6_trained), alpha=FIG6["alpha"], study="fig6"),
        data=expand(rules.synth_het.output.eval, alpha=FIG6["alpha"], allow_missing=True),
        ground_truth=expand(rules.synth_het.output.ground_truth, alpha=FIG6["alpha"], allow_missing=True),
    output:
        metrics=het_files(HET_METRICS, D.fig6_trained, alpha=FIG6["alpha"], study="fig6"),
    log:
        f"{RESULTS}/logs/evaluate/het-alpha{FIG6['alpha']}/fig6-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/het-alpha{FIG6['alpha']}/fig6-seed{{seed}}.tsv"
    resources:
        mem_mb=4000,
        runtime=10 * len(D.fig6_trained),
    params:
        runs=het_eval_args,
        metrics=json.dumps(D.studies["fig6"]["metrics"]),


rule theory_phases:
    output:
        f"{RESULTS}/metrics/het_theory/rho{{rho}}.parquet",
    log:
        f"{RESULTS}/logs/theory/rho{{rho}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/theory/rho{{rho}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    shell:
        "vlsae --threads {threads} theory-phases --rho {wildcards.rho} --out {output:q} > {log:q} 2>&1"


rule evaluate_iso_toy:
    input:
        weights=rules.train_iso_toy.output.weights,
        data=rules.synth_iso.output.eval,
        ground_truth=rules.synth_iso.output.ground_truth,
    output:
        f"{RESULTS}/metrics/iso_toy/iso-{{experiment}}/seed{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/evaluate/iso-{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/iso-{{experiment}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        models=lambda wildcards, input: shell_args(*(t for w in input.weights for t in ("--model", os.path.dirname(w)))),
        truth=lambda wildcards: ISO["experiments"][wildcards.experiment]["truth"],
    shell:
        "vlsae --threads {threads} eval-iso {params.models} --data {input.data:q}"
        " --ground-truth {input.ground_truth:q} --truth {params.truth:q} --experiment {wildcards.experiment}"
        " --seed {wildcards.seed} --out {output:q} > {log:q} 2>&1"


rule evaluate_encoder:
    input:
        rules.embed.output[0],
    output:
        f"{RESULTS}/metrics/real/{{model}}/{{dataset}}/encoder.parquet",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}-{{dataset}}/encoder.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}-{{dataset}}/encoder.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        folder=subpath(input[0], parent=True),
        options=json.dumps(REAL["evaluation"]),
    shell:
        "vlsae --threads {threads} eval-encoder --data {params.folder:q} --options {params.options:q}"
        " --tag model={wildcards.model} --tag dataset={wildcards.dataset} --out {output:q} > {log:q} 2>&1"


rule evaluate_saes:
    input:
        alignments=zoo_alignments,
        data=f"{RESULTS}/embeddings/{{model}}/{{eval_dataset}}/manifest.json",
    output:
        f"{RESULTS}/metrics/real/{{model}}/{{dataset}}/saes-on-{{eval_dataset}}.parquet",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}-{{dataset}}/saes-on-{{eval_dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}-{{dataset}}/saes-on-{{eval_dataset}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=zoo_mb("evaluate"),
        runtime=4 * 60,
    params:
        folder=subpath(input.data, parent=True),
        runs=zoo_run_args,
        options=json.dumps(REAL["evaluation"]),
    shell:
        "vlsae --threads {threads} eval-saes --data {params.folder:q} {params.runs} --options {params.options:q}"
        " --tag model={wildcards.model} --tag dataset={wildcards.dataset} --tag eval_dataset={wildcards.eval_dataset}"
        " --out {output:q} > {log:q} 2>&1"


rule evaluate_bimodal_sae:
    input:
        alignments=zoo_alignments,
        train=rules.embed.output[0],
        data=f"{RESULTS}/embeddings/{{model}}/{{eval_dataset}}/manifest.json",
    output:
        f"{RESULTS}/metrics/real/{{model}}/{{dataset}}/{{analysis}}-on-{{eval_dataset}}.parquet",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}-{{dataset}}/{{analysis}}-on-{{eval_dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}-{{dataset}}/{{analysis}}-on-{{eval_dataset}}.tsv"
    wildcard_constraints:
        analysis="gap|arithmetic",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=16000,
        runtime=4 * 60,
    params:
        train=subpath(input.train, parent=True),
        folder=subpath(input.data, parent=True),
        runs=lambda wildcards: zoo_run_args(wildcards, [D.bimodal_sae]),
        options=json.dumps(REAL["evaluation"]),
    shell:
        "vlsae --threads {threads} eval-bimodal --analysis {wildcards.analysis} --data {params.folder:q} --train-data {params.train:q}"
        " {params.runs} --options {params.options:q} --tag model={wildcards.model} --tag dataset={wildcards.dataset}"
        " --tag eval_dataset={wildcards.eval_dataset} --out {output:q} > {log:q} 2>&1"


rule evaluate_steering:
    input:
        alignments=zoo_alignments,
        data=f"{RESULTS}/embeddings/{{model}}/{{eval_dataset}}/manifest.json",
        toy=lambda wildcards: toy_dataset_inputs(wildcards.eval_dataset),
    output:
        f"{RESULTS}/metrics/real/{{model}}/{{dataset}}/steering-on-{{eval_dataset}}.parquet",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}-{{dataset}}/steering-on-{{eval_dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}-{{dataset}}/steering-on-{{eval_dataset}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=16000,
        runtime=2 * 60,
    params:
        folder=subpath(input.data, parent=True),
        runs=zoo_run_args,
        dataset=lambda wildcards: reader_json(wildcards.eval_dataset),
        concepts=lambda wildcards: D.concept_files(wildcards.eval_dataset),
        options=json.dumps(REAL["evaluation"]),
    shell:
        "vlsae --threads {threads} eval-steering --data {params.folder:q} --dataset {params.dataset:q}"
        " --concepts {params.concepts:q} {params.runs} --options {params.options:q} --tag model={wildcards.model}"
        " --tag dataset={wildcards.dataset} --tag eval_dataset={wildcards.eval_dataset} --out {output:q} > {log:q} 2>&1"


rule evaluate_monosemanticity:
    input:
        alignments=zoo_alignments,
        data=f"{RESULTS}/embeddings/{{model}}/{{eval_dataset}}/manifest.json",
        external=lambda wildcards: rules.embed.output[0].format(model=D.ms_encoder, dataset=wildcards.eval_dataset),
    output:
        f"{RESULTS}/metrics/real/{{model}}/{{dataset}}/monosemanticity-on-{{eval_dataset}}.parquet",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}-{{dataset}}/monosemanticity-on-{{eval_dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}-{{dataset}}/monosemanticity-on-{{eval_dataset}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=model_gpus,
        mem_mb=16000,
        runtime=4 * 60,
    params:
        folder=subpath(input.data, parent=True),
        external=subpath(input.external, parent=True),
        runs=zoo_run_args,
        options=json.dumps(REAL["evaluation"]),
    shell:
        "vlsae --threads {threads} eval-monosemanticity --data {params.folder:q} --external {params.external:q}"
        " {params.runs} --options {params.options:q} --tag model={wildcards.model} --tag dataset={wildcards.dataset}"
        " --tag eval_dataset={wildcards.eval_dataset} --out {output:q} > {log:q} 2>&1"
