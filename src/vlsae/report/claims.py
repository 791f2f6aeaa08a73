"""The claims scorecard: every testable claim of both papers (``workflow/claims.yaml``) checked on this
run's tables.

A claim names its table (``stem``: ``results/tables/{stem}.csv``), the paper's value or direction, and a
check on the table's rows (a ``where`` filter: column -> value or list of values):

* ``value``: the mean of ``metric`` lies within ``tolerance`` of ``paper``;
* ``compare``: ``mean(a) - ref(b)`` has the sign of ``op`` (``<``, ``<=``, ``>``, ``>=``), beyond ``margin``;
  ``ref`` is the mean of ``b``, or with ``b_groups`` the ``min`` / ``max`` (``b_reduce``) of its group means;
* ``close``: ``|mean(a) - mean(b)| <= tolerance``;
* ``trend``: the group means of ``metric`` over ``x`` rise (``increasing``) or fall (``decreasing``) with a
  Spearman correlation of at least ``min_rho`` in size;
* ``at_most``: the largest ``metric`` over the rows is at most ``tolerance``.

A claim's status is ``holds``, ``fails``, ``not testable here`` (a real-data claim on toy stores, or rows
the run does not have) or ``not built`` (its artifact's section is switched off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..atomic import write_frame, write_text

KINDS = ("value", "compare", "close", "trend", "at_most")
OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
STATUSES = ("holds", "fails", "not testable here", "not built")


@dataclass(frozen=True)
class Claim:
    """One entry of ``workflow/claims.yaml``."""

    id: str
    source: str
    claim: str
    stem: str
    paper: str
    check: dict
    real_data: bool = False
    tolerance: str = ""
    group: str = field(default="")

    def __post_init__(self):
        kind = self.check.get("kind")
        if kind not in KINDS:
            raise ValueError(f"claim {self.id}: check kind must be one of {KINDS}, got {kind!r}")
        if kind == "compare" and self.check.get("op") not in OPS:
            raise ValueError(f"claim {self.id}: compare op must be one of {sorted(OPS)}")
        if "metric" not in self.check:
            raise ValueError(f"claim {self.id}: check needs a metric (a column of {self.stem})")


def load_claims(entries: list[dict]) -> list[Claim]:
    claims = [Claim(**entry) for entry in entries]
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate claim ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return claims


def select(table: pd.DataFrame, where: dict) -> pd.DataFrame:
    """Rows of ``table`` matching every ``column: value`` (or ``column: [values]``) of ``where``; numbers
    match to floating-point tolerance."""
    mask = np.ones(len(table), dtype=bool)
    for column, wanted in where.items():
        if column not in table:
            raise KeyError(column)
        values = wanted if isinstance(wanted, list) else [wanted]
        col = table[column]
        if _numeric(col, values):
            mask &= np.isclose(col.to_numpy(float)[:, None], np.asarray(values, float)[None, :]).any(1)
        else:
            mask &= col.isin(values).to_numpy()
    return table[mask]


def _numeric(col: pd.Series, values: list) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def summary(rows: pd.DataFrame, metric: str) -> tuple[float, float]:
    """Mean of ``metric`` over ``rows`` and its spread over seeds: the ``{metric}_std`` column of a single
    aggregated row, the std of per-seed means where rows carry a ``seed``, else NaN."""
    mean = float(rows[metric].mean())
    if f"{metric}_std" in rows and len(rows) == 1:
        return mean, float(rows[f"{metric}_std"].iloc[0])
    if "seed" in rows and rows["seed"].nunique() > 1:
        return mean, float(rows.groupby("seed")[metric].mean().std())
    return mean, float("nan")


def _show(mean: float, std: float) -> str:
    return f"{mean:.4g}" if np.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def evaluate(claim: Claim, table: pd.DataFrame) -> tuple[str, str]:
    """``(status, ours)`` of one claim on its table."""
    c = claim.check
    metric = c["metric"]
    if metric not in table:
        return "not testable here", f"no column {metric}"
    try:
        if c["kind"] == "value":
            rows = select(table, c.get("where", {}))
            if rows.empty:
                return "not testable here", "no rows"
            mean, std = summary(rows, metric)
            return ("holds" if abs(mean - float(claim.paper)) <= c["tolerance"] else "fails"), _show(mean, std)
        if c["kind"] == "at_most":
            rows = select(table, c.get("where", {}))
            if rows.empty:
                return "not testable here", "no rows"
            worst = float(rows[metric].max())
            return ("holds" if worst <= c["tolerance"] else "fails"), f"max {worst:.3g}"
        if c["kind"] == "trend":
            rows = select(table, c.get("where", {}))
            means = rows.groupby(c["x"])[metric].mean()
            if len(means) < 3:
                return "not testable here", f"{len(means)} values of {c['x']}"
            rho = float(spearmanr(means.index.to_numpy(float), means.to_numpy()).statistic)
            sign = 1 if c["direction"] == "increasing" else -1
            holds = sign * rho >= c.get("min_rho", 0.8)
            return ("holds" if holds else "fails"), (f"Spearman {rho:+.2f} over {c['x']} "
                                                     f"({means.iloc[0]:.4g} -> {means.iloc[-1]:.4g})")
        a, b = select(table, c["a"]), select(table, c["b"])
        if a.empty or b.empty:
            return "not testable here", "no rows"
        mean_a, std_a = summary(a, metric)
        if c.get("b_groups"):
            groups = b.groupby(c["b_groups"], dropna=False)[metric].mean()
            pick = groups.idxmin() if c.get("b_reduce", "min") == "min" else groups.idxmax()
            ref, std_b, label = float(groups[pick]), float("nan"), f" ({', '.join(map(str, np.atleast_1d(pick)))})"
        else:
            (ref, std_b), label = summary(b, metric), ""
        holds = (abs(mean_a - ref) <= c["tolerance"] if c["kind"] == "close"
                 else bool(OPS[c["op"]](mean_a - ref, c.get("margin", 0.0))))
        return ("holds" if holds else "fails"), f"{_show(mean_a, std_a)} vs {_show(ref, std_b)}{label}"
    except KeyError as e:
        return "not testable here", f"no column {e.args[0]}"


def scorecard(claims: list[Claim], tables: dict[str, pd.DataFrame], real_data: bool) -> pd.DataFrame:
    """One row per claim: ``id, source, claim, paper, ours, tolerance, status``. ``tables`` maps stems to
    the tables this run built; ``real_data`` is false when every embedding store is a toy one."""
    rows = []
    for claim in claims:
        if claim.real_data and not real_data:
            status, ours = "not testable here", "toy stores"
        elif claim.stem not in tables:
            status, ours = "not built", ""
        else:
            status, ours = evaluate(claim, tables[claim.stem])
        rows.append({"id": claim.id, "group": claim.group, "source": claim.source, "claim": claim.claim,
                     "paper": claim.paper, "ours": ours, "tolerance": claim.tolerance, "status": status})
    return pd.DataFrame(rows)


def counts(card: pd.DataFrame) -> str:
    """``N hold, M fail, ...`` over the scorecard."""
    n = card["status"].value_counts()
    return ", ".join(f"{n.get(s, 0)} {s}" for s in STATUSES if n.get(s, 0))


def write_scorecard(card: pd.DataFrame, csv_path: str, md_path: str, settings: str = "") -> None:
    write_frame(csv_path, card)
    shown = card.assign(status=[f"**{s}**" if s in ("holds", "fails") else s for s in card["status"]])
    write_text(md_path, "# Claims scorecard\n\n" + (f"{settings}\n\n" if settings else "")
               + f"{len(card)} claims: {counts(card)}.\n\n"
               + shown.drop(columns=["group"]).to_markdown(index=False) + "\n")


BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"


def readme_block(cards: dict[str, pd.DataFrame]) -> str:
    """README's claims section from scorecards of named runs (the first is the default run): per group a
    count of what holds, then one row per claim with each run's outcome and numbers."""
    first = next(iter(cards.values()))
    lines = [f"Generated by `make claims` from {', '.join(f'`docs/claims/{n}.csv`' for n in cards)} "
             "(copies of each run's `tables/claims.csv`); do not edit by hand.", ""]
    for group, rows in first.groupby("group", sort=False):
        outcome = ", ".join(f"{name}: {counts(card[card['group'] == group])}" for name, card in cards.items()
                            if (card["group"] == group).any())
        lines += [f"**{group}** ({outcome})", "", "| claim | paper | " + " | ".join(cards) + " |",
                  "|---|---|" + "---|" * len(cards)]
        for _, claim in rows.iterrows():
            cells = []
            for card in cards.values():
                match = card[card["id"] == claim["id"]]
                cells.append("not in this run's scorecard (it predates the claim)" if match.empty else
                             f"{match['status'].iloc[0]}{': ' + match['ours'].iloc[0] if match['ours'].iloc[0] else ''}")
            lines.append(f"| {claim['claim']} ({claim['source']}) | {claim['paper']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the claims markers replaced by ``block``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + block + END + rest.split(END, 1)[1]
