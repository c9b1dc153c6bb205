"""Site labels of the toy system and their ground-truth statistics (two-state MSM).

Each Li is labelled by the S polyhedron that contains it, octahedral (0) or tetrahedral
(1): the geometric ground truth that GDyNet's states are compared with (paper, Fig. 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gdyn.config import lag_to_frames
from gdyn.errors import InputError

__all__ = [
    "OCTAHEDRAL",
    "OCT_SITES",
    "SITE_NAMES",
    "TETRAHEDRAL",
    "TET_SITES",
    "count_transitions",
    "label_sites",
    "read_site_labels",
    "site_index",
    "site_statistics",
    "two_state_msm",
]

# Fractional positions of the interstitial sites in the conventional FCC cell.
OCT_SITES = np.array([[0.5, 0.5, 0.5], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]])
TET_SITES = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])
OCTAHEDRAL, TETRAHEDRAL = 0, 1
SITE_NAMES = {OCTAHEDRAL: "oct", TETRAHEDRAL: "tet"}


def label_sites(coords_A: np.ndarray, lattice_A: float) -> np.ndarray:
    """Containing polyhedron of each Li: 0 octahedral, 1 tetrahedral; shape ``coords.shape[:-1]``.

    The S octahedron around an octahedral site is ``|dx| + |dy| + |dz| <= a/2`` (minimum
    image); everything else in the FCC cell lies in a tetrahedron. The shared triangular face
    is the dividing surface, which holds the saddle of the potential, so labels do not flip
    while the Li rattles in a site (nearest-site labels do).
    """
    c = np.asarray(coords_A, dtype=float)
    a = lattice_A
    inside = np.zeros(c.shape[:-1], dtype=bool)
    for site in OCT_SITES * a:
        d = c - site
        d = d - a * np.round(d / a)
        inside |= np.abs(d).sum(axis=-1) <= a / 2
    return np.where(inside, OCTAHEDRAL, TETRAHEDRAL).astype(np.int8)


def site_index(coords_A: np.ndarray, lattice_A: float, rule: str = "polyhedron") -> np.ndarray:
    """Which of the cell's 12 sites holds each Li: 0-3 octahedral (``OCT_SITES``), 4-11 tetrahedral.

    ``coords_A`` are positions relative to an S atom (any S of the FCC lattice: the sites
    are the same relative to each). ``rule="polyhedron"`` assigns the containing S
    polyhedron, as :func:`label_sites` does (the octahedron ``|d|_1 <= a/2`` around its
    centre, else the nearest tetrahedral centre, which is the containing tetrahedron's):
    the dividing surface is the shared face, where the saddle of the potential is.
    ``rule="nearest"`` takes the nearest site centre: its oct/tet boundary lies at half the
    oct-tet distance, sqrt(3) a / 8 = 1.41 A from the octahedral centre for a = 6.5 A,
    inside the octahedron (its faces are a / (2 sqrt(3)) = 1.88 A away), so a Li rattling
    in its octahedron is counted tetrahedral now and then (docs/toy.md, "Issue 21").
    """
    c = np.asarray(coords_A, dtype=float) / lattice_A

    def offsets(sites: np.ndarray) -> np.ndarray:
        d = c[..., None, :] - sites
        return d - np.round(d)

    d_tet = offsets(TET_SITES)
    tet = 4 + np.argmin(np.einsum("...sk,...sk->...s", d_tet, d_tet), axis=-1)
    d_oct = offsets(OCT_SITES)
    if rule == "polyhedron":
        l1 = np.abs(d_oct).sum(axis=-1)
        return np.where(l1.min(axis=-1) <= 0.5, np.argmin(l1, axis=-1), tet).astype(np.int8)
    if rule == "nearest":
        r2_oct = np.einsum("...sk,...sk->...s", d_oct, d_oct)
        r2_tet = np.einsum("...sk,...sk->...s", d_tet, d_tet)
        nearest_oct = r2_oct.min(axis=-1) <= r2_tet.min(axis=-1)
        return np.where(nearest_oct, np.argmin(r2_oct, axis=-1), tet).astype(np.int8)
    raise InputError(f"rule: expected 'polyhedron' or 'nearest', got {rule!r}")


def count_transitions(labels: np.ndarray) -> int:
    """Number of label changes between consecutive frames, summed over columns (F, n)."""
    lab = np.asarray(labels)
    return int(np.count_nonzero(lab[1:] != lab[:-1]))


def _columns(labels: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Label arrays (F,) / (F, n), or a list of them, as a list of (F_i,) trajectories."""
    arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
    cols: list[np.ndarray] = []
    for arr in arrays:
        a = np.asarray(arr)
        cols += [a] if a.ndim == 1 else [a[:, j] for j in range(a.shape[1])]
    return cols


def two_state_msm(labels: np.ndarray | Sequence[np.ndarray], lag_frames: int) -> dict[str, float]:
    """Two-state MSM from site labels: sliding-window counts pooled over all trajectories.

    ``labels``: (F,) or (F, n) int labels (each column one trajectory), or a list of such
    arrays of different lengths. Every 2x2 transition matrix is reversible, so the
    row-normalised count matrix is the maximum-likelihood estimate. Returns the transition
    probabilities, ``lambda2 = T00 + T11 - 1``, the relaxation time in frames
    ``-lag / ln(lambda2)`` and the stationary tetrahedral population.
    """
    if lag_frames < 1:
        raise InputError(f"lag_frames: expected >= 1, got {lag_frames}")
    counts = np.zeros((2, 2))
    for col in _columns(labels):
        if len(col) > lag_frames:
            np.add.at(counts, (col[:-lag_frames], col[lag_frames:]), 1.0)
    if np.any(counts.sum(axis=1) == 0):
        raise InputError(
            f"site_label: both sites must be visited for a two-state MSM at lag {lag_frames} "
            f"frames, got counts {counts.tolist()}"
        )
    t = counts / counts.sum(axis=1, keepdims=True)
    lam = t[0, 0] + t[1, 1] - 1.0
    flux = t[0, 1] + t[1, 0]
    relax = -lag_frames / math.log(lam) if 0 < lam < 1 else float("nan")
    return {
        "p_oct_to_tet": float(t[0, 1]),
        "p_tet_to_oct": float(t[1, 0]),
        "lambda2": float(lam),
        "relaxation_frames": float(relax),
        "tet_population": float(t[0, 1] / flux) if flux > 0 else float("nan"),
        "n_pairs": float(counts.sum()),
    }


def site_statistics(
    labels: np.ndarray | Sequence[np.ndarray], frame_interval_ps: float, lag_ps: float = 10.0
) -> dict[str, float]:
    """Ground-truth statistics of site labels: sampled time, transitions, tet entries, MSM."""
    cols = _columns(labels)
    lag = lag_to_frames(lag_ps, frame_interval_ps)
    try:
        msm = two_state_msm(cols, lag)
    except InputError:  # a site never visited: no MSM, but the counts still say so
        msm = {"relaxation_frames": float("nan"), "tet_population": float("nan")}
    frames = sum(len(c) for c in cols)
    entries = sum(
        int(np.count_nonzero((c[1:] == TETRAHEDRAL) & (c[:-1] == OCTAHEDRAL))) for c in cols
    )
    return {
        "n_trajectories": len(cols),
        "li_ns": frames * frame_interval_ps / 1000.0,
        "tet_fraction": float(sum(int(c.sum()) for c in cols) / frames),
        "transitions": sum(count_transitions(c[:, None]) for c in cols),
        "tet_entries": entries,
        "lag_ps": float(lag_ps),
        "relaxation_ps": msm["relaxation_frames"] * frame_interval_ps,
        "msm_tet_population": msm["tet_population"],
    }


def read_site_labels(
    paths: Sequence[str | Path], start: float = 0.0, stop: float = 1.0
) -> tuple[list[np.ndarray], float]:
    """``site_label`` of toy trajectory files, each cut to frames ``[round(start F), round(stop F))``.

    Parameters
    ----------
    paths
        Raw or split ``.npz`` files with ``site_label`` and ``frame_interval_ps``.
    start, stop
        Fractions of each file's frames, ``0 <= start < stop <= 1``.

    Returns
    -------
    labels, frame_interval_ps
        One (F_i, n) label array per file, and their common frame interval (ps).
    """
    if not 0.0 <= start < stop <= 1.0:
        raise InputError(
            f"--start/--stop: expected 0 <= start < stop <= 1, got {start}, {stop}"
        )
    labels, intervals = [], set()
    for path in paths:
        try:
            with np.load(path) as data:
                lab = np.asarray(data["site_label"])
                intervals.add(float(data["frame_interval_ps"]))
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except KeyError as exc:
            raise InputError(f"{path}: missing key {exc}; expected a toy trajectory") from None
        n = lab.shape[0]
        labels.append(lab[round(start * n) : round(stop * n)])
    if len(intervals) != 1:
        raise InputError(
            f"frame_interval_ps: expected one value over all files, got {sorted(intervals)}"
        )
    return labels, intervals.pop()
