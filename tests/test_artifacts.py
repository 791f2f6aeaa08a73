"""The artifact index (workflow/artifacts.yaml) drives README.md's table, and naming one artifact's
file rebuilds that file alone."""

import yaml

from test_workflow import job_counts, snakemake


def artifact_rows(repo) -> list[str]:
    """README.md's artifact table, as the index says it should read."""
    rows = []
    for e in yaml.safe_load((repo / "workflow/artifacts.yaml").read_text()):
        files = [f"`results/tables/{e['stem']}.{{csv,md}}`"]
        target = f"results/tables/{e['stem']}.csv"
        if e["kind"] == "figure":
            files.insert(0, f"`results/figures/{e['stem']}.{{pdf,png}}`")
            target = f"results/figures/{e['stem']}.pdf"
        rows.append(f"| {e['artifact']}: {e['what']} | {', '.join(files)} | `snakemake --cores all {target}` |")
    return rows


def test_readme_table_is_the_artifact_index(repo):
    readme = (repo / "README.md").read_text()
    table = readme.split("| paper artifact | file | command |\n|---|---|---|\n")[1].split("\n\n")[0].splitlines()
    expected = artifact_rows(repo)
    assert table == expected, "README.md's artifact table should read:\n" + "\n".join(expected)


def test_every_indexed_artifact_is_a_target_of_rule_all(repo, tmp_path):
    plan = snakemake(repo, tmp_path, "-n")  # the tiny config switches every section on
    for e in yaml.safe_load((repo / "workflow/artifacts.yaml").read_text()):
        assert f"{tmp_path}/tables/{e['stem']}.csv" in plan, e["artifact"]


def test_naming_one_figure_rebuilds_it_alone(repo, tmp_path):
    results = tmp_path / "results"
    target = f"{results}/figures/het_theory_phases.pdf"
    assert job_counts(snakemake(repo, results, "-n", target)) == {"theory_phases": "1", "report_het_theory": "1", "total": "2"}
    snakemake(repo, results, target)
    built = sorted(p.relative_to(results).as_posix() for p in results.rglob("*") if p.parent.name in ("tables", "figures"))
    assert built == [f"{d}/het_theory_phases.{ext}" for d, ext in
                     (("figures", "pdf"), ("figures", "png"), ("tables", "csv"), ("tables", "md"))]
