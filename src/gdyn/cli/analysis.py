"""``gdyn rdf | charge | profile | snapshot | positions | q3 | representative | conduction``:
the state-weighted analyses of the learned states (:mod:`gdyn.analysis`), one subcommand each.

Every analysis but ``charge`` reads the standard inputs ``--test PIECE.npz... --probs
PROBS.npz... --summary SUMMARY.json`` (the test pieces with their probabilities at tau*,
:func:`gdyn.analysis.load_analysis`); ``--settings`` is the system's config section the
analysis reads (``structure`` or ``conduction``) as JSON. The workflow passes only the part
of the section each analysis uses (``{"rdf": ...}`` to ``gdyn rdf``), so that an edit to one
analysis' settings reruns that analysis alone (workflow/rules/structure.smk).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from gdyn.cli._args import json_object
from gdyn.errors import InputError
from gdyn.settings import (
    ConductionSettings,
    ProfileSettings,
    Q3Settings,
    RdfSettings,
    from_config,
)

__all__ = ["register"]

# Imported by the command functions, not here, so that `gdyn --help` stays fast.


def settings_block(settings: dict[str, Any], key: str) -> dict[str, Any]:
    """``settings[key]`` of the ``structure`` section, which must be a mapping."""
    block = settings.get(key)
    if not isinstance(block, dict):
        raise InputError(f"--settings: key 'structure/{key}': missing or not a mapping")
    return block


def _analysis(args: argparse.Namespace) -> Any:
    from gdyn.analysis import load_analysis

    return load_analysis(args.test, args.probs, args.summary)


def _cmd_rdf(args: argparse.Namespace) -> int:
    from gdyn.analysis import flag_states, state_weighted_rdf
    from gdyn.files import write_csv

    s = from_config(RdfSettings, settings_block(args.settings, "rdf"), "structure/rdf")
    analysis = _analysis(args)
    table = state_weighted_rdf(analysis.pieces, None, s.elements, r_max_A=float(s.r_max_A),
                               n_bins=int(s.n_bins), stride=int(s.stride))
    write_csv(args.output, flag_states(table, analysis.near_empty_states))
    return 0


def _cmd_charge(args: argparse.Namespace) -> int:
    from gdyn.analysis import charge_table, flag_states, read_rdf_csv
    from gdyn.files import write_csv

    block = settings_block(args.settings, "charge")
    rdf = read_rdf_csv(args.rdf)
    table = charge_table(rdf, block, str(args.rdf))
    if "near_empty" in rdf.columns:  # the Koopman state selection, as rdf.csv carries it
        table = flag_states(table, sorted(set(rdf.loc[rdf["near_empty"].astype(bool), "state"])))
    write_csv(args.output, table)
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from gdyn.analysis import flag_states, profile_table
    from gdyn.files import write_csv

    s = from_config(ProfileSettings, settings_block(args.settings, "profile"),
                    "structure/profile")
    analysis = _analysis(args)
    table = profile_table(analysis.pieces, s.axis, int(s.n_bins))
    write_csv(args.output, flag_states(table, analysis.near_empty_states))
    return 0


def _cmd_positions(args: argparse.Namespace) -> int:
    from gdyn.analysis import positions_table
    from gdyn.files import write_csv

    write_csv(args.output, positions_table(_analysis(args).pieces, args.max_rows))
    return 0


def _cmd_q3(args: argparse.Namespace) -> int:
    from gdyn.analysis import flag_states, q3_table
    from gdyn.files import write_csv

    s = from_config(Q3Settings, settings_block(args.settings, "q3"), "structure/q3")
    analysis = _analysis(args)
    table = q3_table(analysis.pieces, s.element, int(s.n_neighbors), int(s.n_bins),
                     int(s.stride))
    write_csv(args.output, flag_states(table, analysis.near_empty_states))
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    import ase.io

    from gdyn.analysis import plot_snapshot, snapshot_atoms
    from gdyn.files import atomic_path

    analysis = _analysis(args)
    # no schema default: the key's presence switches the snapshot on in the workflow;
    # by hand, without it, the first frame
    frame = int(args.settings.get("snapshot_frame", 0))
    piece = analysis.pieces[0]
    atoms = snapshot_atoms(piece, frame)
    with atomic_path(args.output, suffix=".extxyz") as tmp:
        ase.io.write(tmp, atoms, format="extxyz")
    plot_snapshot(atoms, args.png, f"{piece.source} frame {atoms.info['frame']}: "
                                   f"tau* = {analysis.tau_star_ps:g} ps")
    return 0


def _cmd_representative(args: argparse.Namespace) -> int:
    import ase.io

    from gdyn.analysis import representative_configurations, shell_radii
    from gdyn.files import atomic_path

    analysis = _analysis(args)
    radii, how = shell_radii(analysis.n_states, args.settings, args.charge)
    frames = representative_configurations(analysis.pieces, None, radii, how)
    with atomic_path(args.output, suffix=".extxyz") as tmp:
        ase.io.write(tmp, frames, format="extxyz")
    return 0


def _cmd_conduction(args: argparse.Namespace) -> int:
    import numpy as np

    from gdyn.analysis import conduction, flag_states
    from gdyn.files import write_csv

    s = from_config(ConductionSettings, args.settings, "conduction")
    if args.temperatures is not None and s.temperature_K is not None:
        raise InputError(f"--settings: key 'conduction/temperature_K': expected absent with "
                         f"--temperatures (a temperature series: each trajectory's "
                         f"temperature), got {s.temperature_K!r}")  # fmt: skip
    if args.temperatures is None and s.temperature_K is None:
        raise InputError("--settings: key 'conduction/temperature_K': expected the temperature "
                         "(K) of the Nernst-Einstein relation, got none")  # fmt: skip
    temperature = (args.temperatures if args.temperatures is not None
                   else float(s.temperature_K))  # fmt: skip
    analysis = _analysis(args)
    diffusion, cond = conduction(
        analysis.pieces, None, analysis.tau_star_ps, temperature,
        charges=s.charges, charge_frame=args.charge,
        msd_window=float(s.msd_window), msd_points=int(s.msd_points),
        ci=args.koopman_settings.get("ci"),
        volume_A3=s.volume_A3, block_ps=analysis.summary.get("ci_block_ps"),
    )
    if not math.isfinite(float(np.nansum(cond["sigma_S_per_m"]))):
        raise InputError(f"{analysis.summary_path}: conductivity is not finite "
                         f"(no valid pairs at tau*?)")
    pair = ("from_state", "to_state")
    write_csv(args.diffusion, flag_states(diffusion, analysis.near_empty_states, pair))
    write_csv(args.conduction, flag_states(cond, analysis.near_empty_states, pair))
    return 0


def _standard_inputs(p: argparse.ArgumentParser) -> None:
    """--test / --probs / --summary: the test pieces and their probabilities at tau*."""
    p.add_argument("--test", nargs="+", type=Path, required=True, metavar="PIECE.npz",
                   help="test split pieces")
    p.add_argument("--probs", nargs="+", type=Path, required=True, metavar="PROBS.npz",
                   help="the model's probs_test.npz at every lag (tau* picked via --summary)")
    p.add_argument("--summary", type=Path, required=True, metavar="SUMMARY.json",
                   help="Koopman summary.json of the model (tau_star_ps, probs_test)")


def _settings(p: argparse.ArgumentParser, section: str) -> None:
    p.add_argument("--settings", type=json_object, default={}, metavar="JSON",
                   help=f"the system's '{section}' config section (the keys this analysis reads)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the eight analysis subcommands, in pipeline order."""
    from gdyn.analysis import MAX_POSITION_ROWS  # numpy only

    p = subparsers.add_parser("rdf", help="state-weighted RDF and coordination number (Eq. 12)")
    p.add_argument("output", type=Path, metavar="RDF.csv")
    _standard_inputs(p)
    _settings(p, "structure")  # its 'rdf': elements, r_max_A, n_bins, stride
    p.set_defaults(func=_cmd_rdf)

    p = subparsers.add_parser("charge", help="charge integral per state (Supp. Note 3)")
    p.add_argument("rdf", type=Path, metavar="RDF.csv")
    p.add_argument("output", type=Path, metavar="CHARGE.csv")
    _settings(p, "structure")  # its 'charge': center, charges, reference, r_star_A
    p.set_defaults(func=_cmd_charge)

    p = subparsers.add_parser("profile", help="distribution of each state along an axis")
    p.add_argument("output", type=Path, metavar="PROFILE.csv")
    _standard_inputs(p)
    _settings(p, "structure")  # its 'profile': axis, n_bins
    p.set_defaults(func=_cmd_profile)

    p = subparsers.add_parser("snapshot", help="one frame's state probabilities (extxyz + PNG)")
    p.add_argument("output", type=Path, metavar="SNAPSHOT.extxyz")
    p.add_argument("--png", type=Path, required=True, metavar="SNAPSHOT.png")
    _standard_inputs(p)
    _settings(p, "structure")  # its 'snapshot_frame' (default 0)
    p.set_defaults(func=_cmd_snapshot)

    p = subparsers.add_parser("positions", help="folded target positions + state probabilities")
    p.add_argument("output", type=Path, metavar="POSITIONS.csv")
    p.add_argument("--max-rows", type=int, default=MAX_POSITION_ROWS)
    _standard_inputs(p)
    _settings(p, "structure")  # reads none
    p.set_defaults(func=_cmd_positions)

    p = subparsers.add_parser("q3", help="Steinhardt q3 of the targets per state (Supp. Fig. 2)")
    p.add_argument("output", type=Path, metavar="Q3.csv")
    _standard_inputs(p)
    _settings(p, "structure")  # its 'q3': element, n_neighbors, n_bins, stride
    p.set_defaults(func=_cmd_q3)

    p = subparsers.add_parser(
        "representative", help="each state's representative configuration and solvation shell")
    p.add_argument("output", type=Path, metavar="REPRESENTATIVE.extxyz")
    # nargs="?": the rule passes `--charge` alone when structure/charge is off
    p.add_argument("--charge", type=Path, nargs="?", default=None, metavar="CHARGE.csv",
                   help="charge.csv: each state's r* is its shell radius")
    _standard_inputs(p)
    _settings(p, "structure")  # its 'representative': shell_radius_A
    p.set_defaults(func=_cmd_representative)

    p = subparsers.add_parser(
        "conduction", help="transition MSDs, D_ij and Nernst-Einstein shares (Eqs. 13-16)")
    p.add_argument("diffusion", type=Path, metavar="DIFFUSION.csv")
    p.add_argument("conduction", type=Path, metavar="CONDUCTION.csv")
    p.add_argument("--charge", type=Path, nargs="?", default=None, metavar="CHARGE.csv",
                   help="per-state charges (gdyn charge); none: the target atoms' charge")
    p.add_argument("--koopman-settings", type=json_object, default={}, metavar="JSON",
                   help="the system's 'koopman' config section (its 'ci' sets the CI groups)")
    p.add_argument("--temperatures", type=json_object, default=None, metavar="JSON",
                   help="a temperature series' {trajectory: temperature_K}: the tables per "
                   "temperature, with a first column temperature_K (no conduction/temperature_K)")
    _standard_inputs(p)
    _settings(p, "conduction")  # temperature_K, charges, msd_window, msd_points, volume_A3
    p.set_defaults(func=_cmd_conduction)
