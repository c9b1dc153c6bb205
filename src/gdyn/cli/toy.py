"""``gdyn simulate-toy | toy-cell | toy-sites | toy-energy``: the paper's toy system.

Argument parsing only; the work is done by :mod:`gdyn.toy`, imported inside the command
functions so that ``gdyn --help`` stays fast (and works without OpenMM).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gdyn.cli._args import json_object
from gdyn.errors import InputError

__all__ = ["register"]

log = logging.getLogger(__name__)


def _parse_li(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated Li indices, got {text!r}"
        ) from None
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct indices >= 0, got {text!r}")
    return out


def _fail(command: str, exc: Exception) -> int:
    # A missing OpenMM or platform is not bad input (exit 2) but a broken setup (exit 1).
    print(f"gdyn {command}: error: {exc}", file=sys.stderr)
    return 1


def _cmd_simulate(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from gdyn.temperatures import split_simulate
    from gdyn.toy import SimulationError, count_transitions, parse_settings, save_job, simulate

    raw, temps = split_simulate(args.settings)
    s = parse_settings(raw)
    n_total = s.n_li * (len(temps) if temps else 1)
    if max(args.li) >= n_total:
        raise InputError(f"--li: expected indices < {n_total} (n_li x temperatures), "
                         f"got {max(args.li)}")  # fmt: skip
    temperature = None
    if temps:
        at = {float(temps[i // s.n_li]) for i in args.li}
        if len(at) != 1:
            raise InputError(f"--li: expected Li of one temperature of temperatures_K, got "
                             f"{sorted(at)} K")  # fmt: skip
        temperature = at.pop()
        s = dataclasses.replace(s, temperature_K=temperature)
    if args.frame_interval_ps <= 0:
        raise InputError(f"--frame-interval-ps: expected > 0, got {args.frame_interval_ps:g}")
    try:
        job = simulate(s, args.li, args.frame_interval_ps, platform=args.platform)
    except SimulationError as exc:
        return _fail("simulate-toy", exc)
    labels = job["site_label"]
    log.info(
        "tet population %.3f, %d site changes over %d Li x %.0f ps",
        float(labels.mean()),
        count_transitions(labels),
        len(args.li),
        s.duration_ps,
    )
    if temperature is not None:  # recorded only in a series: single-temperature files unchanged
        job["temperature_K"] = np.float64(temperature)
    save_job(args.output, s, job)
    return 0


def _cmd_cell(args: argparse.Namespace) -> int:
    from gdyn.files import save_npz
    from gdyn.toy import li_cell, load_job

    job, s = load_job(args.job)
    save_npz(args.output, **li_cell(job, args.li, s.lattice_A))
    return 0


def _cmd_sites(args: argparse.Namespace) -> int:
    from gdyn.toy import bootstrap_site_statistics, read_site_labels, site_statistics

    labels, frame_interval_ps = read_site_labels(args.files, args.start, args.stop)
    stats = site_statistics(labels, frame_interval_ps, args.lag_ps)
    boot = bootstrap_site_statistics(labels, frame_interval_ps, args.lag_ps, blocks=args.blocks)
    if boot["n_units"] >= 2:  # standard errors over Li (or blocks of time)
        stats |= {k: boot[k] for k in ("tet_fraction_se", "relaxation_se_ps", "n_units")}
    print(json.dumps(stats, indent=2))
    return 0


def _cmd_energy(args: argparse.Namespace) -> int:
    import pandas as pd

    from gdyn.files import atomic_path, write_csv
    from gdyn.temperatures import split_simulate
    from gdyn.toy import energy_path_table, parse_settings, plot_energy_path, site_energies_meV

    s = parse_settings(split_simulate(args.settings)[0])  # the potential does not use T
    table = energy_path_table(s, args.points)
    write_csv(args.output, pd.DataFrame(table))
    e = site_energies_meV(s)
    print(
        f"A = {s.prefactor_eV:.4g} eV, rho = {s.rho_A:g} A: tet {e['tet']:.2f} meV, "
        f"barrier {e['barrier']:.2f} meV (relative to oct)"
    )
    if args.png:
        import matplotlib

        matplotlib.use("Agg")  # process-wide: the CLI's choice, not the library's
        import matplotlib.pyplot as plt

        fig = plot_energy_path(table)
        with atomic_path(args.png) as tmp:
            fig.savefig(tmp, dpi=150)
        plt.close(fig)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate-toy``, ``toy-cell``, ``toy-sites`` and ``toy-energy`` to the CLI."""
    p = subparsers.add_parser(
        "simulate-toy",
        help="OpenMM: a batch of independent Li in the frozen FCC S lattice (toy system)",
        description="Simulate Li in the paper's toy system; writes li_coords and site_label.",
    )
    p.add_argument("output", type=Path, help="job file (.npz)")
    p.add_argument("--li", type=_parse_li, required=True, help="Li indices of this job, e.g. 0,1,2")
    p.add_argument(
        "--settings", type=json_object, default={}, help="the config's simulate block (JSON)"
    )
    p.add_argument("--frame-interval-ps", type=float, default=0.1, help="sampling interval (ps)")
    p.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    p.set_defaults(func=_cmd_simulate)

    c = subparsers.add_parser(
        "toy-cell",
        help="one simulated Li as its own 5-atom (1 Li + 4 S) raw trajectory",
    )
    c.add_argument("job", type=Path, help="simulate-toy job file (.npz)")
    c.add_argument("output", type=Path, help="raw trajectory (.npz)")
    c.add_argument("--li", type=int, required=True, help="Li index")
    c.set_defaults(func=_cmd_cell)

    m = subparsers.add_parser(
        "toy-sites",
        help="ground truth of toy trajectories: transitions and two-state MSM of site_label",
    )
    m.add_argument("files", type=Path, nargs="+", help="raw or split .npz with site_label")
    m.add_argument("--lag-ps", type=float, default=10.0, help="MSM lag time (ps)")
    m.add_argument("--start", type=float, default=0.0, help="first fraction of each file used")
    m.add_argument("--stop", type=float, default=1.0, help="last fraction of each file used")
    m.add_argument(
        "--blocks",
        type=int,
        default=1,
        help="bootstrap units per trajectory for the standard errors (>1 for one long Li)",
    )
    m.set_defaults(func=_cmd_sites)

    e = subparsers.add_parser(
        "toy-energy", help="energy along the tet-oct-tet path of the toy potential (Fig. 2a)"
    )
    e.add_argument("output", type=Path, help="CSV: path_coordinate_A, energy_meV, site, polyhedron")
    e.add_argument("--png", type=Path, default=None, help="quick-look plot")
    e.add_argument(
        "--settings", type=json_object, default={}, help="the config's simulate block (JSON)"
    )
    e.add_argument(
        "--points",
        type=int,
        default=601,
        help="points on the path (601 puts the saddles on the grid)",
    )
    e.set_defaults(func=_cmd_energy)
