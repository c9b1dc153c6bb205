"""Periodic geometry of the analyses (rows of a lattice are its vectors; triclinic allowed).

Image searches (:func:`gdyn.graph.image_shifts`, :func:`gdyn.graph.pairs_within`) and face
widths (:func:`gdyn.graph.cell.face_widths`) live in :mod:`gdyn.graph`; what is here is the
displacement arithmetic of target sets.
"""

from __future__ import annotations

import numpy as np


def minimum_image(delta: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """Wrap displacements (..., 3) by rounding fractional coordinates.

    Exact for displacements shorter than half the smallest face width (bonds within a
    target set, one frame of motion), which is all it is used for.
    """
    frac = np.einsum("...j,...jk->...k", delta, np.linalg.inv(lattices))
    frac -= np.round(frac)
    return np.einsum("...j,...jk->...k", frac, lattices)


def set_centres(coords: np.ndarray, lattices: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """(F, n, 3) mean position of each target set, members taken at their minimum image
    relative to the set's first atom."""
    first = np.asarray(coords[:, sets[:, 0]], dtype=np.float64)
    if sets.shape[1] == 1:
        return first
    members = np.asarray(coords[:, sets.reshape(-1)], dtype=np.float64).reshape(
        coords.shape[0], *sets.shape, 3
    )
    delta = minimum_image(members - first[:, :, None], lattices[:, None, None])
    return first + delta.mean(axis=2)


def fold_fractional(points: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """Fractional coordinates (..., 3) of points folded into [0, 1)."""
    frac = np.einsum("...j,...jk->...k", points, np.linalg.inv(lattices))
    frac -= np.floor(frac)
    return np.where(frac >= 1.0, 0.0, frac)
