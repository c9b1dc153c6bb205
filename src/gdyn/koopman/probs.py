"""State probabilities: the ``probs_{part}.npz`` files and the in-memory forms the API takes.

A :class:`Probs` is the network output ``probs`` (F, n_sets, n_states) of F frames, with
the trajectory index ``traj`` and frame number ``frame`` of every row (rows may come in any
order; see docs/contracts.md). :func:`as_probs` turns the forms a notebook has (one array
per contiguous trajectory, a list of them, a file path) into one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.config import lag_to_frames
from gdyn.errors import InputError

__all__ = ["Probs", "ProbsLike", "as_probs", "load_probs"]


@dataclass(frozen=True)
class Probs:
    """One ``probs_{part}.npz`` (see docs/contracts.md)."""

    path: str
    probs: np.ndarray  # (F, n_sets, n_states)
    traj: np.ndarray  # (F,) int64
    frame: np.ndarray  # (F,) int64
    sources: np.ndarray
    lag_ps: float
    frame_interval_ps: float

    @property
    def n_states(self) -> int:
        return int(self.probs.shape[-1])

    @property
    def n_sets(self) -> int:
        return int(self.probs.shape[1])

    def frames_for(self, lag_ps: float) -> int:
        """Frames in ``lag_ps`` at this file's frame interval."""
        return lag_to_frames(lag_ps, self.frame_interval_ps)


def load_probs(path: str | Path) -> Probs:
    """Read and validate a probs npz; bad content raises :class:`InputError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
    for key in ("probs", "traj", "frame", "sources", "lag_ps", "frame_interval_ps"):
        if key not in data:
            raise InputError(f"{path}: key {key!r}: expected present, got missing")
    p = data["probs"]
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[1] < 1 or p.shape[2] < 2:
        raise InputError(
            f"{path}: key 'probs': expected shape (F>=2, n_sets>=1, n_states>=2), got {p.shape}"
        )
    if not np.issubdtype(p.dtype, np.floating) or not np.all(np.isfinite(p)):
        raise InputError(f"{path}: key 'probs': expected finite floats, got {p.dtype} with NaN/inf")
    f = p.shape[0]
    out: dict[str, np.ndarray] = {}
    for key in ("traj", "frame"):
        a = data[key]
        if a.shape != (f,) or not np.issubdtype(a.dtype, np.integer):
            raise InputError(
                f"{path}: key {key!r}: expected int array of shape ({f},), got {a.dtype} {a.shape}"
            )
        if a.size and a.min() < 0:
            raise InputError(f"{path}: key {key!r}: expected >= 0, got {a.min()}")
        out[key] = a.astype(np.int64)
    sources = data["sources"]
    if out["traj"].max() >= max(len(sources), 1) and len(sources):
        raise InputError(
            f"{path}: key 'traj': expected indices < len(sources)={len(sources)}, "
            f"got {out['traj'].max()}"
        )
    key = out["traj"] * (int(out["frame"].max()) + 1) + out["frame"]
    if np.unique(key).size != f:
        raise InputError(
            f"{path}: keys 'traj'/'frame': expected unique (traj, frame) rows, got duplicates"
        )
    scalars = {}
    for key_name in ("lag_ps", "frame_interval_ps"):
        try:
            value = float(data[key_name])
        except (TypeError, ValueError):
            raise InputError(
                f"{path}: key {key_name!r}: expected a scalar, got {data[key_name]!r}"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{path}: key {key_name!r}: expected a positive number, got {value}")
        scalars[key_name] = value
    return Probs(
        str(path),
        p,
        out["traj"],
        out["frame"],
        sources,
        scalars["lag_ps"],
        scalars["frame_interval_ps"],
    )


# What the API accepts as probabilities (see :func:`as_probs`).
ProbsLike = Probs | np.ndarray | Sequence[np.ndarray] | str | Path


def _as_sets(p: Any, what: str) -> np.ndarray:
    """(F, n_sets, S) float array; a (F, S) array is one target set."""
    a = np.asarray(p)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[2] < 2 or a.shape[1] < 1:
        raise ValueError(
            f"{what}: expected shape (F, n_sets, n_states>=2) or (F, n_states), got {np.shape(p)}"
        )
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{what}: expected floats, got {a.dtype}")
    return a


def as_probs(
    probs: ProbsLike,
    lag_ps: float,
    frame_interval_ps: float | None = None,
    traj: np.ndarray | None = None,
    frame: np.ndarray | None = None,
) -> Probs:
    """One :class:`Probs` from the forms the API accepts, with ``lag_ps`` as its lag.

    Parameters
    ----------
    probs : Probs, path, ndarray or list of ndarrays
        A :class:`Probs` or the path of a probs npz (:func:`load_probs`); an array
        (F, n_sets, S) or (F, S) of one contiguous trajectory (frames 0..F-1) unless
        ``traj``/``frame`` give every row's trajectory and frame; or a list of such arrays,
        one per trajectory, each contiguous.
    lag_ps : float
        The lag the estimate is for (replaces a file's training lag).
    frame_interval_ps : float, optional
        Time between frames; required for arrays, and must agree with a file's own.
    traj, frame : (F,) int, optional
        Rows' trajectory and frame numbers, for a single array only.
    """
    if isinstance(probs, str | Path):
        probs = load_probs(probs)
    if isinstance(probs, Probs):
        if traj is not None or frame is not None:
            raise ValueError("traj/frame: expected None with a Probs (it has its own)")
        if frame_interval_ps is not None and not math.isclose(
            frame_interval_ps, probs.frame_interval_ps, rel_tol=1e-9
        ):
            raise ValueError(
                f"frame_interval_ps: expected {probs.frame_interval_ps:g} as in "
                f"{probs.path}, got {frame_interval_ps:g}"
            )
        return dataclasses.replace(probs, lag_ps=float(lag_ps))
    if frame_interval_ps is None:
        raise ValueError("frame_interval_ps: expected the time between frames (ps), got None")
    if isinstance(probs, np.ndarray):
        p = _as_sets(probs, "probs")
        n = p.shape[0]
        if (traj is None) != (frame is None):
            raise ValueError("traj/frame: expected both or neither")
        if traj is None:
            traj, frame = np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64)
        traj = np.asarray(traj, dtype=np.int64)
        frame = np.asarray(frame, dtype=np.int64)
        if traj.shape != (n,) or frame.shape != (n,):
            raise ValueError(f"traj/frame: expected shape ({n},), got {traj.shape}/{frame.shape}")
        path = "<array>"
    else:
        if traj is not None or frame is not None:
            raise ValueError("traj/frame: expected None with a list of trajectories")
        parts = [_as_sets(x, f"probs[{i}]") for i, x in enumerate(probs)]
        if not parts or len({x.shape[1:] for x in parts}) != 1:
            raise ValueError(
                f"probs: expected a non-empty list of (F_i, n_sets, S) arrays with equal "
                f"(n_sets, S), got shapes {[x.shape for x in parts]}"
            )
        p = np.concatenate(parts)
        traj = np.repeat(np.arange(len(parts), dtype=np.int64), [x.shape[0] for x in parts])
        frame = np.concatenate([np.arange(x.shape[0], dtype=np.int64) for x in parts])
        path = f"<{len(parts)} arrays>"
    sources = np.array([f"trajectory {i}" for i in range(int(traj.max()) + 1 if traj.size else 0)])
    return Probs(path, p, traj, frame, sources, float(lag_ps), float(frame_interval_ps))


def read_lag_ps(path: str | Path) -> float:
    """The lag (ps) a probs file records (its ``lag_ps``), read without its arrays."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "lag_ps" not in z.files:
                raise InputError(f"{path}: key 'lag_ps': expected present, got missing")
            return float(z["lag_ps"])
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
