# vlsae: sparse autoencoders on vision-language embedding spaces.
# Thin entry point: validate the config, include the rules, name the default targets.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/browse.smk"


rule all:
    default_target: True
    input:
        all_targets(),
