"""``gdyn figure``, ``gdyn table`` and ``gdyn compare``: the paper's figures and tables.

``gdyn figure NAME OUT.pdf --png OUT.png --inputs JSON`` draws one of the paper's figures
(Fig. 2-5, Supp. Figs. 1-3) from the files named in ``--inputs`` (a JSON object: input
name -> path, see :data:`gdyn.plots.registry.FIGURE_INPUTS`), pictures of atoms with ``--renderer``
(OVITO or the matplotlib fallback) and, for Fig. 4, each state's representative
configuration written to ``--configurations``; ``gdyn table NAME OUT.csv --md
OUT.md`` writes Supp. Table 1 or 2; ``gdyn compare OUT.md --csv OUT.csv --systems JSON``
writes the paper comparison (:mod:`gdyn.compare`). Stages are imported by the command
functions, so that ``gdyn --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from gdyn import layout
from gdyn.cli._args import json_object

# gdyn.plots.style.PNG_DPI, repeated so that building the parser imports no stage.
PNG_DPI = 300


def _inputs_arg(text: str) -> dict[str, str]:
    """argparse type for ``--inputs``: a JSON object of input name -> path."""
    value: dict[str, Any] = json_object(text)
    if not all(isinstance(v, str) for v in value.values()):
        raise argparse.ArgumentTypeError("--inputs: expected a JSON object of name -> path")
    return value


def _cmd_figure(args: argparse.Namespace) -> int:
    from gdyn.errors import InputError
    from gdyn.plots import RendererUnavailable, render_figure

    try:
        render_figure(args.name, args.inputs, args.pdf, args.png, args.data_label, args.dpi,
                      renderer=args.renderer, configurations=args.configurations)
    except RendererUnavailable as exc:
        raise InputError(f"--renderer: {exc} (use --renderer auto or matplotlib)") from None
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    from gdyn.plots import render_table

    render_table(args.name, args.inputs, args.csv, args.md, args.data_label)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from gdyn.compare import comparison_inputs, write_comparison

    inputs = args.inputs if args.inputs is not None else comparison_inputs(args.systems)
    write_comparison(args.systems, inputs, args.md, args.csv)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``figure``, ``table`` and ``compare`` to the ``gdyn`` CLI."""
    p = subparsers.add_parser("figure", help="draw one paper figure (PDF + PNG) from analysis CSVs")
    p.add_argument("name", choices=sorted(layout.FIGURES))
    p.add_argument("pdf", help="output PDF")
    p.add_argument("--png", help="also write this PNG")
    p.add_argument("--inputs", type=_inputs_arg, required=True, help="JSON: input name -> path")
    p.add_argument("--data-label", default="", help="where the data came from (figure footer)")
    p.add_argument("--dpi", type=int, default=PNG_DPI, help="PNG resolution")
    p.add_argument(
        "--renderer",
        choices=("auto", "ovito", "matplotlib"),
        default="auto",
        help="pictures of atoms (Figs. 2-4): OVITO if it starts (auto), or the matplotlib fallback",
    )
    p.add_argument(
        "--configurations",
        nargs="*",
        metavar="STATE.extxyz",
        help="fig4: write each state's representative configuration here (one per state)",
    )
    p.set_defaults(func=_cmd_figure)

    t = subparsers.add_parser("table", help="write one supplementary table (CSV + Markdown)")
    t.add_argument("name", choices=sorted(layout.TABLES))
    t.add_argument("csv", help="output CSV")
    t.add_argument("--md", help="also write this Markdown table")
    t.add_argument("--inputs", type=_inputs_arg, required=True, help="JSON: input name -> path")
    t.add_argument("--data-label", default="", help="where the data came from")
    t.set_defaults(func=_cmd_table)

    c = subparsers.add_parser("compare", help="paper headline numbers beside this run's values")
    c.add_argument("md", help="output Markdown")
    c.add_argument("--csv", help="also write the table as CSV")
    c.add_argument("--systems", type=json_object, required=True, help="config 'systems' as JSON")
    c.add_argument(
        "--inputs",
        type=json_object,
        default=None,
        help="JSON 'system:file' -> path (default: the standard results/ paths)",
    )
    c.set_defaults(func=_cmd_compare)
