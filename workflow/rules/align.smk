# Hungarian post-hoc alignment: one permutation per trained modality-specific pair (HET §5).


rule align_synthetic:
    input:
        weights=rules.train_sae_synthetic.output.weights,
        data=rules.synth_het.output.train,
    output:
        f"{RESULTS}/saes/synthetic/het-alpha{{alpha}}/{{sae_id}}/seed{{seed}}/alignment.npz",
    params:
        folder=subpath(input.weights, parent=True),
    log:
        f"{RESULTS}/logs/align/het-alpha{{alpha}}/{{sae_id}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align/het-alpha{{alpha}}/{{sae_id}}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "vlsae --threads {threads} align --model {params.folder} --data {input.data} --out {output} > {log} 2>&1"


rule align_real:
    input:
        weights=rules.train_sae_real.output.weights,
        data=rules.embed.output[0],
    output:
        f"{RESULTS}/saes/{{model}}/{{dataset}}/{REAL_SAE.slug}/seed{{seed}}/alignment.npz",
    params:
        folder=subpath(input.weights, parent=True),
    log:
        f"{RESULTS}/logs/align/{{model}}-{{dataset}}/{REAL_SAE.slug}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align/{{model}}-{{dataset}}/{REAL_SAE.slug}-seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "vlsae --threads {threads} align --model {params.folder} --data {input.data} --out {output} > {log} 2>&1"
