"""The study design, from the validated config: pure functions, no paths to outputs, no Snakemake.

Snakemake's rules (``workflow/rules/common.smk``) build one :class:`Design` from the config: it checks
the config before anything runs (so that ``snakemake -n`` fails at once, naming the key) and says what
trains where - the HET reference pairs and Fig. 6 sweep, the ISO SAE and SAE-A, the zoo members of
each (model, store, protocol), the evaluation sets of each suite. ``common.smk`` only turns these
into paths.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .embed.readers import check_options
from .embed.toy import TOY_CONCEPTS, TOY_OPTIONS
from .sae import SAESpec
from .store import TRAINING_CACHE_MB
from .synth.iso import iso_dictionary_size


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key {key}: {message}")


def sae_spec(data: dict, key: str, dim: int | None = None) -> SAESpec:
    """The :class:`~vlsae.sae.SAESpec` of config ``data``, or a :class:`ConfigError` naming ``key``."""
    try:
        return SAESpec.from_dict(data, dim)
    except ValueError as e:
        raise ConfigError(key, str(e)) from e


def check_results(results: str, project: str | Path, allow_external: bool) -> None:
    """``results`` must be a folder inside the project: not empty, no ``..`` part, and not an absolute
    path outside ``project`` unless ``allow_external_results`` says so (a scratch disk on a cluster)."""
    if not results.strip():
        raise ConfigError("results", "is empty")
    path = Path(results)
    if ".." in path.parts:
        raise ConfigError("results", f"{results!r} contains '..'")
    if path.is_absolute() and not allow_external:
        project = Path(project).resolve()
        if project != path.resolve() and project not in path.resolve().parents:
            raise ConfigError("results", f"{results!r} lies outside the working directory {str(project)!r}; set "
                                         "allow_external_results: true to write there (on the command line: "
                                         "--config allow_external_results=True)")


def check_datasets(datasets: dict) -> None:
    """Every dataset's reader options are ones its format's reader takes."""
    for name, entry in datasets.items():
        try:
            check_options(entry["format"], entry.get("options", {}))
        except ValueError as e:
            raise ConfigError(f"datasets.{name}.options", str(e)) from e


def real_embeddings(embed: dict, models: dict, datasets: dict) -> bool:
    """Whether some store pairs a real encoder with a real dataset (neither a toy one the workflow builds):
    only then are the real-data claims testable."""
    return (any("toy" not in models[m] for m in embed["models"])
            and any("toy" not in datasets[d] for d in embed["datasets"]))


# Peak memory of the rules that hold m x m matrices, per m^2 of their largest SAE (benchmarks/metrics_memory.py
# measured the fits: README, "Guarantees"); a base for the process, its libraries and one shard.
BASE_MB = 2000
ALIGN_BYTES_PER_PAIR = 20     # measured 9.6: the float64 cross moment turned into C in place; +8 for the live block
                              # the Hungarian assignment copies when some latents are dead
EVALUATE_BYTES_PER_PAIR = 48  # measured 42.1: FDA's exact OT (POT's network simplex over all m^2 arcs) dominates
NOMINAL_DIM = 1024            # the widest encoders of the studies (SigLIP2-L); used before a store exists


def square_mb(latents: list[int], bytes_per_pair: float) -> int:
    """Memory a rule declares for SAEs of ``latents`` (per SAE) that it handles one at a time."""
    return int(BASE_MB + bytes_per_pair * max(latents, default=0) ** 2 / 2 ** 20)


def train_mb(specs: list[SAESpec], dim: int, shard_pairs: int) -> int:
    """Memory of one training pass: per SAE its parameters with their gradients and two AdamW moments
    (``4 x 4`` bytes per parameter), plus the largest Matching Pursuit Gram matrix (``4 m^2`` bytes,
    recomputed each step; at most its ``gram_budget_mb`` where one is set), one shuffled shard of paired
    embeddings (three copies) and the decoded store where it fits ``vlsae train``'s cache."""
    params = sum((1 if s.arrangement == "shared" else 2) * (2 * s.latents_per_sae * dim + s.latents_per_sae + dim) * 16
                 for s in specs)
    gram = max((min(4 * s.latents_per_sae ** 2, s.params.get("gram_budget_mb", float("inf")) * 2 ** 20)
                for s in specs if s.architecture == "mp"), default=0)
    return int(BASE_MB + TRAINING_CACHE_MB + (params + gram + 3 * 2 * shard_pairs * dim * 4) / 2 ** 20)


# Which evaluate_on stores each real-data suite runs on, by their layout.
ROLES = {
    "pairs": lambda entry: entry["format"] != "fashioniq",              # encoder, SAE zoo and gap metrics
    "triplets": lambda entry: entry["format"] == "fashioniq",           # vector arithmetic
    "concepts": lambda entry: entry["format"] == "coco" and bool(entry.get("concepts") or "toy" in entry),  # steering
    "captions": lambda entry: entry["format"] in ("coco", "img2dataset"),  # monosemanticity
}
ISO_MODEL_NAMES = ("sae", "sae_a")


class Design:
    """What the validated ``config`` asks for, checked. Attributes are plain data; methods answer
    which SAEs train or are evaluated where."""

    def __init__(self, config: dict, project: str | Path = "."):
        self.config = config
        check_results(config["results"], project, config["allow_external_results"])
        check_datasets(config["datasets"])
        self.het, self.fig6, self.iso, self.real = (config[k] for k in ("het_synthetic", "het_fig6", "iso_toy", "real_saes"))
        self.models, self.datasets, self.embed = config["models"], config["datasets"], config["embeddings"]
        self._check_references()
        # HET: the reference pair of every alpha, and Fig. 6's sweep on the shared SAE
        self.reference_specs = [sae_spec({**self.het["sae"], "arrangement": arr}, "het_synthetic.sae")
                                for arr in ("shared", "specific")]
        self.fig6_sweep = [(loss, multiplier, sae_spec(
            {**self.het["sae"], "arrangement": "shared",
             "aux": {**self.het["sae"]["aux"], loss: {**options, "weight": options["weight"] * multiplier}}},
            f"het_fig6.losses.{loss}")) for loss, options in self.fig6["losses"].items() for multiplier in self.fig6["multipliers"]]
        self.fig6_trained = self.reference_specs + [spec for _, _, spec in self.fig6_sweep]
        self.sae_specs = {spec.slug: spec for spec in self.fig6_trained}
        self.studies = {  # per HET synthetic study: training protocol, metric definitions (E.3 by default), matching
            "fig5": {"training": self.het["training"], "metrics": {}, "matching": "signed"},
            "fig6": {"training": self.fig6["training"], "metrics": self.fig6["metrics"], "matching": self.fig6["matching"]},
        }
        # the real-data zoo: raw entries (`expansion` resolved per store), nominal specs, where and how each trains
        entries = self.real["zoo"]
        self.zoo_sae = {e["name"]: e["sae"] for e in entries}
        if len(self.zoo_sae) < len(entries):
            raise ConfigError("real_saes.zoo", f"names must be unique, got {[e['name'] for e in entries]}")
        self.zoo = {name: sae_spec(sae, f"real_saes.zoo[{name}].sae", dim=NOMINAL_DIM) for name, sae in self.zoo_sae.items()}
        self.protocols = {"default": self.real["training"], **self.real["protocols"]}
        self.zoo_protocol = {e["name"]: e.get("protocol", "default") for e in entries}
        self.zoo_where = {e["name"]: (e.get("models", self.embed["models"]), e.get("train_on", self.real["train_on"]))
                          for e in entries}
        self.zoo_aligned = {e["name"] for e in entries if e.get("align", True)}
        self.bimodal_sae, self.ms_encoder = self.real["bimodal_sae"], self.real["monosemanticity_encoder"]
        if self.real["enabled"]:
            self._check_zoo()

    # --- checks -------------------------------------------------------------------------------------
    def _check_references(self) -> None:
        """Names a config section uses are defined where they should be."""
        refs = [("embeddings.models", self.embed["models"], self.models),
                ("embeddings.datasets", self.embed["datasets"], self.datasets),
                *((f"datasets.{d}.download", self.datasets[d]["download"], self.config["downloads"]) for d in self.datasets)]
        if self.real["enabled"]:
            refs += [(f"real_saes.{key}", self.real[key], self.embed["datasets"]) for key in ("train_on", "evaluate_on")]
        for key, names, registry in refs:
            unknown = sorted(set(names) - set(registry))
            if unknown:
                raise ConfigError(key, f"{unknown} not defined (defined: {sorted(registry)})")
        if "synthetic" in self.models:
            raise ConfigError("models.synthetic", "the name `synthetic` is reserved for the synthetic stores")

    def _check_zoo(self) -> None:
        for e in self.real["zoo"]:
            name = e["name"]
            for key, allowed in (("models", self.embed["models"]), ("train_on", self.real["train_on"])):
                unknown = sorted(set(e.get(key, [])) - set(allowed))
                if unknown:
                    raise ConfigError(f"real_saes.zoo[{name}].{key}", f"{unknown} not among {sorted(allowed)}")
            if self.zoo_protocol[name] not in self.protocols:
                raise ConfigError(f"real_saes.zoo[{name}].protocol",
                                  f"{self.zoo_protocol[name]!r} not defined (defined: {sorted(self.protocols)})")
            if self.zoo[name].arrangement == "specific" and name not in self.zoo_aligned:
                raise ConfigError(f"real_saes.zoo[{name}].align", "a modality-specific pair needs its alignment "
                                  "(post-hoc rows, Fig. 2)")
        shared = [n for n, s in self.zoo.items() if s.arrangement == "shared"]
        for name, selection in self.real["selections"].items():
            unknown = sorted(set(selection["saes"]) - set(self.zoo))
            if unknown:
                raise ConfigError(f"real_saes.selections.{name}.saes", f"{unknown} not in real_saes.zoo")
            not_shared = sorted(set(selection["saes"]) - set(shared))
            not_specific = sorted(set(selection["saes"]) - {n for n, s in self.zoo.items() if s.arrangement == "specific"})
            if name == "het_fig9" and not_specific:
                raise ConfigError(f"real_saes.selections.{name}.saes", f"{not_specific} are not modality-specific zoo members")
            if name in ("beta_sweep", "iso_main") and not_shared:
                raise ConfigError(f"real_saes.selections.{name}.saes", f"{not_shared} are not shared SAEs (shared: {shared})")
            unknown = sorted(set(selection.get("models", [])) - set(self.embed["models"]))
            if unknown:
                raise ConfigError(f"real_saes.selections.{name}.models", f"{unknown} not among embeddings.models")
            for sae in selection["saes"]:
                trained_on = self.zoo_where[sae][0]
                untrained = sorted(set(selection.get("models", [])) - set(trained_on))
                if untrained:
                    raise ConfigError(f"real_saes.selections.{name}.models",
                                      f"{sae!r} is not trained on {untrained} (its real_saes.zoo models: {trained_on})")
        if self.bimodal_sae is not None and self.bimodal_sae not in shared:
            raise ConfigError("real_saes.bimodal_sae", f"{self.bimodal_sae!r} is not a shared SAE of real_saes.zoo "
                              f"(shared: {shared})")
        if self.real["fig2_saes"] is not None:
            not_specific = sorted(set(self.real["fig2_saes"]) - {n for n, s in self.zoo.items() if s.arrangement == "specific"})
            if not_specific:
                raise ConfigError("real_saes.fig2_saes", f"{not_specific} are not modality-specific zoo members")
        named = self.real["browser"]["shared_sae"]
        if named is not None and (named not in self.zoo or self.zoo[named].arrangement != "shared"):
            raise ConfigError("real_saes.browser.shared_sae", f"{named!r} is not a shared zoo member")
        if self.ms_encoder is not None and self.ms_encoder not in self.models:
            raise ConfigError("real_saes.monosemanticity_encoder",
                              f"{self.ms_encoder!r} not defined (defined: {sorted(self.models)})")

    # --- ISO Table 5 ----------------------------------------------------------------------------------
    def iso_models(self, experiment: str) -> dict[str, SAESpec]:
        """SAE (MP, k = the DGP's L) and SAE-A of one experiment, with D1's atom count (``iso_toy.sae.atoms:
        bimodal``, the authors' run) or that of the experiment's scored truth."""
        truth = {"bimodal": "bimodal", "scored": self.iso["experiments"][experiment]["truth"]}[self.iso["sae"]["atoms"]]
        params = {"k": self.iso["dgp"]["L"], "selection": self.iso["sae"]["selection"]}
        mp = SAESpec(architecture="mp", latents=iso_dictionary_size(truth, self.iso["dgp"]["k"]), params=params,
                     decoder_init=self.iso["sae"]["decoder_init"])
        return {"sae": mp, "sae_a": SAESpec(**{**asdict(mp), "aux": {"iso_energy": self.iso["alignment"]}})}

    def iso_dgp(self, experiment: str) -> dict:
        return {**self.iso["dgp"], "tau1": self.iso["experiments"][experiment]["tau1"]}

    def het_dgp(self, alpha: float) -> dict:
        return {**self.het["dgp"], "alpha": float(alpha)}

    # --- embedding stores --------------------------------------------------------------------------------
    def model_entry(self, model: str, toy_folder: str) -> dict:
        """The CLI's ``--model`` of a registry entry; a toy model lives in ``toy_folder``."""
        entry = dict(self.models[model])
        if "toy" in entry:
            entry["source"] = toy_folder
            del entry["toy"]
        return {"name": model, **entry}

    def reader_entry(self, dataset: str, toy_folder: str) -> dict:
        """The dataset's reader arguments (``format``, ``root``, ``options``); a toy dataset is generated
        into ``toy_folder`` in its format's layout."""
        entry = self.datasets[dataset]
        if "toy" in entry:
            return {"format": entry["format"], "root": toy_folder, "options": TOY_OPTIONS[entry["format"]]}
        return {"format": entry["format"], "root": entry["root"], "options": entry["options"]}

    def concept_files(self, dataset: str) -> list[str]:
        """COCO instance files (under the dataset root) with the object categories of each image."""
        return [TOY_CONCEPTS] if "toy" in self.datasets[dataset] else self.datasets[dataset].get("concepts", [])

    # --- the real-data zoo ----------------------------------------------------------------------------
    def members(self, model: str, dataset: str, names=None, protocol: str | None = None) -> list[str]:
        """Zoo names trained on this (model, dataset), in zoo order, optionally only those in ``names`` or
        of one training ``protocol``."""
        return [n for n in self.zoo if model in self.zoo_where[n][0] and dataset in self.zoo_where[n][1]
                and (names is None or n in names) and protocol in (None, self.zoo_protocol[n])]

    def member_protocols(self, model: str, dataset: str) -> list[str]:
        """The training protocols of the members of one (model, dataset): one training pass each."""
        return list(dict.fromkeys(self.zoo_protocol[n] for n in self.members(model, dataset)))

    def zoo_pairs(self) -> list[tuple[str, str]]:
        """Every (model, training dataset) with at least one zoo member."""
        return [(m, d) for m in self.embed["models"] for d in self.real["train_on"] if self.members(m, d)]

    def member_specs(self, model: str, dataset: str, dim: int, names=None, protocol: str | None = None) -> list[SAESpec]:
        """The specs (``expansion`` resolved at ``dim``) of the members of one (model, training dataset)."""
        return [SAESpec.from_dict(self.zoo_sae[n], dim) for n in self.members(model, dataset, names, protocol)]

    def member_mb(self, stage: str, model: str, dataset: str, dim: int, protocol: str | None = None) -> int:
        """``mem_mb`` of a zoo job (``train``, ``align`` or ``evaluate``) of one (model, store)."""
        if stage == "train":
            return train_mb(self.member_specs(model, dataset, dim, protocol=protocol), dim, self.embed["shard_pairs"])
        names = sorted(self.zoo_aligned) if stage == "align" else None
        latents = [s.latents_per_sae for s in self.member_specs(model, dataset, dim, names)]
        return square_mb(latents, ALIGN_BYTES_PER_PAIR if stage == "align" else EVALUATE_BYTES_PER_PAIR)

    def eval_sets(self, role: str) -> list[str]:
        """The ``evaluate_on`` stores of one suite role (:data:`ROLES`)."""
        return [d for d in self.real["evaluate_on"] if ROLES[role](self.datasets[d])]

    def fig2_members(self, model: str, dataset: str, figure: str = "fig2") -> list[str]:
        """The modality-specific members of one (model, store) that make HET Fig. 2's panels (``fig2_saes``, all by
        default) or Fig. 9's (``selections.het_fig9``; none without it)."""
        names = self.real["fig2_saes"] if figure == "fig2" else self.real["selections"].get("het_fig9", {}).get("saes", [])
        models = self.real["selections"].get("het_fig9", {}).get("models") if figure == "fig9" else None
        if models is not None and model not in models:
            return []
        return [n for n in self.members(model, dataset, names) if self.zoo[n].arrangement == "specific"]

    # --- the latent browser and its galleries -----------------------------------------------------------
    def browse_sets(self) -> list[str]:
        """Evaluation stores the latent browser shows: every image-text (``pairs``) store."""
        return self.eval_sets("pairs") if self.real["enabled"] and self.real["browser"]["enabled"] else []

    def gallery_sources(self) -> dict[str, tuple[str, str, str, str]]:
        """Gallery source -> ``(model, training dataset, browsed store, zoo name)``, for the sources this config
        has: ``iso``, the bimodal SAE (ISO Figs. 18-22); ``het_pair``, the first modality-specific member (HET
        Fig. 3); ``het_shared``, ``browser.shared_sae`` or the first shared member without an auxiliary loss,
        of the pair's architecture where one is (HET Fig. 10 contrasts a shared TopK with the pair). Each on the first (model, training dataset) that trains it, browsed on the first store."""
        if not self.browse_sets():
            return {}
        specific = next((n for n, spec in self.zoo.items() if spec.arrangement == "specific"), None)
        plain = [n for n, spec in self.zoo.items() if spec.arrangement == "shared" and not spec.aux]
        like_pair = [n for n in plain if specific and self.zoo[n].architecture == self.zoo[specific].architecture]
        shared = self.real["browser"]["shared_sae"] or next(iter(like_pair + plain), None)
        out = {}
        for source, name in (("iso", self.bimodal_sae), ("het_pair", specific), ("het_shared", shared)):
            where = [(m, d) for m, d in self.zoo_pairs() if name in self.members(m, d)] if name else []
            if where:
                out[source] = (*where[0], self.browse_sets()[0], name)
        return out

    def real_embeddings(self) -> bool:
        """Whether the real-data claims are testable: the zoo is on and some store is a real one."""
        return self.real["enabled"] and real_embeddings(self.embed, self.models, self.datasets)
