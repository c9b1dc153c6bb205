"""State-weighted radial distribution function (Methods Eq. 12) and coordination numbers.

g_i(r) = sum p_i dN(r) / (4/3 pi (r_hi^3 - r_lo^3) sum p_i rho_A) around the target set
centres, every periodic image counted (r_max may exceed half the cell), and n_i(r), the
mean number of atoms of element A within r of a state-i reference. ``rdf.csv`` adds the
edge of the first coordination shell and the coordination number there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdyn.analysis.geometry import set_centres
from gdyn.analysis.inputs import Piece, as_pieces, element_number
from gdyn.errors import InputError
from gdyn.graph import image_shifts, pairs_within
from gdyn.settings import default
from gdyn.trajectory import Trajectory

log = logging.getLogger(__name__)

# Upper bound on the number of (frame, centre, atom, image) distances held at once.
_PAIR_BUDGET = 1_000_000


def _frame_chunks(n_frames: int, per_frame: int, stride: int) -> Iterator[np.ndarray]:
    frames = np.arange(0, n_frames, stride)
    step = max(1, _PAIR_BUDGET // max(per_frame, 1))
    for lo in range(0, frames.size, step):
        yield frames[lo : lo + step]


@dataclass
class RdfCounts:
    """Weighted pair histogram of one element around the references, per state.

    ``hist[i, b]`` = sum over frames and references of p_i x (atoms in bin b);
    ``weight[i]`` = sum of p_i; ``weight_rho[i]`` = sum of p_i x rho_A(frame), rho_A the
    number density of element A excluding the reference's own atoms.
    """

    hist: np.ndarray
    weight: np.ndarray
    weight_rho: np.ndarray

    def __iadd__(self, other: RdfCounts) -> RdfCounts:
        self.hist += other.hist
        self.weight += other.weight
        self.weight_rho += other.weight_rho
        return self


def rdf_counts(
    coords: np.ndarray, lattices: np.ndarray, sets: np.ndarray, atom_types: np.ndarray,
    probs: np.ndarray, element: int, r_max: float, n_bins: int,
    stride: int = default("structure", "rdf", "stride"),
) -> RdfCounts:
    """Accumulate :class:`RdfCounts` of atoms with atomic number ``element`` around the
    target set centres of one trajectory (``probs`` (F, n, S), NaN rows are skipped)."""
    n_states = probs.shape[2]
    counts = RdfCounts(np.zeros((n_states, n_bins)), np.zeros(n_states), np.zeros(n_states))
    atoms = np.flatnonzero(np.asarray(atom_types) == element)
    if atoms.size == 0:
        return counts
    exclude = (sets[:, :, None] == atoms[None, None, :]).any(axis=1)  # (n, m): own atoms
    # A set whose own atoms are of element A sees N_A - (own atoms) others.
    n_others = atoms.size - exclude.sum(axis=1)
    n_images = image_shifts(lattices, r_max).shape[0]
    w = np.where(np.isfinite(probs), probs, 0.0)
    dr = r_max / n_bins
    per_frame = sets.shape[0] * atoms.size * n_images
    for frames in _frame_chunks(coords.shape[0], per_frame, stride):
        lat = np.asarray(lattices[frames], dtype=np.float64)
        xyz = np.asarray(coords[frames], dtype=np.float64)
        centres = set_centres(xyz, lat, sets)
        t, c, _, dist = pairs_within(centres, xyz[:, atoms], lat, r_max, exclude)
        b = np.minimum((dist / dr).astype(np.int64), n_bins - 1)
        wf = w[frames]
        for i in range(n_states):
            counts.hist[i] += np.bincount(b, weights=wf[t, c, i], minlength=n_bins)
        volume = np.abs(np.linalg.det(lat))  # (T,)
        rho = n_others[None, :] / volume[:, None]  # (T, n)
        counts.weight += wf.sum(axis=(0, 1))
        counts.weight_rho += np.einsum("tni,tn->i", wf, rho)
    return counts


def rdf_from_counts(counts: RdfCounts, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres r, g_i(r) and n_i(r) (S, n_bins) from weighted counts.

    Eq. 12 with rho_i the p_i-weighted mean number density of element A:
    g_i(r) = sum p_i dN(r) / (4/3 pi (r_hi^3 - r_lo^3) sum p_i rho_A), so g -> 1 for an
    uncorrelated neighbour. n_i(r) = sum p_i N(<r) / sum p_i is the mean number of A atoms
    within r of a state-i reference (= int_0^r rho g 4 pi r'^2 dr'), evaluated at the bin
    centre (half of the centre bin counted).
    """
    n_bins = counts.hist.shape[1]
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = counts.hist / (shell[None] * counts.weight_rho[:, None])
        cum = np.cumsum(counts.hist, axis=1) - 0.5 * counts.hist
        n = cum / counts.weight[:, None]
    return 0.5 * (edges[1:] + edges[:-1]), g, n


def running_mean(y: np.ndarray, width: int) -> np.ndarray:
    """Running mean of ``width`` points (edges padded with the end values)."""
    if width <= 1:
        return y
    pad = width // 2
    yp = np.pad(y, pad, mode="edge")
    return np.convolve(yp, np.ones(width) / width, mode="valid")


def first_peak_index(g: np.ndarray, smooth: int = 3, rel_height: float = 0.5) -> int | None:
    """Index of the first local maximum of (lightly smoothed) g at least ``rel_height`` of
    the highest one; None when g is empty or flat zero."""
    gs = running_mean(np.nan_to_num(g), smooth)
    if gs.size < 3 or gs.max() <= 0:
        return None
    top = gs.max()
    for k in range(1, gs.size - 1):
        if gs[k] >= rel_height * top and gs[k] >= gs[k - 1] and gs[k] > gs[k + 1]:
            return k
    k = int(np.argmax(gs))
    return k


def first_shell(r: np.ndarray, g: np.ndarray, n: np.ndarray, smooth: int = 5,
                prominence: float = 0.1, vanish: float = 0.01) -> tuple[float, float]:
    """(r_min, n(r_min)): the edge of the first coordination shell and the coordination
    number there; NaN, NaN when g has no peak or the shell does not end before r_max.

    The edge is the first minimum of the smoothed g after its first peak whose prominence
    is at least ``prominence`` times the peak height (so noise on a broad shell, like the
    toy's octahedral site, is not an edge), or else the first point where g falls below
    ``vanish`` times the peak (a shell followed by empty space).
    """
    from scipy.signal import find_peaks

    peak = first_peak_index(g)
    if peak is None:
        return math.nan, math.nan
    gs = running_mean(np.nan_to_num(g), smooth)
    height = gs[peak]
    minima, _ = find_peaks(-gs[peak:], prominence=prominence * height)
    empty = np.flatnonzero(gs[peak:] < vanish * height)
    candidates = [int(m) for m in minima[:1]] + [int(e) for e in empty[:1]]
    if not candidates:
        return math.nan, math.nan
    k = peak + min(candidates)
    return float(r[k]), float(n[k])


def state_weighted_rdf(
    trajectories: Trajectory | Piece | Sequence[Trajectory | Piece],
    probs: np.ndarray | Sequence[np.ndarray] | None,
    elements: Sequence[str],
    r_max_A: float = default("structure", "rdf", "r_max_A"),
    n_bins: int = default("structure", "rdf", "n_bins"),
    stride: int = default("structure", "rdf", "stride"),
) -> Any:
    """State-weighted RDF g_i(r) and coordination number n_i(r) around the targets (Eq. 12).

    Parameters
    ----------
    trajectories : Trajectory or list of Trajectory (or Piece, with ``probs=None``)
        The MD data; references are the centres of the target sets.
    probs : ndarray (F, n_sets, S) or list of them, one per trajectory
        State probabilities aligned frame by frame (NaN rows: unscored, zero weight).
    elements : list of str
        Element symbols of the neighbours, one curve each.
    r_max_A, n_bins : float, int
        Histogram range [0, r_max_A) and number of bins.
    stride : int
        Use every stride-th frame.

    Returns
    -------
    pandas.DataFrame
        The ``rdf.csv`` table: state, element, r_A, g, n_coord, r_first_min_A,
        n_first_shell (the last two, the first-shell minimum and the coordination number
        there, repeated on every row of a (state, element) curve).
    """
    import pandas as pd
    from tqdm import tqdm

    pieces = as_pieces(trajectories, probs)
    r_max = float(r_max_A)
    rows = []
    for sym in elements:
        z = element_number(sym, "structure/rdf/elements")
        if not any((np.asarray(pc.atom_types) == z).any() for pc in pieces):
            # a NaN curve with exit 0 would pass as a result: name the element instead
            have = sorted({int(t) for pc in pieces for t in np.unique(pc.atom_types)})
            raise InputError(
                f"{pieces[0].path}: key 'atom_types': expected {sym} atoms "
                f"(structure/rdf/elements), got atomic numbers {have} only"
            )
        total: RdfCounts | None = None
        for pc in tqdm(pieces, desc=f"rdf {sym}", leave=False):
            c = rdf_counts(pc.coords, pc.lattices, pc.target_sets, pc.atom_types, pc.probs,
                           z, r_max, n_bins, stride)
            if total is None:
                total = c
            else:
                total += c
        assert total is not None
        if total.weight_rho.sum() == 0:
            log.warning("no %s atoms but the targets' own: g is NaN", sym)
        r, g, n = rdf_from_counts(total, r_max)
        for i in range(g.shape[0]):
            r_min, n_min = first_shell(r, g[i], n[i])
            log.info("state %d, %s: first-shell minimum r = %.3f A, n = %.3f", i, sym, r_min, n_min)
            rows.append(pd.DataFrame({
                "state": i, "element": sym, "r_A": r, "g": g[i], "n_coord": n[i],
                "r_first_min_A": r_min, "n_first_shell": n_min,
            }))
    return pd.concat(rows, ignore_index=True)
