"""The ``gdyn`` command line: one subcommand per workflow stage, called by the Snakemake rules.

Each stage module exposes ``register(subparsers)``, which adds its subcommands and sets
``func`` on each parser: ``func(args) -> int | None``. Stage modules keep heavy imports
(torch, OpenMM, MDAnalysis) inside functions so that ``gdyn --help`` stays fast.

Exit status: 0 on success, 2 with a one-line reason on bad input (:class:`InputError`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from gdyn import __version__
from gdyn.errors import InputError

# Stage modules that contribute subcommands, in pipeline order.
STAGES: tuple[str, ...] = (
    "trajectory",  # check
    "download",  # download
    "importers",  # import
    "split",  # split
    "toy",  # simulate-toy, toy-cell, toy-sites, toy-energy
    "graph",  # graphs
    "train",  # train
    "koopman",  # koopman
    "structure",  # rdf, charge, profile, snapshot, q3
    "conduction",  # conduction
    "plots",  # figure, table, compare
)


def json_arg(text: str) -> Any:
    """argparse type for ``--settings '{...}'``: a JSON object passed by a rule."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text[:80]!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The full ``gdyn`` argument parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(
        prog="gdyn",
        description="Graph Dynamical Networks: learn the slow states of target atoms from MD.",
    )
    parser.add_argument("--version", action="version", version=f"gdyn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for stage in STAGES:
        importlib.import_module(f"gdyn.{stage}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gdyn`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status = args.func(args)
    except InputError as exc:
        print(f"gdyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
