"""Command-line interface: one subcommand per workflow stage (each Snakemake rule calls one).

Structured arguments (DGP parameters, SAE spec, training protocol) are passed as JSON objects and
validated by the dataclass they build, so an unknown key fails with its name. Subcommands live in
one module per stage - :mod:`.data`, :mod:`.train`, :mod:`.evaluate`, :mod:`.report` - each declaring its
arguments beside the function that runs them (:func:`.args.command`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import data, train, evaluate, report
from .args import COMMANDS, POSITIVE

STAGES = (data, train, evaluate, report)  # importing each registers its subcommands, in this order


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlsae", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=POSITIVE, default=None, help="torch CPU threads (default: torch's choice)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help, arguments, func in COMMANDS:
        s = sub.add_parser(name, help=help, description=func.__doc__ or help)
        for flags, options in arguments:
            s.add_argument(*flags, **options)
        s.set_defaults(func=func)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"vlsae {args.command}: error: {e}") from e
