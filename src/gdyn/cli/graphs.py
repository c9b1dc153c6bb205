"""``gdyn graphs``: the periodic M-nearest-neighbour graph store of one split piece.

The science is in :mod:`gdyn.graph`; this module parses arguments and owns the process-wide
settings of the ``gdyn graphs`` process: glibc's heap is trimmed after every block of
frames (:func:`_trim_heap`, passed to :func:`gdyn.graph.build_store` as ``after_block``).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from gdyn.errors import InputError


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to trim


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc).

    Per-frame temporaries of slightly different sizes fragment glibc's heap: free but
    resident pages then pile up slowly, so without this the peak resident set kept
    creeping up with the number of frames (~15 MiB per 1000 frames of 2,000 atoms).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _cmd_graphs(args: argparse.Namespace) -> int:
    import dataclasses

    from gdyn.graph import build_store
    from gdyn.trajectory import load_trajectory, validate_trajectory

    where = str(args.split)
    # Validate structure on one frame only: the full scan happens chunk by chunk while
    # building, so a long trajectory is read once and never held whole in memory.
    traj = load_trajectory(args.split, mmap=True, validate=False)
    head = dataclasses.replace(traj, traj_coords=traj.traj_coords[:1], lattices=traj.lattices[:1])
    if traj.traj_coords.ndim != 3 or traj.traj_coords.shape[0] < 1:
        raise InputError(
            f"{where}: key 'traj_coords': expected shape (F, N, 3) with F >= 1, "
            f"got {tuple(traj.traj_coords.shape)}"
        )
    validate_trajectory(head, where, n_neighbors=args.n_neighbors)
    if traj.lattices.shape[0] != traj.traj_coords.shape[0]:
        raise InputError(
            f"{where}: key 'lattices': expected {traj.traj_coords.shape[0]} frames (as "
            f"traj_coords), got {traj.lattices.shape[0]}"
        )
    meta = build_store(
        traj,
        args.outdir,
        n_neighbors=args.n_neighbors,
        n_conv=None if args.all_rows else args.n_conv,
        threads=args.threads,
        progress=not args.quiet,
        where=where,
        after_block=_trim_heap,
        frame_stride=args.frame_stride,
        distances=args.distances,
    )
    print(
        f"{args.outdir}: {meta['n_frames']} of {meta['n_piece_frames']} frames (every "
        f"{meta['frame_stride']}-th raw frame), {meta['n_rows']}/{meta['n_atoms']} rows, "
        f"M = {meta['n_neighbors']}, largest M-th distance "
        f"{meta['max_neighbor_distance_A']:.3f} A, distances {meta['distance_encoding']} "
        f"(largest rounding error {meta['distance_max_error_A']:.2g} A)",
        file=sys.stderr,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn graphs`` to the CLI."""
    p = subparsers.add_parser(
        "graphs",
        help="periodic M-nearest-neighbour graphs of the frames of a split piece",
        description="Build the graph store (index.npy, distance.npy (F', N', M), "
        "distance_scale.npy, rows.npy, meta.json) of one split piece: the M nearest "
        "neighbours of each atom under periodic boundaries, images included, for every "
        "frame whose raw index is a multiple of --frame-stride.",
    )
    p.add_argument("split", type=Path, help="split piece .npz (results/split/...)")
    p.add_argument("outdir", type=Path, help="output store directory (written atomically)")
    p.add_argument(
        "--n-neighbors", type=int, required=True, metavar="M", help="neighbours per atom"
    )
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument(
        "--n-conv",
        type=int,
        metavar="K",
        help="keep rows within K-1 hops of a target (K convolution layers)",
    )
    rows.add_argument("--all-rows", action="store_true", help="keep every atom's row")
    p.add_argument(
        "--threads", type=int, default=1, metavar="T", help="worker threads over frames (default 1)"
    )
    p.add_argument(
        "--frame-stride",
        type=int,
        default=1,
        metavar="S",
        help="only frames whose raw index is a multiple of S (training's frame_stride; "
        "default 1: every frame)",
    )
    p.add_argument(
        "--distances",
        choices=("uint16", "float32"),
        default="uint16",
        help="distance encoding: uint16 fixed point in 2^-12 A steps (default; error <= "
        "1.2e-4 A) or exact float32",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_graphs)
