"""Per-frame physical checks of a trajectory's cells and coordinates (``gdyn check``).

Used by :func:`gdyn.trajectory.validate_trajectory` on each chunk of frames it scans:
finite, right-handed, non-singular cells at least :data:`MIN_FACE_WIDTH_A` wide between
opposite faces, and atoms within :data:`MAX_CELLS_AWAY` cell lengths of the cell. Frames
are named by their raw index (``frame_offset + f`` for a split piece).
"""

from __future__ import annotations

import numpy as np

from gdyn.errors import InputError

__all__ = [
    "MAX_CELLS_AWAY", "MIN_FACE_WIDTH_A", "check_far", "check_finite", "check_lattices",
    "frame_name",
]

# |det| below this fraction of |a||b||c| means the three lattice vectors are (nearly) coplanar.
_SINGULAR_RTOL = 1e-8
# Physically absurd frames are refused (issue 26): a cell thinner than MIN_FACE_WIDTH_A
# between two opposite faces (no atom fits; a unit or box-bound mistake), and an atom more
# than MAX_CELLS_AWAY cell lengths from the cell along a lattice vector (fractional
# coordinate outside [-MAX_CELLS_AWAY, 1 + MAX_CELLS_AWAY]: unwrapped diffusion reaches a
# few cells, not a hundred; such values are a unit mistake or garbage).
MIN_FACE_WIDTH_A = 0.5
MAX_CELLS_AWAY = 100.0


def frame_name(f: int, offset: int) -> str:
    """``frame <raw index>``, plus the local index when the arrays start at a later frame."""
    if not offset:
        return f"frame {f}"
    return f"frame {offset + f} (raw frame index; frame {f} of this piece)"


def check_finite(arr: np.ndarray, key: str, what: str, first_frame: int, name: str,
                 offset: int = 0) -> None:
    """Refuse the first frame of ``arr`` (F, ...) that holds a NaN or inf, by its raw index."""
    finite = np.isfinite(arr).all(axis=tuple(range(1, arr.ndim)))
    if not finite.all():
        f = first_frame + int(np.argmin(finite))
        raise InputError(f"{name}: key {key!r}: expected finite {what}, "
                         f"{frame_name(f, offset)} has NaN or inf")


def check_lattices(lat: np.ndarray, first_frame: int, name: str, offset: int = 0) -> None:
    """Refuse non-finite, singular, left-handed or thinner than :data:`MIN_FACE_WIDTH_A`
    cells among ``lat`` (F, 3, 3), rows = lattice vectors, frames ``first_frame..``.

    Raises
    ------
    InputError
        Naming ``name``, the key and the first offending frame.
    """
    check_finite(lat, "lattices", "lattice vectors", first_frame, name, offset)
    det = np.linalg.det(lat)
    scale = np.prod(np.linalg.norm(lat, axis=2), axis=1)
    singular = np.abs(det) <= _SINGULAR_RTOL * scale
    if singular.any():
        i = int(np.argmax(singular))
        raise InputError(
            f"{name}: key 'lattices': expected a non-singular cell, "
            f"{frame_name(first_frame + i, offset)} has det = {det[i]:.3g} "
            "(lattice vectors coplanar or zero)"
        )
    left = det < 0
    if left.any():
        i = int(np.argmax(left))
        raise InputError(
            f"{name}: key 'lattices': expected a right-handed cell (det > 0), "
            f"{frame_name(first_frame + i, offset)} has det = {det[i]:.6g}"
        )
    # Width between the faces spanned by the two other vectors: volume / face area.
    areas = np.linalg.norm(np.cross(lat[:, [1, 2, 0]], lat[:, [2, 0, 1]]), axis=2)
    width = np.abs(det)[:, None] / areas
    thin = width.min(axis=1) < MIN_FACE_WIDTH_A
    if thin.any():
        i = int(np.argmax(thin))
        raise InputError(
            f"{name}: key 'lattices': expected a cell at least {MIN_FACE_WIDTH_A:g} A wide "
            f"between opposite faces, {frame_name(first_frame + i, offset)} is "
            f"{width[i].min():.3g} A wide (lattice vectors in Angstrom, rows a, b, c?)"
        )


def check_far(coords: np.ndarray, lat: np.ndarray, first_frame: int, name: str,
               offset: int = 0) -> None:
    """Refuse atoms more than :data:`MAX_CELLS_AWAY` cell lengths from the cell.

    Parameters
    ----------
    coords : (F, N, 3)
        Coordinates (Angstrom) of frames ``first_frame..``.
    lat : (F, 3, 3)
        Their cells (rows = lattice vectors), already checked non-singular.
    """
    frac = np.einsum("fnj,fjk->fnk", np.asarray(coords, dtype=np.float64), np.linalg.inv(lat))
    far = (frac < -MAX_CELLS_AWAY) | (frac > 1.0 + MAX_CELLS_AWAY)
    if far.any():
        f, atom, axis = (int(x) for x in np.argwhere(far)[0])
        raise InputError(
            f"{name}: key 'traj_coords': expected atoms within {MAX_CELLS_AWAY:g} cell lengths "
            f"of the cell, {frame_name(first_frame + f, offset)} has atom {atom} at "
            f"{frac[f, atom, axis]:.3g} cell lengths along lattice vector {'abc'[axis]} "
            f"({coords[f, atom].tolist()} A)"
        )
