"""Split pieces (``gdyn split``): one contiguous time window of a raw trajectory.

A piece holds frames ``[floor(start * F), floor(stop * F))`` of the raw trajectory (see
docs/contracts.md): the raw keys sliced, extras with a leading frame axis sliced, plus
``frame_interval_ps``, ``frame_offset`` (first frame's index in the raw trajectory) and
``source`` (raw trajectory name). Adjacent config pieces (``stop`` of one = ``start`` of
the next) use the same rounding, so they tile the trajectory without gap or overlap.

Lag pairs never straddle a split boundary: each piece is its own contiguous segment and
downstream stages form pairs (t, t + lag) only within one piece (one file), so the train,
validation and test sets share no pair.

The raw file is memory-mapped: only the window's pages are read, validated and written.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from gdyn.errors import InputError
from gdyn.trajectory import Trajectory, load_trajectory, save_trajectory, validate_trajectory

__all__ = [
    "PIECE_KEYS",
    "frame_window",
    "resolve_frame_interval",
    "slice_trajectory",
    "split",
]

# Fractions such as 0.3 * 10 = 3.0000000000000004 or 0.29 * 100 = 28.999999999999996 must
# land on the frame a person expects; both sides of a boundary use the same rounding.
_FRAC_EPS = 1e-9
_RTOL = 1e-6
PIECE_KEYS = ("frame_interval_ps", "frame_offset", "source")


def frame_window(n_frames: int, start: float, stop: float) -> tuple[int, int]:
    """Frame range ``[floor(start * F), floor(stop * F))`` of time fractions start < stop."""
    if not (0.0 <= start < stop <= 1.0):
        raise InputError(
            f"split: start/stop: expected 0 <= start < stop <= 1, got start={start}, stop={stop}"
        )
    lo = math.floor(start * n_frames + _FRAC_EPS)
    hi = min(n_frames, math.floor(stop * n_frames + _FRAC_EPS))
    return lo, hi


def resolve_frame_interval(n_frames: int, stored: float | None, name: str,
                           frame_interval_ps: float | None = None,
                           duration_ps: float | None = None) -> float:
    """Frame interval (ps) from the config (interval, or duration / (F - 1)) or the file.

    A value stored in the file that disagrees with the config raises :class:`InputError`.
    """
    if frame_interval_ps is not None and duration_ps is not None:
        raise InputError("split: give either frame_interval_ps or duration_ps, not both")
    if duration_ps is not None:
        if n_frames < 2:
            raise InputError(
                f"{name}: key 'traj_coords': duration_ps needs at least 2 frames, got {n_frames}"
            )
        if not duration_ps > 0:
            raise InputError(f"split: duration_ps: expected a positive number, got {duration_ps}")
        configured: float | None = duration_ps / (n_frames - 1)
        what = f"duration_ps = {duration_ps:g} over {n_frames} frames gives {configured:.6g} ps"
    elif frame_interval_ps is not None:
        if not frame_interval_ps > 0:
            raise InputError(
                f"split: frame_interval_ps: expected a positive number, got {frame_interval_ps}"
            )
        configured = float(frame_interval_ps)
        what = f"frame_interval_ps = {configured:.6g} ps"
    else:
        configured = None
    if configured is None:
        if stored is None:
            raise InputError(
                f"{name}: key 'frame_interval_ps': not in the file and not given "
                "(set frame_interval_ps or duration_ps in the config)"
            )
        return stored
    if stored is not None and not math.isclose(stored, configured, rel_tol=_RTOL):
        raise InputError(
            f"{name}: key 'frame_interval_ps': the file says {stored:.6g} ps but the config's "
            f"{what}; fix the config or the file"
        )
    return configured


def slice_trajectory(traj: Trajectory, lo: int, hi: int, frame_interval_ps: float,
                     source: str) -> Trajectory:
    """The piece of frames [lo, hi) as views (no copy of memory-mapped data).

    ``traj[lo:hi]`` with the piece's bookkeeping: ``frame_interval_ps``, ``frame_offset``
    and ``source`` are stored last, in that order (the members of the written piece).
    """
    window = traj[lo:hi]
    extras = {k: v for k, v in window.extras.items() if k not in PIECE_KEYS}
    extras["frame_interval_ps"] = np.asarray(float(frame_interval_ps))
    extras["frame_offset"] = window.extras["frame_offset"]
    extras["source"] = np.asarray(str(source))
    # path=None: the piece's bookkeeping is not that of the file its arrays map
    return replace(window, extras=extras, path=None)


def split(raw: str | Path, out: str | Path, start: float, stop: float, *,
          frame_interval_ps: float | None = None, duration_ps: float | None = None,
          source: str | None = None) -> Trajectory:
    """Write the [start, stop) time-fraction window of ``raw`` to ``out``; return the piece."""
    raw = Path(raw)
    traj = load_trajectory(raw, mmap=True, validate=False)
    n = traj.n_frames
    lo, hi = frame_window(n, start, stop)
    if hi <= lo:
        raise InputError(
            f"{raw}: split [{start}, {stop}) of {n} frames is empty "
            f"(frames [{lo}, {hi})); use a wider window"
        )
    dt = resolve_frame_interval(n, traj.frame_interval_ps, str(raw), frame_interval_ps,
                                duration_ps)
    piece = slice_trajectory(traj, lo, hi, dt, raw.stem if source is None else source)
    validate_trajectory(piece, f"{raw} frames [{lo}, {hi})")
    save_trajectory(out, piece)
    return piece
