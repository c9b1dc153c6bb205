"""The ``gdyn`` command line: one subcommand per workflow stage, called by the Snakemake rules.

Each module ``gdyn.cli.<stage>`` exposes ``register(subparsers)``, which adds its
subcommands and sets ``func`` on each parser: ``func(args) -> int | None``. Command
functions import their stage (and torch, OpenMM, ...) lazily so that ``gdyn --help`` stays
fast, set any process-wide state the stage needs, and call the public API.

Exit status: 0 on success, 2 with a one-line reason on bad input (:class:`InputError`), 1
with a one-line reason (path, cause, free space) when the machine fails (``OSError``: disk
full, no permission), 130 after Ctrl-C (SIGINT), without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from gdyn import __version__
from gdyn.errors import InputError
from gdyn.files import describe_os_error

__all__ = ["main"]

# Modules gdyn.cli.<stage> that contribute subcommands, in pipeline order.
STAGES: tuple[str, ...] = (
    "data",  # check, download, import, split
    "toy",  # simulate-toy, toy-cell, toy-sites, toy-energy
    "graphs",  # graphs
    "train",  # train
    "koopman",  # koopman
    "temperature",  # arrhenius (temperature series, issue 25)
    "select",  # select, select-koopman
    "analysis",  # rdf, charge, profile, snapshot, positions, q3, representative, conduction
    "figures",  # figure, table, compare
    "export",  # export-memberships (export: [memberships], issue 25)
)


# Stages whose registration is costly (the analysis registry imports every analysis module,
# the Koopman stage and yaml: ~0.3 s): skipped when the command belongs to another stage,
# so the workflow's many short jobs (split, graphs, toy-cell) do not pay for them.
DEFERRED_STAGES: tuple[str, ...] = ("analysis",)


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``gdyn`` argument parser with every stage's subcommands.

    With ``argv`` naming a subcommand of a stage other than :data:`DEFERRED_STAGES`, those
    stages are not registered (the parse is the same: their commands are not asked for).
    """
    parser = argparse.ArgumentParser(
        prog="gdyn",
        description="Graph Dynamical Networks: learn the slow states of target atoms from MD.",
    )
    parser.add_argument("--version", action="version", version=f"gdyn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    command = None if argv is None else _command(argv)
    deferred = []
    for stage in STAGES:
        if command is not None and stage in DEFERRED_STAGES:
            deferred.append(stage)
            continue
        importlib.import_module(f"gdyn.cli.{stage}").register(sub)
    if command not in sub.choices:  # theirs, or unknown (argparse then lists every command)
        for stage in deferred:
            importlib.import_module(f"gdyn.cli.{stage}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gdyn`` console script."""
    # Process-wide settings belong to the entry point, not the library: figures are
    # written to files, never shown (a user's explicit MPLBACKEND wins).
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser(sys.argv[1:] if argv is None else argv)
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
    except OSError as exc:
        # the machine, not the input: disk full, no permission, read-only file system
        if args.verbose:
            raise
        print(f"gdyn {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        # Ctrl-C / SIGINT (or a signal a command maps to it): no traceback; outputs are
        # atomic, so nothing half-written remains
        why = f" ({exc.args[0]})" if exc.args else ""
        print(f"gdyn {args.command}: interrupted{why}", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
