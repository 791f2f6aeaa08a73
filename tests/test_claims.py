"""The claims scorecard: each check kind on hand-made tables, and workflow/claims.yaml itself."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vlsae.report.claims import Claim, load_claims, scorecard, write_scorecard

ROOT = Path(__file__).resolve().parents[1]


def _claim(check, stem="t", paper="", real_data=False, **kw):
    return Claim(id=kw.get("id", "c"), source="s", claim="x", stem=stem, paper=paper, check=check, real_data=real_data)


def _sweep():
    """Two methods over three weights and two seeds: loss L rises with w (1, 2, 3 +- 0.1), the reference is 0.5."""
    rows = [{"method": "ref", "loss": "", "w": np.nan, "seed": s, "err": 0.5 + 0.1 * s} for s in (0, 1)]
    rows += [{"method": "aux", "loss": "L", "w": w, "seed": s, "err": w + 0.1 * s} for w in (1.0, 2.0, 3.0) for s in (0, 1)]
    return pd.DataFrame(rows)


def _status(check, table, **kw):
    card = scorecard([_claim(check, **kw)], {"t": table}, real_data=True)
    return card["status"].iloc[0], card["ours"].iloc[0]


def test_compare_against_the_best_group_and_margins():
    table = _sweep()
    best = {"kind": "compare", "metric": "err", "op": "<", "a": {"method": "ref"}, "b": {"loss": "L"},
            "b_groups": ["w"], "b_reduce": "min"}
    status, ours = _status(best, table)
    assert status == "holds" and ours == "0.55 ± 0.071 vs 1.05 (1.0)"      # 0.55 < min(1.05, 2.05, 3.05)
    assert _status({**best, "op": ">"}, table)[0] == "fails"
    assert _status({**best, "op": "<", "margin": -0.6}, table)[0] == "fails"  # 0.55 - 1.05 = -0.5 is not < -0.6
    plain = {"kind": "compare", "metric": "err", "op": ">", "a": {"loss": "L", "w": 3.0}, "b": {"loss": "L", "w": [1.0, 2.0]}}
    assert _status(plain, table) == ("holds", "3.05 ± 0.071 vs 1.55 ± 0.071")


def test_value_close_trend_and_at_most():
    table = _sweep()
    assert _status({"kind": "value", "metric": "err", "tolerance": 0.06, "where": {"method": "ref"}}, table, paper="0.5")[0] == "holds"
    assert _status({"kind": "value", "metric": "err", "tolerance": 0.04, "where": {"method": "ref"}}, table, paper="0.5")[0] == "fails"
    close = {"kind": "close", "metric": "err", "tolerance": 0.5, "a": {"method": "ref"}, "b": {"loss": "L", "w": 1.0}}
    assert _status(close, table)[0] == "holds" and _status({**close, "tolerance": 0.49}, table)[0] == "fails"
    rising = {"kind": "trend", "metric": "err", "x": "w", "direction": "increasing", "where": {"loss": "L"}}
    status, ours = _status(rising, table)
    assert status == "holds" and ours.startswith("Spearman +1.00 over w")
    assert _status({**rising, "direction": "decreasing"}, table)[0] == "fails"
    assert _status({"kind": "at_most", "metric": "err", "tolerance": 3.1, "where": {"loss": "L"}}, table) == ("holds", "max 3.1")
    assert _status({"kind": "at_most", "metric": "err", "tolerance": 3.0, "where": {"loss": "L"}}, table)[0] == "fails"


def test_aggregated_rows_use_their_std_column():
    table = pd.DataFrame({"model": ["SAE"], "scored": [True], "W_mean": [0.2], "W_mean_std": [0.01]})
    check = {"kind": "value", "metric": "W_mean", "tolerance": 0.05, "where": {"model": "SAE", "scored": True}}
    assert _status(check, table, paper="0.18") == ("holds", "0.2 ± 0.01")


def test_what_cannot_be_checked_says_why():
    table = _sweep()
    check = {"kind": "value", "metric": "err", "tolerance": 1, "where": {"method": "nobody"}}
    assert _status(check, table, paper="0") == ("not testable here", "no rows")
    assert _status({**check, "metric": "other"}, table, paper="0") == ("not testable here", "no column other")
    assert _status({**check, "where": {"colour": "red"}}, table, paper="0") == ("not testable here", "no column colour")
    card = scorecard([_claim(check, paper="0", real_data=True), _claim(check, stem="missing", paper="0", id="d")],
                     {"t": table}, real_data=False)
    assert list(card["status"]) == ["not testable here", "not built"] and card["ours"].iloc[0] == "toy stores"
    with pytest.raises(ValueError, match="check kind"):
        _claim({"kind": "guess", "metric": "err"})
    with pytest.raises(ValueError, match="op"):
        _claim({"kind": "compare", "metric": "err", "op": "=="})


def test_the_papers_claims_file_is_well_formed(tmp_path):
    entries = yaml.safe_load((ROOT / "workflow/claims.yaml").read_text())
    claims = load_claims(entries)
    stems = {e["stem"] for e in yaml.safe_load((ROOT / "workflow/artifacts.yaml").read_text())}
    assert {c.stem for c in claims} <= stems
    groups = {c.group for c in claims}
    assert {"HET Fig. 5", "HET Fig. 6", "HET theory", "ISO Table 5", "Real data"} <= groups
    assert sum(c.group == "ISO Table 5" and c.check["kind"] == "value" for c in claims) == 8  # 4 cells x (W, mma)
    assert all(c.real_data for c in claims if c.group == "Real data")
    card = scorecard(claims, {}, real_data=False)
    assert set(card["status"]) == {"not testable here", "not built"}
    write_scorecard(card, str(tmp_path / "c.csv"), str(tmp_path / "c.md"), "Configuration: x.")
    md = (tmp_path / "c.md").read_text()
    assert md.startswith("# Claims scorecard\n\nConfiguration: x.") and f"{len(claims)} claims" in md
    with pytest.raises(ValueError, match="duplicate"):
        load_claims(entries[:1] * 2)


def test_readme_block_replaces_only_the_marked_part():
    from vlsae.report.claims import BEGIN, END, readme_block, replace_block

    card = pd.DataFrame([{"id": "a", "group": "G", "source": "Fig. 1", "claim": "x rises", "paper": "up", "ours": "+0.9",
                          "tolerance": "", "status": "holds"}])
    other = card.assign(status="fails", ours="-0.2")
    block = readme_block({"default": card, "variant": other})
    assert "**G** (default: 1 holds, variant: 1 fails)" in block
    assert "| x rises (Fig. 1) | up | holds: +0.9 | fails: -0.2 |" in block
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_block(text, block) == f"intro\n{BEGIN}\n{block}{END}\noutro\n"
    with pytest.raises(ValueError, match="block"):
        replace_block("no markers", block)



def test_readme_claims_are_the_committed_scorecards():
    """README.md's claims section is what `make claims` generates from docs/claims/ (no hand edits)."""
    from vlsae.report.claims import BEGIN, END, readme_block

    runs = [p for p in (ROOT / "docs/claims/default.csv", ROOT / "docs/claims/het_fig6_authors.csv") if p.exists()]
    assert runs, "docs/claims/default.csv is missing: run `make run` then `make claims`"
    cards = {p.stem: pd.read_csv(p, keep_default_na=False) for p in runs}
    readme = (ROOT / "README.md").read_text()
    assert readme.split(BEGIN, 1)[1].split(END, 1)[0] == "\n" + readme_block(cards)
