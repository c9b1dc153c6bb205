"""``gdyn select`` and ``gdyn select-koopman``: n_states and tau* by the CK criterion.

``gdyn select`` reads every candidate state count's Koopman ``summary.json`` and every
candidate model's ``config.json``, applies the rule of
:mod:`gdyn.koopman.model_selection` and writes ``selection.json``, ``selection.csv`` and
the selection figure.
``gdyn select-koopman`` writes the selected candidate's Koopman outputs at the selected
tau* (``results/koopman/{system}/{model}-sauto/``) for the analyses of
``koopman.n_states: auto``.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from gdyn.cli._args import json_object

__all__ = ["register"]


def _cmd_select(args: argparse.Namespace) -> int:
    from gdyn.koopman import KoopmanSettings, run_select

    out = run_select(args.json, args.csv, args.summaries, args.configs,
                     KoopmanSettings.from_mapping(args.settings))
    if args.figure:
        from gdyn.plots import render_selection

        render_selection(args.csv, args.json, args.figure, args.png, args.data_label)
    print(f"select: {out['model']}: {out['n_states']} states, tau* = {out['tau_star_ps']:g} ps "
          f"({'criterion met' if out['passed'] else 'criterion NOT met'}): {out['reason']}")
    return 0


def _cmd_select_koopman(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gdyn.koopman import KoopmanSettings, run_select_koopman

    summary = run_select_koopman(args.outdir, args.selection, args.probs,
                                 KoopmanSettings.from_mapping(args.settings),
                                 progress=functools.partial(tqdm, desc="koopman lags"))
    print(f"select-koopman: {summary['model']} {summary['n_states']} states at tau* = "
          f"{summary.get('analysis_lag_ps', summary['tau_star_ps']):g} ps -> {args.outdir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn select`` and ``gdyn select-koopman`` to the CLI."""
    p = subparsers.add_parser(
        "select",
        help="choose n_states and tau*: smallest state count and lag whose CK test passes",
        description="Read every candidate's Koopman summary.json (per-lag CK verdicts, "
        "timescale convergence) and every candidate model's config.json (validation and test "
        "VAMP-2 over seeds); choose the smallest n_states, and within it the smallest lag, "
        "whose CK test passes at a lag with converged implied timescales; write JSON, CSV "
        "and (with --figure) the selection figure.",
    )
    p.add_argument("json", type=Path, help="output selection.json")
    p.add_argument("--csv", type=Path, required=True, help="output selection.csv")
    p.add_argument("--summaries", nargs="+", required=True, type=Path, metavar="JSON",
                   help="Koopman summary.json of every candidate state count")
    p.add_argument("--configs", nargs="+", required=True, type=Path, metavar="JSON",
                   help="config.json of every candidate model (state count x lag)")
    p.add_argument("--settings", type=json_object, default={},
                   help="the system's koopman config block (JSON)")
    p.add_argument("--figure", type=Path, default=None, help="also draw the figure (PDF)")
    p.add_argument("--png", type=Path, default=None, help="and as PNG")
    p.add_argument("--data-label", default="", help="where the data came from (footer)")
    p.set_defaults(func=_cmd_select)

    k = subparsers.add_parser(
        "select-koopman",
        help="Koopman outputs of the selected state count at the selected tau*",
        description="The Koopman analysis (as `gdyn koopman`) of the candidate chosen in "
        "SELECTION, at its tau*, written to OUTDIR (the analysed model of "
        "koopman.n_states: auto).",
    )
    k.add_argument("outdir", type=Path)
    k.add_argument("--selection", type=Path, required=True, help="selection.json")
    k.add_argument("--probs", nargs="+", required=True, metavar="NPZ",
                   help="test probs of the candidates at every lag (each records its lag); "
                   "files of other state counts are skipped")
    k.add_argument("--settings", type=json_object, default={},
                   help="the system's koopman config block (JSON)")
    k.set_defaults(func=_cmd_select_koopman)
