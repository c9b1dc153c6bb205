"""``gdyn koopman``: the Koopman analysis of one (model, n_states) over its lag grid."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from gdyn.cli._args import json_arg, json_object

__all__ = ["register"]


def _cmd_koopman(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gdyn.koopman import KoopmanSettings, check_koopman_result, run_koopman

    settings = KoopmanSettings.from_mapping(args.settings)
    summary = run_koopman(
        args.outdir,
        args.probs,
        settings,
        args.model,
        args.n_states,
        progress=functools.partial(tqdm, desc="koopman lags", unit="lag"),
        temperatures_K=args.temperatures,
    )
    # A stage with no valid result fails the job (and the run) unless the config says keep.
    check_koopman_result(summary, settings)
    pops = [None if x is None else round(x, 4) for x in summary["populations"]]
    excluded = summary["near_empty_states"]
    tau = summary["tau_star_ps"]
    tau_text = (f"{tau:g} ps" if tau is not None
                else f"none (tables at {summary['analysis_lag_ps']:g} ps)")  # fmt: skip
    print(
        f"koopman: {summary['model']} {summary['n_states']} states: tau* = "
        f"{tau_text} ({summary['tau_star_source']}), timescales "
        f"{summary['timescales_ps']} ps, populations {pops}; CK "
        f"{'PASS' if summary['ck_pass'] else 'FAIL'}"
        + (f"; near-empty states {excluded} excluded" if excluded else "")
        + ("; model collapsed" if summary["collapsed"] else "")
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn koopman`` to the CLI."""
    p = subparsers.add_parser(
        "koopman",
        help="Koopman analysis: timescales vs lag, tau*, CK test, eigenvectors, populations",
        description="Koopman models from the test-set state probabilities of one model per "
        "lag: timescales vs lag with 95%% CIs, automatic tau*, CK test, eigenvectors and "
        "populations at tau*. Writes timescales/ck/eigen/populations CSVs and summary.json "
        "to OUTDIR.",
    )
    p.add_argument("outdir", type=Path, help="output directory")
    p.add_argument(
        "--probs",
        nargs="+",
        required=True,
        metavar="NPZ",
        help="probs_test.npz of the model trained at each lag (each records its lag)",
    )
    p.add_argument(
        "--settings", type=json_arg, default={}, help="the system's koopman config block (JSON)"
    )
    p.add_argument("--temperatures", type=json_object, default=None, metavar="JSON",
                   help="a temperature series' {trajectory: temperature_K}: kinetics.csv "
                   "gets one block of rows per temperature")
    p.add_argument("--model", required=True, help="model name for the tables, e.g. gdynet")
    p.add_argument(
        "--n-states",
        type=int,
        default=None,
        help="expected state count (default: the probs')",
    )
    p.set_defaults(func=_cmd_koopman)
