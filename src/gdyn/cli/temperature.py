"""``gdyn arrhenius | per-temperature``: per-temperature Koopman models and the Arrhenius
fit of a series; the drift of per-temperature models from the pooled one."""

from __future__ import annotations

import argparse
from pathlib import Path

from gdyn.cli._args import json_object
from gdyn.errors import InputError

__all__ = ["register"]


def _cmd_arrhenius(args: argparse.Namespace) -> int:
    from gdyn.koopman import KoopmanSettings, run_arrhenius

    out, res, truth = run_arrhenius(args.outdir, args.summary, args.temperatures,
                                    KoopmanSettings.from_mapping(args.settings), args.pieces,
                                    args.simulate)  # fmt: skip
    if args.figure is not None:
        from gdyn.plots import save_arrhenius

        save_arrhenius(res, truth, args.figure, args.png, args.data_label)
    for tr in out["transitions"]:
        print(f"arrhenius: state {tr['from_state']} -> {tr['to_state']}: E_a = "
              f"{1000 * tr['activation_energy_eV']:.3f} meV [{1000 * tr['ci_low']:.3f}, "
              f"{1000 * tr['ci_high']:.3f}]")  # fmt: skip
    return 0


def _cmd_per_temperature(args: argparse.Namespace) -> int:
    from gdyn import per_temperature_drift
    from gdyn.files import read_json, write_csv
    from gdyn.koopman import load_probs

    summary = read_json(args.summary)
    for key in ("analysis_lag_ps", "probs_test"):
        if key not in summary:
            raise InputError(f"{args.summary}: key {key!r}: missing (expected the pooled "
                             "model's Koopman summary.json)")  # fmt: skip
    table = per_temperature_drift(
        load_probs(summary["probs_test"]), [load_probs(p) for p in args.per_temperature],
        args.temperatures, float(summary["analysis_lag_ps"]), args.settings,
    )  # fmt: skip
    write_csv(args.output, table)
    for row in table.itertuples():
        print(f"per-temperature: {row.temperature_K:g} K: argmax agreement "
              f"{row.argmax_agreement:.4f}, membership overlap {row.membership_overlap:.4f}, "
              f"slowest timescale {row.per_temperature_timescale_ps:.4g} ps (pooled "
              f"{row.pooled_timescale_ps:.4g} ps)")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn arrhenius`` and ``gdyn per-temperature`` to the CLI."""
    p = subparsers.add_parser(
        "arrhenius",
        help="temperature series: K per temperature, rates and their Arrhenius fit",
    )
    p.add_argument("outdir", type=Path, help="the model's Koopman directory")
    p.add_argument("--summary", type=Path, required=True, help="pooled Koopman summary.json")
    p.add_argument("--temperatures", type=json_object, required=True,
                   help="JSON {trajectory: temperature_K}")  # fmt: skip
    p.add_argument("--settings", type=json_object, default={}, help="the koopman block (JSON)")
    p.add_argument("--pieces", nargs="*", default=[], help="toy: test split pieces (site labels)")
    p.add_argument("--simulate", type=json_object, default=None, help="toy: the simulate block")
    p.add_argument("--figure", type=Path, default=None, help="figure (PDF)")
    p.add_argument("--png", type=Path, default=None, help="figure (PNG)")
    p.add_argument("--data-label", default="", help="data source printed with the figure")
    p.set_defaults(func=_cmd_arrhenius)

    p = subparsers.add_parser(
        "per-temperature",
        help="temperature series: how far per-temperature models' states drift from the "
        "pooled model's (argmax agreement, membership overlap, slowest timescales)",
    )
    p.add_argument("output", type=Path, metavar="PER_TEMPERATURE.csv")
    p.add_argument("--summary", type=Path, required=True, help="pooled Koopman summary.json")
    p.add_argument("--per-temperature", nargs="+", type=Path, required=True, metavar="NPZ",
                   help="probs_test.npz of the model trained at each temperature alone")
    p.add_argument("--temperatures", type=json_object, required=True,
                   help="JSON {trajectory: temperature_K}")  # fmt: skip
    p.add_argument("--settings", type=json_object, default={}, help="the koopman block (JSON)")
    p.set_defaults(func=_cmd_per_temperature)
