"""``gdyn export-memberships``: a test piece's frames with per-atom state probabilities."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _cmd_export(args: argparse.Namespace) -> int:
    from gdyn.analysis import load_analysis
    from gdyn.export import write_memberships

    analysis = load_analysis([args.test], args.probs, args.summary)
    from gdyn.export import MAX_FRAMES

    n = write_memberships(args.output, analysis.pieces[0], args.max_frames or MAX_FRAMES)
    print(f"export-memberships: {n} frames of {args.test} -> {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn export-memberships`` to the CLI."""
    # gdyn.export is imported by the command only: registering must stay cheap (every
    # workflow job builds the parser).
    p = subparsers.add_parser(
        "export-memberships",
        help="extended XYZ of a test piece with per-atom state probabilities (OVITO, ASE)",
    )
    p.add_argument("output", type=Path, help="extended XYZ file")
    p.add_argument("--test", type=Path, required=True, help="the test split piece (.npz)")
    p.add_argument("--probs", nargs="+", type=Path, required=True,
                   help="probs_test.npz of the analysed model (tau* among them)")  # fmt: skip
    p.add_argument("--summary", type=Path, required=True, help="its Koopman summary.json")
    p.add_argument("--max-frames", type=int, default=None,
                   help="at most this many frames, strided (default gdyn.export.MAX_FRAMES)")
    p.set_defaults(func=_cmd_export)
