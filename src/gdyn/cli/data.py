"""``gdyn check | download | import | split``: getting trajectories in and cut into pieces.

Argument parsing only; the work is done by :mod:`gdyn.trajectory`, :mod:`gdyn.download`,
:mod:`gdyn.importers` and :mod:`gdyn.split`, imported inside the command functions so
that ``gdyn --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _cmd_check(args: argparse.Namespace) -> int:
    from gdyn.trajectory import check_trajectory

    traj = check_trajectory(args.traj, n_neighbors=args.n_neighbors, copy_to=args.copy_to)
    sets = traj.target_sets
    fi = traj.frame_interval_ps
    print(
        f"{args.traj}: ok: {traj.n_frames} frames, {traj.n_atoms} atoms, "
        f"{sets.shape[0]} target sets of {sets.shape[1]} atom(s)"
        + (f", frame interval {fi:g} ps" if fi is not None else "")
    )
    if args.copy_to:
        print(f"copied (uncompressed) to {args.copy_to}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from gdyn.download import download

    md5 = download(args.url, args.out, args.md5, timeout=args.timeout, retries=args.retries,
                   backoff=args.backoff, use_listing=not args.no_listing)
    print(f"{args.out}: md5 {md5}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from gdyn.importers import import_trajectory

    species = [s.strip() for s in args.species.split(",")] if args.species else None
    t = import_trajectory(args.input, args.out, args.targets, topology=args.topology,
                          fmt=args.format, frame_interval_ps=args.frame_interval_ps,
                          species=species)
    sets = t.target_sets
    fi = t.frame_interval_ps
    print(
        f"{args.out}: {t.n_frames} frames, {t.n_atoms} atoms, {sets.shape[0]} target sets of "
        f"{sets.shape[1]} atom(s), frame interval "
        + (f"{fi:g} ps" if fi is not None else "unknown (set frame_interval_ps in the config)")
    )
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from gdyn.split import split

    piece = split(args.raw, args.out, args.start, args.stop,
                  frame_interval_ps=args.frame_interval_ps, duration_ps=args.duration_ps,
                  source=args.source)
    off = piece.frame_offset
    print(
        f"{args.out}: frames [{off}, {off + piece.n_frames}) of {args.raw}, "
        f"{piece.n_frames} frames at {float(piece.extras['frame_interval_ps']):g} ps"
    )
    return 0


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="validate a trajectory .npz (optionally copy it uncompressed)",
        description="Validate a trajectory .npz in the Materials Cloud schema. Exit 0 when "
        "valid, 2 with a one-line reason otherwise.",
    )
    p.add_argument("traj", type=Path, help="trajectory .npz")
    p.add_argument("--n-neighbors", type=int, default=None, metavar="M",
                   help="also check that M neighbours per atom exist")
    p.add_argument("--copy-to", type=Path, default=None, metavar="OUT.npz",
                   help="after validation write an uncompressed copy here (atomically)")
    p.set_defaults(func=_cmd_check)


def _add_download(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "download",
        help="fetch a file (resumable, retried, md5-verified, atomic)",
        description="Download URL to OUT via OUT.part: resumes with HTTP Range after a "
        "dropped connection, retries with exponential backoff, verifies the md5 (given, or "
        "from the Materials Cloud record's file listing) and renames into place only then.",
    )
    p.add_argument("url")
    p.add_argument("out", type=Path)
    p.add_argument("--md5", default=None, metavar="HEX", help="expected md5 (hex)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="connect and read timeout in seconds (default 30)")
    p.add_argument("--retries", type=int, default=5, metavar="N",
                   help="extra attempts after a transient failure (default 5)")
    p.add_argument("--backoff", type=float, default=2.0, metavar="S",
                   help="first retry wait in seconds, doubling each time (default 2)")
    p.add_argument("--no-listing", action="store_true",
                   help="do not look up the md5 in the record's file listing")
    p.set_defaults(func=_cmd_download)


def _add_import(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="convert an ASE/MDAnalysis-readable trajectory into the gdyn format",
        description="Convert INPUT (extended XYZ, LAMMPS dump, ... via ASE; XTC/TRR/DCD + "
        "topology via MDAnalysis) into a trajectory .npz. Targets: element:Li, "
        "index:0,5,7 (ranges 10-19), residue:SOL (one (k)-atom set per residue).",
    )
    p.add_argument("input", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--targets", required=True, metavar="SPEC",
                   help="element:SYM[,SYM], index:I[,J,K-L] or residue:NAME / molecule:NAME")
    p.add_argument("--topology", type=Path, default=None, metavar="TOP",
                   help="topology for MDAnalysis (PDB, GRO, ...); implies the MDAnalysis reader")
    p.add_argument("--format", default=None, metavar="FMT",
                   help="reader format (ASE name like extxyz, lammps-dump-text; or XTC, TRR...)")
    p.add_argument("--frame-interval-ps", type=float, default=None, metavar="X",
                   help="time between frames in ps (default: from the file's frame times)")
    p.add_argument("--species", default=None, metavar="SYM,SYM",
                   help="elements of LAMMPS atom types 1, 2, ... (dumps without 'element')")
    p.set_defaults(func=_cmd_import)


def _add_split(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "split",
        help="cut a contiguous time window of a trajectory into a split piece",
        description="Write frames [floor(start*F), floor(stop*F)) of RAW to OUT (uncompressed, "
        "memory-mappable) with frame_interval_ps, frame_offset and source.",
    )
    p.add_argument("raw", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--start", type=float, required=True, metavar="FRAC")
    p.add_argument("--stop", type=float, required=True, metavar="FRAC")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--frame-interval-ps", type=float, default=None, metavar="X",
                   help="time between frames (ps)")
    g.add_argument("--duration-ps", type=float, default=None, metavar="D",
                   help="total duration of RAW (ps): frame interval = D / (F - 1)")
    p.add_argument("--source", default=None,
                   help="raw trajectory name stored in the piece (default: RAW's file stem)")
    p.set_defaults(func=_cmd_split)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn check``, ``download``, ``import`` and ``split`` (in this order) to the CLI."""
    _add_check(subparsers)
    _add_download(subparsers)
    _add_import(subparsers)
    _add_split(subparsers)
