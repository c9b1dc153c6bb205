"""``gdyn rdf | charge | profile | snapshot | positions | q3 | representative | conduction``:
one subcommand per entry of the analysis registry (:data:`gdyn.analysis.REGISTRY`).

Each is ``gdyn <name> [REQUIRED INPUTS...] OUTPUTS... --test PIECE.npz... --probs
PROBS.npz... --summary SUMMARY.json --settings JSON [options]`` (``charge`` takes no
``--test/--probs/--summary``); the entry's ``run`` does the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gdyn.cli._args import json_object

_KINDS: dict[str, Any] = {"path": Path, "int": int, "json": json_object}


def _metavar(name: str) -> str:
    """``rdf.csv`` -> ``RDF.csv``, ``positions-{model_name}.csv`` -> ``POSITIONS.csv``."""
    stem, dot, ext = name.partition(".")
    return f"{stem.split('-')[0].upper()}{dot}{ext}"


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    """--test / --probs / --summary: the standard inputs of an analysis."""
    p.add_argument("--test", nargs="+", type=Path, required=True, metavar="PIECE.npz",
                   help="test split pieces")
    p.add_argument("--probs", nargs="+", type=Path, required=True, metavar="PROBS.npz",
                   help="the model's probs_test.npz at every lag (tau* picked via --summary)")
    p.add_argument("--summary", type=Path, required=True, metavar="SUMMARY.json",
                   help="Koopman summary.json of the model (tau_star_ps, probs_test)")


def _cmd_analysis(args: argparse.Namespace) -> int:
    from gdyn.analysis import REGISTRY, load_analysis

    spec = REGISTRY[args.analysis]
    analysis = (load_analysis(args.test, args.probs, args.summary)
                if spec.standard_inputs else None)
    outputs = [getattr(args, f"output_{i}") for i in range(len(spec.outputs))]
    extra: dict[str, Any] = {name: getattr(args, f"input_{i}")
                             for i, name in enumerate(spec.requires)}
    extra.update({opt.dest: getattr(args, opt.dest) for opt in spec.options})
    spec.run(analysis, args.settings, outputs, extra)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add one subcommand per registered analysis."""
    from gdyn.analysis import REGISTRY

    for spec in REGISTRY.values():
        p = subparsers.add_parser(spec.name, help=spec.help)
        for i, name in enumerate(spec.requires):
            p.add_argument(f"input_{i}", type=Path, metavar=_metavar(name))
        for i, name in enumerate(spec.outputs):
            if name not in spec.output_flags:
                p.add_argument(f"output_{i}", type=Path, metavar=_metavar(name))
        for i, name in enumerate(spec.outputs):
            if name in spec.output_flags:
                p.add_argument(spec.output_flags[name], dest=f"output_{i}", type=Path,
                               required=True, metavar=_metavar(name))
        for opt in spec.options:
            p.add_argument(opt.flag, type=_KINDS[opt.kind], default=opt.default,
                           metavar=opt.metavar, help=opt.help)
        if spec.standard_inputs:
            add_analysis_args(p)
        p.add_argument("--settings", type=json_object, default={}, metavar="JSON",
                       help=f"the system's '{spec.section}' config section")
        p.set_defaults(func=_cmd_analysis, analysis=spec.name)
