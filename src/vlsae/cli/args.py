"""What every subcommand shares: argument types, the command table, and small I/O helpers.

Each stage module (:mod:`.data`, :mod:`.train`, :mod:`.evaluate`, :mod:`.report`) declares its
subcommands with :func:`command`, their arguments beside the function that runs them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

log = logging.getLogger("vlsae")
COMMANDS: list[tuple[str, str, tuple, object]] = []  # (name, help, arguments, function), in declaration order


def arg(*flags, **options) -> tuple:
    """One ``add_argument`` call, for :func:`command`."""
    return flags, options


def command(name: str, help: str, *arguments: tuple):
    """Register the decorated function as subcommand ``name`` with these :func:`arg` arguments."""
    def register(func):
        COMMANDS.append((name, help, arguments, func))
        return func
    return register


class LazyChoices:
    """An argparse ``choices`` read from ``module.attribute`` only when a value is checked, so that declaring a
    command never imports its heavy module (every workflow job starts the CLI: 3.6 s of imports otherwise). Give
    the argument a ``metavar``: argparse lists the choices of one without."""

    def __init__(self, module: str, attribute: str):
        self.module, self.attribute = module, attribute

    def _names(self) -> list[str]:
        return sorted(getattr(importlib.import_module(self.module), self.attribute))

    def __contains__(self, value) -> bool:
        return value in self._names()

    def __iter__(self):
        return iter(self._names())


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _count(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


POSITIVE, NON_NEGATIVE = _count(1), _count(0)


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def read_tidy(paths):
    """The tidy Parquet files of a report, as one frame."""
    import pandas as pd

    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def write_rows(path, rows: list[dict], tags=()) -> None:
    """Tidy ``rows`` (each with the ``--tag`` columns) to Parquet, atomically."""
    import pandas as pd

    from ..atomic import write_frame

    write_frame(path, pd.DataFrame([{**dict(tags), **row} for row in rows]))


def one_out_each(items: list, outs: list, flag: str) -> list[tuple]:
    """``(item, out)`` pairs of repeated ``flag`` and ``--out`` options, which must come in equal numbers
    and with distinct ``--out`` (two outputs in one place would overwrite each other)."""
    if len(items) != len(outs):
        raise ValueError(f"give one --out per {flag}: got {len(items)} {flag} and {len(outs)} --out")
    twice = sorted({str(o) for o in outs if outs.count(o) > 1})
    if twice:
        raise ValueError(f"--out given twice: {twice}")
    return list(zip(items, outs))


REPORT_OUTPUTS = tuple(arg(f"--{name}", required=True, help=f"{what} to write")
                       for name, what in (("table", "csv table"), ("markdown", "markdown summary"), ("pdf", "figure"),
                                          ("png", "figure")))
TABLE_OUTPUTS = REPORT_OUTPUTS[:2]
METRICS_IN = arg("metrics", nargs="+", type=Path, help="tidy metric files (.parquet)")
DGP_SIZES = (arg("--n-train", type=POSITIVE, default=50_000), arg("--seed", type=NON_NEGATIVE, default=0),
             arg("--shard-pairs", type=POSITIVE, default=65_536))
DEVICE = arg("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
RUNS = arg("--run", required=True, nargs=3, action="append", metavar=("NAME", "SEED", "FOLDER"),
           help="a trained SAE (its folder may hold alignment.npz); repeatable")


def each_run(a):
    """``(name, seed, SAERun, alignment or None)`` of every ``--run NAME SEED FOLDER``, on ``--device``."""
    from ..align import Alignment
    from ..device import resolve_device
    from ..metrics.real import SAERun
    from ..sae import load_paired_sae

    device = resolve_device(a.device)
    for name, seed, folder in a.run:
        model, saved = load_paired_sae(folder), Path(folder) / "alignment.npz"
        log.info("%s seed %s: %s", name, seed, model.spec.slug)
        yield name, int(seed), SAERun(model, device), Alignment.load(saved) if saved.exists() else None
