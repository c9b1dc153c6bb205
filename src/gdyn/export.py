"""Learned states on the atoms, frame by frame, for a viewer (issue 25, ``export: [memberships]``).

Each test split piece becomes one extended XYZ trajectory: every frame's atoms with, per
atom, ``state_prob_<i>`` (the analysed model's probability of state i at tau*, states in
the Koopman stage's order; NaN for atoms that are not targets) and ``state`` (the argmax,
-1 for non-targets), the frame number and source in each frame's comment line. The
frames are strided so that a piece has at most :data:`MAX_FRAMES` frames (stride
``ceil(F / MAX_FRAMES)``; the ``frame`` of each frame says which raw frame it is), which
keeps a file of a 1,000-atom system near 100 MB. Written with ASE (``format="extxyz"``),
read by ASE and by OVITO, which colours atoms by ``state`` and plays the trajectory::

    ovito results/export/toy/memberships/li000.extxyz
    # Color coding modifier -> input property "state" (or "state_prob_1")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gdyn.analysis import Piece, snapshot_atoms
from gdyn.files import atomic_path

__all__ = ["MAX_FRAMES", "export_pieces", "export_stride", "membership_frames", "write_memberships"]

MAX_FRAMES = 1000  # frames per exported piece at most


def export_stride(n_frames: int, max_frames: int = MAX_FRAMES) -> int:
    """The stride that leaves at most ``max_frames`` of ``n_frames`` frames."""
    return max(1, math.ceil(int(n_frames) / max(1, int(max_frames))))


def membership_frames(piece: Piece, max_frames: int = MAX_FRAMES) -> list[Any]:
    """``ase.Atoms`` of every ``export_stride``-th frame of ``piece`` with the per-atom
    state probabilities and argmax (:func:`gdyn.analysis.snapshot.snapshot_atoms`)."""
    stride = export_stride(piece.n_frames, max_frames)
    frames = []
    for f in range(0, piece.n_frames, stride):
        atoms = snapshot_atoms(piece, f)
        atoms.info["stride"] = stride
        frames.append(atoms)
    return frames


def write_memberships(path: str | Path, piece: Piece, max_frames: int = MAX_FRAMES) -> int:
    """Write ``piece``'s strided frames as extended XYZ (atomically); returns the count."""
    import ase.io

    frames = membership_frames(piece, max_frames)
    with atomic_path(path, suffix=".extxyz") as tmp:
        ase.io.write(tmp, frames, format="extxyz")
    return len(frames)


def export_pieces(outdir: str | Path, pieces: Sequence[Piece], names: Sequence[str],
                  max_frames: int = MAX_FRAMES) -> list[Path]:
    """One ``{name}.extxyz`` per piece in ``outdir``."""
    out = []
    for piece, name in zip(pieces, names, strict=True):
        path = Path(outdir) / f"{name}.extxyz"
        write_memberships(path, piece, max_frames)
        out.append(path)
    return out
