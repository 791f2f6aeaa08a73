"""Snakemake conventions: snakefmt formatting, a clean `snakemake --lint` for both configs, and every rule
naming its `vlsae` subcommand literally (so `grep -r eval-bimodal workflow/` finds its rule)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vlsae.cli.args import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]


def test_snakefmt_is_clean():
    out = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", *map(str, RULE_FILES)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("configs", [[], ["--configfile", "config/paper.yaml"]], ids=["default", "paper"])
def test_snakemake_lint_is_clean(configs):
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint", *configs], capture_output=True, text=True, cwd=ROOT)
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout[-3000:]


def test_every_rule_names_its_subcommand_literally():
    known = {name for name, *_ in COMMANDS}
    used = set()
    for path in RULE_FILES:
        for call in re.findall(r'"vlsae (?:--threads \{threads\} )?(\S+)', path.read_text()):
            assert "{" not in call, f"{path.name}: `vlsae {call}` does not name its subcommand"
            assert call in known, f"{path.name}: `vlsae {call}` is not a subcommand"
            used.add(call)
    # every subcommand a rule could run is run by one, except the ones people run by hand
    assert known - used == {"claims-readme", "export", "import"}
