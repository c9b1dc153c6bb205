"""State-weighted structure of the learned states.

Commands: ``gdyn rdf`` (state-weighted radial distribution function, Methods Eq. 12, and the
coordination number), ``gdyn charge`` (charge integral of each state, Supplementary Note 3),
``gdyn profile`` (distribution of each state along an axis, Fig. 3c), ``gdyn snapshot``
(per-atom state probabilities of one frame as extended XYZ + PNG, Figs. 2c / 3b),
``gdyn positions`` (folded target positions with their state probabilities, Fig. 2c) and
``gdyn q3`` (Steinhardt q3 of the targets and its distribution per state, Supp. Fig. 2).

Every analysis reads the test split pieces, the analysed model's test probabilities at
every lag (the one at tau* is picked from the Koopman ``summary.json``) and reorders the
states like the Koopman outputs (decreasing stationary population), so state ``i`` here is
state ``i`` in every Koopman table and figure. The loading helpers and the small Koopman
estimator below are shared with :mod:`gdyn.conduction`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman import koopman_matrix, spectrum

log = logging.getLogger(__name__)

# Upper bound on the number of (frame, centre, atom, image) distances held at once.
_PAIR_BUDGET = 1_000_000
# Rows in positions-*.csv (contract: at most 20000, subsampled evenly).
MAX_POSITION_ROWS = 20_000
AXES = {"x": 0, "y": 1, "z": 2}


# ======================================================================================
# Inputs: split pieces + probabilities at tau*, in Koopman state order


@dataclass
class Piece:
    """One test split piece with the analysed model's probabilities on its frames.

    ``probs`` is (F, n_sets, n_states) float64 in Koopman state order; rows the model did
    not score are NaN (they get zero weight everywhere).
    """

    source: str
    path: Path
    coords: np.ndarray  # (F, N, 3), possibly a read-only memmap
    lattices: np.ndarray  # (F, 3, 3), rows = lattice vectors
    atom_types: np.ndarray  # (N,)
    target_sets: np.ndarray  # (n, k)
    probs: np.ndarray  # (F, n, S)
    frame_interval_ps: float
    frame_offset: int

    @property
    def n_frames(self) -> int:
        """Number of frames F."""
        return int(self.coords.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """(F, n) bool: rows with probabilities."""
        return np.isfinite(self.probs).all(axis=2)

    def weights(self) -> np.ndarray:
        """Probabilities with unscored rows set to zero weight."""
        return np.where(np.isfinite(self.probs), self.probs, 0.0)


@dataclass
class Analysis:
    """Everything an analysis needs: pieces, tau*, and how states were ordered."""

    pieces: list[Piece]
    tau_star_ps: float
    n_states: int
    state_order: list[int]
    order_source: str
    probs_path: Path
    summary: dict[str, Any]


def _scalar(value: Any) -> Any:
    return np.asarray(value).reshape(()).item()


def load_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Koopman ``summary.json`` with the keys this stage needs checked."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    tau = summary.get("tau_star_ps")
    if not isinstance(tau, int | float) or not math.isfinite(tau) or tau <= 0:
        raise InputError(f"{path}: key 'tau_star_ps': expected a positive number, got {tau!r}")
    return summary


def read_probs(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A ``probs_{part}.npz`` (contract in docs/contracts.md) as a dict, validated by
    :func:`gdyn.koopman.load_probs` so both stages accept exactly the same files."""
    from gdyn.koopman import load_probs

    pr = load_probs(path)
    return {
        "probs": pr.probs,
        "traj": pr.traj,
        "frame": pr.frame,
        "sources": pr.sources,
        "lag_ps": np.asarray(pr.lag_ps),
        "frame_interval_ps": np.asarray(pr.frame_interval_ps),
    }


def tau_star_probs_path(
    probs_paths: Sequence[str | os.PathLike[str]], summary: dict[str, Any], summary_path: Any
) -> Path:
    """The probs file at tau*: ``summary['probs_test']`` if it is one of ``probs_paths``,
    otherwise the one whose ``lag_ps`` equals ``summary['tau_star_ps']``."""
    paths = [Path(p) for p in probs_paths]
    want = summary.get("probs_test")
    if want:
        for p in paths:
            if os.path.normpath(p) == os.path.normpath(want) or (
                p.exists() and Path(want).exists() and os.path.samefile(p, want)
            ):
                return p
    tau = float(summary["tau_star_ps"])
    for p in paths:
        try:
            with np.load(p, allow_pickle=False) as z:
                lag = float(_scalar(z["lag_ps"])) if "lag_ps" in z.files else None
        except (OSError, ValueError):
            continue
        if lag is not None and math.isclose(lag, tau, rel_tol=1e-6):
            return p
    raise InputError(
        f"{summary_path}: key 'probs_test': expected one of the --probs files or a probs file "
        f"with lag_ps = tau_star_ps = {tau:g}, got {want!r}"
    )


def _load_piece(path: Path) -> Any:
    from gdyn.trajectory import load_trajectory

    return load_trajectory(path, mmap=True)


def _piece_meta(traj: Any, path: Path) -> tuple[str, int, float | None]:
    extras = traj.extras
    if "source" not in extras:
        raise InputError(f"{path}: key 'source': missing (split pieces carry the raw name)")
    source = str(_scalar(extras["source"]))
    offset = int(_scalar(extras["frame_offset"])) if "frame_offset" in extras else 0
    fi = float(_scalar(extras["frame_interval_ps"])) if "frame_interval_ps" in extras else None
    return source, offset, fi


def match_probs(
    probs: dict[str, np.ndarray], source: str, frame_offset: int, n_frames: int, n_sets: int,
    where: str,
) -> np.ndarray:
    """(n_frames, n_sets, S) float64 probabilities of one piece; NaN where none was given."""
    sources = [str(s) for s in probs["sources"]]
    if source not in sources:
        raise InputError(
            f"{where}: key 'sources': expected the test piece's source {source!r}, "
            f"got {', '.join(sources)}"
        )
    p = probs["probs"]
    if p.shape[1] != n_sets:
        raise InputError(
            f"{where}: key 'probs': expected {n_sets} target sets (as {source}), got {p.shape[1]}"
        )
    rows = np.flatnonzero(probs["traj"] == sources.index(source))
    idx = probs["frame"][rows].astype(np.int64) - frame_offset
    keep = (idx >= 0) & (idx < n_frames)
    out = np.full((n_frames, n_sets, p.shape[2]), np.nan)
    out[idx[keep]] = p[rows[keep]]
    if not keep.any():
        raise InputError(
            f"{where}: no rows for frames {frame_offset}..{frame_offset + n_frames - 1} of "
            f"{source!r} (expected the test probabilities of this split piece)"
        )
    return out


def koopman_counts(
    weights: np.ndarray, valid: np.ndarray, lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """C00 = sum chi(t) chi(t)^T and C0t = sum chi(t) chi(t+lag)^T over valid pairs of one
    trajectory; ``weights`` (F, n, S) with zero rows where invalid, ``valid`` (F, n)."""
    if lag >= weights.shape[0]:
        s = weights.shape[2]
        return np.zeros((s, s)), np.zeros((s, s))
    ok = (valid[:-lag] & valid[lag:])[..., None]
    x0 = (weights[:-lag] * ok).reshape(-1, weights.shape[2])
    xt = (weights[lag:] * ok).reshape(-1, weights.shape[2])
    return x0.T @ x0, x0.T @ xt


def _lag_frames(lag_ps: float, frame_interval_ps: float) -> int:
    from gdyn.config import lag_to_frames

    return lag_to_frames(lag_ps, frame_interval_ps)


def population_order(pieces: Sequence[Piece], tau_frames: int) -> np.ndarray:
    """Raw state indices by decreasing stationary population of K(tau*) from these pieces
    (the mean probability when no lag pair exists or K has no unique stationary vector)."""
    s = pieces[0].probs.shape[2]
    c00, c0t = np.zeros((s, s)), np.zeros((s, s))
    mean = np.zeros(s)
    for pc in pieces:
        w = pc.weights()
        a, b = koopman_counts(w, pc.valid, tau_frames)
        c00 += a
        c0t += b
        mean += w.sum(axis=(0, 1))
    pop = mean
    if c00.trace() > 0:
        k = koopman_matrix(c00, c0t)
        # A repeated unit eigenvalue (no transitions between some states) leaves the
        # stationary vector undefined; the mean probability is then the population.
        if np.sort(np.abs(np.linalg.eigvals(k)))[-2] < 1.0 - 1e-8:
            pop = spectrum(k).stationary
    return np.argsort(-pop, kind="stable")


def load_analysis(
    test_paths: Sequence[str | os.PathLike[str]],
    probs_paths: Sequence[str | os.PathLike[str]],
    summary_path: str | os.PathLike[str],
) -> Analysis:
    """Test pieces with the tau* probabilities matched frame by frame, in Koopman order.

    State order: ``summary['state_order']`` (raw model state indices, most populated
    first) when present, else the decreasing stationary population of K(tau*) estimated
    here from the same probabilities, which is how the Koopman stage orders its outputs.
    """
    summary = load_summary(summary_path)
    tau = float(summary["tau_star_ps"])
    ppath = tau_star_probs_path(probs_paths, summary, summary_path)
    probs = read_probs(ppath)
    n_states = int(probs["probs"].shape[2])
    fi_probs = float(_scalar(probs["frame_interval_ps"])) if "frame_interval_ps" in probs else None
    pieces: list[Piece] = []
    for raw in test_paths:
        path = Path(raw)
        traj = _load_piece(path)
        source, offset, fi = _piece_meta(traj, path)
        fi = fi if fi is not None else fi_probs
        if fi is None:
            raise InputError(f"{path}: key 'frame_interval_ps': missing (also absent in {ppath})")
        if fi_probs is not None and not math.isclose(fi, fi_probs, rel_tol=1e-6):
            raise InputError(
                f"{ppath}: key 'frame_interval_ps': expected {fi:g} ps (as {path}), got {fi_probs:g}"
            )
        sets = traj.target_sets
        p = match_probs(probs, source, offset, traj.n_frames, sets.shape[0], str(ppath))
        pieces.append(Piece(source, path, traj.traj_coords, traj.lattices,
                            np.asarray(traj.atom_types), sets, p, fi, offset))
    if not pieces:
        raise InputError("--test: expected at least one test split piece, got none")
    order = summary.get("state_order")
    if order is not None:
        if sorted(int(i) for i in order) != list(range(n_states)):
            raise InputError(
                f"{summary_path}: key 'state_order': expected a permutation of "
                f"0..{n_states - 1}, got {order!r}"
            )
        order_arr, how = np.asarray(order, dtype=np.int64), "summary.json state_order"
    else:
        order_arr = population_order(pieces, _lag_frames(tau, pieces[0].frame_interval_ps))
        how = "stationary population of K(tau*) recomputed from the test probabilities"
    for pc in pieces:
        pc.probs = pc.probs[..., order_arr]
    log.info("tau* = %g ps from %s; states reordered %s (%s)", tau, ppath,
             order_arr.tolist(), how)
    return Analysis(pieces, tau, n_states, order_arr.tolist(), how, ppath, summary)


# ======================================================================================
# Periodic geometry (rows of a lattice are its vectors; triclinic cells allowed)


def plane_spacings(lattices: np.ndarray) -> np.ndarray:
    """Distance between neighbouring lattice planes along each reciprocal direction."""
    inv = np.linalg.inv(lattices)
    return 1.0 / np.linalg.norm(inv, axis=-2)


def minimum_image(delta: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """Wrap displacements (..., 3) by rounding fractional coordinates.

    Exact for displacements shorter than half the smallest plane spacing (bonds within a
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


def image_shifts(lattices: np.ndarray, r_max: float) -> np.ndarray:
    """All integer cell shifts that can hold an image within ``r_max`` of a point whose
    fractional offset is wrapped into [-0.5, 0.5) (n_img, 3), shift (0, 0, 0) first."""
    h = plane_spacings(np.asarray(lattices, dtype=np.float64).reshape(-1, 3, 3)).min(axis=0)
    n = np.floor(r_max / h + 0.5).astype(int)
    grid = np.stack(np.meshgrid(*(np.arange(-k, k + 1) for k in n), indexing="ij"), -1)
    grid = grid.reshape(-1, 3)
    return grid[np.argsort(np.abs(grid).sum(axis=1), kind="stable")]


def pair_distances(
    centres: np.ndarray, points: np.ndarray, lattices: np.ndarray, shifts: np.ndarray,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """(T, n, m, n_img) distances from each centre to every periodic image of each point.

    ``exclude`` (n, m) bool marks a centre's own atoms: their closest image (the atom
    itself) is set to +inf so a reference never counts itself.
    """
    inv = np.linalg.inv(lattices)  # (T, 3, 3)
    frac = np.einsum("tmj,tjk->tmk", points, inv)[:, None] - np.einsum(
        "tnj,tjk->tnk", centres, inv
    )[:, :, None]
    frac -= np.floor(frac + 0.5)
    base = np.einsum("tnmj,tjk->tnmk", frac, lattices)  # (T, n, m, 3)
    offsets = np.einsum("ij,tjk->tik", shifts.astype(np.float64), lattices)  # (T, n_img, 3)
    cart = base[:, :, :, None, :] + offsets[:, None, None]
    d = np.sqrt(np.einsum("...k,...k->...", cart, cart))
    if exclude is not None and exclude.any():
        ci, mi = np.nonzero(exclude)
        sub = d[:, ci, mi]  # (T, n_ex, n_img)
        closest = np.argmin(sub, axis=-1)
        np.put_along_axis(sub, closest[..., None], np.inf, axis=-1)
        d[:, ci, mi] = sub
    return d


def _frame_chunks(n_frames: int, per_frame: int, stride: int = 1) -> Iterator[np.ndarray]:
    frames = np.arange(0, n_frames, stride)
    step = max(1, _PAIR_BUDGET // max(per_frame, 1))
    for lo in range(0, frames.size, step):
        yield frames[lo : lo + step]


# ======================================================================================
# State-weighted RDF (Eq. 12)


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
    probs: np.ndarray, element: int, r_max: float, n_bins: int, stride: int = 1,
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
    shifts = image_shifts(lattices, r_max)
    w = np.where(np.isfinite(probs), probs, 0.0)
    dr = r_max / n_bins
    per_frame = sets.shape[0] * atoms.size * shifts.shape[0]
    for frames in _frame_chunks(coords.shape[0], per_frame, stride):
        lat = np.asarray(lattices[frames], dtype=np.float64)
        xyz = np.asarray(coords[frames], dtype=np.float64)
        centres = set_centres(xyz, lat, sets)
        d = pair_distances(centres, xyz[:, atoms], lat, shifts, exclude)
        t, c, _, _ = np.nonzero(d < r_max)
        b = np.minimum((d[d < r_max] / dr).astype(np.int64), n_bins - 1)
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


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return y
    pad = width // 2
    yp = np.pad(y, pad, mode="edge")
    return np.convolve(yp, np.ones(width) / width, mode="valid")


def first_peak_index(g: np.ndarray, smooth: int = 3, rel_height: float = 0.5) -> int | None:
    """Index of the first local maximum of (lightly smoothed) g at least ``rel_height`` of
    the highest one; None when g is empty or flat zero."""
    gs = _smooth(np.nan_to_num(g), smooth)
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
    gs = _smooth(np.nan_to_num(g), smooth)
    height = gs[peak]
    minima, _ = find_peaks(-gs[peak:], prominence=prominence * height)
    empty = np.flatnonzero(gs[peak:] < vanish * height)
    candidates = [int(m) for m in minima[:1]] + [int(e) for e in empty[:1]]
    if not candidates:
        return math.nan, math.nan
    k = peak + min(candidates)
    return float(r[k]), float(n[k])


def _element_number(symbol: str, where: str) -> int:
    from ase.data import atomic_numbers

    if symbol not in atomic_numbers:
        raise InputError(f"{where}: expected an element symbol, got {symbol!r}")
    return int(atomic_numbers[symbol])


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


def state_weighted_rdf(
    pieces: Sequence[Piece], elements: Sequence[str], r_max: float, n_bins: int, stride: int = 1
) -> Any:
    """Tidy DataFrame of g_i(r) and n_i(r) for each element around the targets, plus the
    first-shell minimum and the coordination number there (repeated on every row of a
    (state, element) curve so the readout is one ``groupby().first()`` away)."""
    import pandas as pd
    from tqdm import tqdm

    rows = []
    for sym in elements:
        z = _element_number(sym, "structure/rdf/elements")
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
            log.warning("no %s atoms in any test piece: g is NaN", sym)
        r, g, n = rdf_from_counts(total, r_max)
        for i in range(g.shape[0]):
            r_min, n_min = first_shell(r, g[i], n[i])
            log.info("state %d, %s: first-shell minimum r = %.3f A, n = %.3f", i, sym, r_min, n_min)
            rows.append(pd.DataFrame({
                "state": i, "element": sym, "r_A": r, "g": g[i], "n_coord": n[i],
                "r_first_min_A": r_min, "n_first_shell": n_min,
            }))
    return pd.concat(rows, ignore_index=True)


# ======================================================================================
# Charge integral (Supplementary Note 3, Eq. 3)


def gaussian(r: np.ndarray, amplitude: float, mu: float, sigma: float) -> np.ndarray:
    """a exp(-(r - mu)^2 / (2 sigma^2))."""
    return amplitude * np.exp(-0.5 * ((r - mu) / sigma) ** 2)


def fit_first_peak(r: np.ndarray, g: np.ndarray) -> tuple[float, float, float]:
    """(amplitude, mu, sigma) of a Gaussian least-squares fit to the first peak of g.

    The fit window runs from the minimum (or zero) before the peak to the first minimum
    after it, so the rest of the RDF does not pull the fit.
    """
    from scipy.optimize import curve_fit

    peak = first_peak_index(g)
    if peak is None:
        raise ValueError("g has no peak")
    gs = _smooth(np.nan_to_num(g), 3)
    lo = peak
    while lo > 0 and gs[lo - 1] <= gs[lo] and gs[lo - 1] > 0:
        lo -= 1
    hi = peak
    while hi < gs.size - 1 and gs[hi + 1] <= gs[hi] and gs[hi] > 0:
        hi += 1
    sel = slice(lo, hi + 1)
    x, y = r[sel], np.nan_to_num(g[sel])
    wsum = y.sum()
    mu0 = float((x * y).sum() / wsum) if wsum > 0 else float(r[peak])
    sd0 = float(np.sqrt(max((((x - mu0) ** 2) * y).sum() / wsum, (r[1] - r[0]) ** 2)))
    if x.size < 3:
        return float(g[peak]), mu0, sd0
    try:
        (a, mu, sd), _ = curve_fit(gaussian, x, y, p0=(float(g[peak]), mu0, sd0), maxfev=10000)
    except RuntimeError:
        log.warning("Gaussian fit did not converge; using the peak's moments")
        return float(g[peak]), mu0, sd0
    return float(a), float(mu), float(abs(sd))


def charge_curve(
    n_coord: dict[str, np.ndarray], charges: dict[str, float], reference_charge: float
) -> np.ndarray:
    """Charge_i(r) = q_ref + sum_A q_A n_{i,A}(r) (Supp. Note 3, Eq. 3).

    The paper writes the integrals as int g 4 pi r^2 dr; with g normalised by the number
    density that integral is the coordination number n_A(r) = int rho_A g_A 4 pi r^2 dr,
    which is what is summed here (for PEO: 1 - n_N(r) + n_Li(r)).
    """
    out = np.full_like(next(iter(n_coord.values())), float(reference_charge), dtype=np.float64)
    for sym, q in charges.items():
        if sym in n_coord:
            out = out + float(q) * n_coord[sym]
    return out


def charge_table(rdf: Any, settings: dict[str, Any], where: str) -> Any:
    """charge.csv rows (state, r_A, charge, r_star_A, charge_at_r_star) from rdf.csv."""
    import pandas as pd

    center = settings["center"]
    charges = {str(k): float(v) for k, v in settings["charges"].items()}
    reference = settings.get("reference", "Li")
    q_ref = float(settings.get("reference_charge", charges.get(reference, 0.0)))
    fixed = settings.get("r_star_A")
    present = set(rdf["element"].unique())
    need = [center, *[s for s in charges if s != reference or s in present]]
    missing = [s for s in need if s not in present]
    if missing:
        raise InputError(
            f"{where}: column 'element': expected an RDF of {missing[0]} (structure/rdf/"
            f"elements must include the charge centre and every charged element), got "
            f"{', '.join(sorted(present))}"
        )
    out = []
    for state, grp in rdf.groupby("state", sort=True):
        curves = {e: g.sort_values("r_A") for e, g in grp.groupby("element")}
        r = curves[center]["r_A"].to_numpy()
        if fixed is not None:
            r_star = float(fixed)
        else:
            try:
                _, mu, sd = fit_first_peak(r, curves[center]["g"].to_numpy())
            except ValueError:
                log.warning("state %s: no %s peak; r* = r_max", state, center)
                mu, sd = float(r[-1]), 0.0
            r_star = mu + 3.0 * sd
            log.info("state %s: %s peak mu = %.3f A, sigma = %.3f A, r* = %.3f A",
                     state, center, mu, sd, r_star)
        n_by = {e: np.interp(r, c["r_A"].to_numpy(), c["n_coord"].to_numpy())
                for e, c in curves.items()}
        q = charge_curve(n_by, charges, q_ref)
        # n(0) = 0: the curve starts at the reference's own charge.
        q_star = float(np.interp(r_star, np.r_[0.0, r], np.r_[q_ref, q]))
        if r_star > r[-1]:
            log.warning("state %s: r* = %.3f A beyond r_max = %.3f A; charge at r_max used",
                        state, r_star, r[-1])
        out.append(pd.DataFrame({"state": int(state), "r_A": r, "charge": q,
                                 "r_star_A": r_star, "charge_at_r_star": q_star}))
    return pd.concat(out, ignore_index=True)


# ======================================================================================
# Profiles, positions, snapshot


def fold_fractional(points: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """Fractional coordinates (..., 3) of points folded into [0, 1)."""
    frac = np.einsum("...j,...jk->...k", points, np.linalg.inv(lattices))
    frac -= np.floor(frac)
    return np.where(frac >= 1.0, 0.0, frac)


def state_profile(pieces: Sequence[Piece], axis: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, density (S, n_bins)): expected number of targets of each state per
    Angstrom along ``axis``, averaged over frames (integrates to the mean state count).

    Centres are folded into the cell first; bins span the cell's extent along the axis.
    """
    k = AXES[axis]
    lo, hi = math.inf, -math.inf
    for pc in pieces:
        corners = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(-1, 3)
        proj = np.einsum("cj,fjk->fck", corners.astype(float), np.asarray(pc.lattices))[..., k]
        lo, hi = min(lo, float(proj.min())), max(hi, float(proj.max()))
    edges = np.linspace(lo, hi, n_bins + 1)
    n_states = pieces[0].probs.shape[2]
    hist = np.zeros((n_states, n_bins))
    n_frames = 0.0
    for pc in pieces:
        lat = np.asarray(pc.lattices, dtype=np.float64)
        centres = set_centres(np.asarray(pc.coords, dtype=np.float64), lat, pc.target_sets)
        pos = np.einsum("fnj,fjk->fnk", fold_fractional(centres, lat[:, None]), lat)[..., k]
        w = pc.weights()
        for i in range(n_states):
            hist[i] += np.histogram(pos.ravel(), bins=edges, weights=w[..., i].ravel())[0]
        n_frames += pc.valid.any(axis=1).sum()
    return 0.5 * (edges[1:] + edges[:-1]), hist / (max(n_frames, 1.0) * np.diff(edges))


def positions_table(pieces: Sequence[Piece], max_rows: int = MAX_POSITION_ROWS) -> Any:
    """Folded fractional target positions with state probabilities, subsampled evenly."""
    import pandas as pd

    parts = []
    for pc in pieces:
        f_idx, s_idx = np.nonzero(pc.valid)
        parts.append((pc, f_idx, s_idx))
    total = sum(p[1].size for p in parts)
    keep = np.unique(np.linspace(0, total - 1, min(max_rows, total)).round().astype(np.int64))
    frames_out = []
    start = 0
    for pc, f_idx, s_idx in parts:
        sel = keep[(keep >= start) & (keep < start + f_idx.size)] - start
        start += f_idx.size
        if sel.size == 0:
            continue
        f, s = f_idx[sel], s_idx[sel]
        uf, inv = np.unique(f, return_inverse=True)
        lat = np.asarray(pc.lattices[uf], dtype=np.float64)
        centres = set_centres(np.asarray(pc.coords[uf], dtype=np.float64), lat, pc.target_sets)
        frac = fold_fractional(centres, lat[:, None])[inv, s]
        cols = {"traj": pc.source, "frame": f + pc.frame_offset, "target": s,
                "x_frac": frac[:, 0], "y_frac": frac[:, 1], "z_frac": frac[:, 2]}
        for i in range(pc.probs.shape[2]):
            cols[f"p{i}"] = pc.probs[f, s, i]
        frames_out.append(pd.DataFrame(cols))
    return pd.concat(frames_out, ignore_index=True)


def snapshot_atoms(piece: Piece, frame: int) -> Any:
    """ase.Atoms of one frame with per-atom ``state_prob_<i>`` (NaN for non-targets) and
    ``state`` (argmax, -1 for non-targets); members of a target set share its values."""
    from ase import Atoms

    f = frame if frame >= 0 else piece.n_frames + frame
    if not 0 <= f < piece.n_frames:
        raise InputError(
            f"structure/snapshot_frame: expected a frame in [-{piece.n_frames}, "
            f"{piece.n_frames}) of {piece.path}, got {frame}"
        )
    atoms = Atoms(numbers=np.asarray(piece.atom_types), positions=np.asarray(piece.coords[f]),
                  cell=np.asarray(piece.lattices[f]), pbc=True)
    n_states = piece.probs.shape[2]
    prob = np.full((atoms.get_global_number_of_atoms(), n_states), np.nan)
    for s, members in enumerate(piece.target_sets):
        prob[members] = piece.probs[f, s]
    state = np.where(np.isfinite(prob).all(axis=1), np.argmax(np.nan_to_num(prob, nan=-1.0), axis=1), -1)
    for i in range(n_states):
        atoms.new_array(f"state_prob_{i}", prob[:, i])
    atoms.new_array("state", state.astype(np.int64))
    atoms.info["frame"] = int(f + piece.frame_offset)
    atoms.info["source"] = piece.source
    return atoms


def _plot_snapshot(atoms: Any, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gdyn.files import atomic_path

    pos = atoms.get_positions()
    state = atoms.arrays["state"]
    p0 = atoms.arrays["state_prob_0"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    other = state < 0
    ax.scatter(pos[other, 0], pos[other, 2], s=8, c="0.8", label="other atoms")
    sc = ax.scatter(pos[~other, 0], pos[~other, 2], s=20, c=p0[~other], cmap="coolwarm",
                    vmin=0, vmax=1, edgecolors="k", linewidths=0.3)
    fig.colorbar(sc, ax=ax, label="probability of state 0")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("z (Å)")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


# ======================================================================================
# Steinhardt q3 (Supplementary Fig. 2)


def _upper_triangular(lattice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation Q, box matrix R) with lattice^T = Q R, R upper triangular, diag(R) > 0:
    freud wants its box vectors (columns of R) in this orientation."""
    q, r = np.linalg.qr(lattice.T)
    sign = np.sign(np.diag(r))
    sign[sign == 0] = 1
    return q * sign, sign[:, None] * r


def steinhardt_q3(positions: np.ndarray, lattice: np.ndarray, n_neighbors: int) -> np.ndarray:
    """q3 of every point from its ``n_neighbors`` nearest periodic neighbours (freud)."""
    import freud

    rot, box_matrix = _upper_triangular(np.asarray(lattice, dtype=np.float64))
    box = freud.box.Box.from_matrix(box_matrix)
    pts = box.wrap((np.asarray(positions, dtype=np.float64) @ rot).astype(np.float32))
    ql = freud.order.Steinhardt(l=3)
    ql.compute((box, pts), neighbors={"num_neighbors": int(n_neighbors), "exclude_ii": True})
    return np.asarray(ql.particle_order, dtype=np.float64)


def q3_distribution(
    pieces: Sequence[Piece], element: str, n_neighbors: int, n_bins: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres on [0, 1], density (S, n_bins)): p_i-weighted histogram of the
    targets' q3, normalised to unit area per state. Neighbours are atoms of ``element``."""
    from tqdm import tqdm

    z = _element_number(element, "structure/q3/element")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    n_states = pieces[0].probs.shape[2]
    hist = np.zeros((n_states, n_bins))
    for pc in pieces:
        if pc.target_sets.shape[1] != 1:
            raise InputError(f"{pc.path}: key 'target_index': q3 needs single-atom targets, "
                             f"got sets of {pc.target_sets.shape[1]}")
        atoms = np.flatnonzero(np.asarray(pc.atom_types) == z)
        rows = np.searchsorted(atoms, pc.target_sets[:, 0])
        if atoms.size == 0 or not np.array_equal(atoms[np.minimum(rows, atoms.size - 1)],
                                                 pc.target_sets[:, 0]):
            raise InputError(f"{pc.path}: key 'target_index': expected targets of element "
                             f"{element} (structure/q3/element)")
        w = pc.weights()
        for f in tqdm(range(0, pc.n_frames, stride), desc=f"q3 {pc.source}", leave=False):
            if not pc.valid[f].any():
                continue
            q3 = steinhardt_q3(np.asarray(pc.coords[f, atoms]), np.asarray(pc.lattices[f]),
                               n_neighbors)[rows]
            for i in range(n_states):
                hist[i] += np.histogram(q3, bins=edges, weights=w[f, :, i])[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        dens = hist / (hist.sum(axis=1, keepdims=True) * np.diff(edges)[None])
    return 0.5 * (edges[1:] + edges[:-1]), dens


# ======================================================================================
# CLI


def _settings_block(settings: dict[str, Any], key: str) -> dict[str, Any]:
    block = settings.get(key)
    if not isinstance(block, dict):
        raise InputError(f"--settings: key 'structure/{key}': missing or not a mapping")
    return block


def _analysis(args: argparse.Namespace) -> Analysis:
    return load_analysis(args.test, args.probs, args.summary)


def _cmd_rdf(args: argparse.Namespace) -> int:
    from gdyn.files import write_csv

    block = _settings_block(args.settings, "rdf")
    r_max = float(block.get("r_max_A", 8.0))
    n_bins = int(block.get("n_bins", 160))
    an = _analysis(args)
    table = state_weighted_rdf(an.pieces, block["elements"], r_max, n_bins,
                               int(block.get("stride", 1)))
    write_csv(args.out, table)
    return 0


def _cmd_charge(args: argparse.Namespace) -> int:
    import pandas as pd

    from gdyn.files import write_csv

    block = _settings_block(args.settings, "charge")
    try:
        rdf = pd.read_csv(args.rdf)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{args.rdf}: not a readable CSV ({exc})") from None
    need = {"state", "element", "r_A", "g", "n_coord"}
    if not need <= set(rdf.columns):
        raise InputError(f"{args.rdf}: expected columns {sorted(need)}, got {list(rdf.columns)}")
    write_csv(args.out, charge_table(rdf, block, str(args.rdf)))
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    import pandas as pd

    from gdyn.files import write_csv

    block = _settings_block(args.settings, "profile")
    axis = block.get("axis", "z")
    an = _analysis(args)
    pos, dens = state_profile(an.pieces, axis, int(block.get("n_bins", 60)))
    table = pd.concat([pd.DataFrame({"state": i, "axis": axis, "position_A": pos,
                                     "density": dens[i]}) for i in range(dens.shape[0])],
                      ignore_index=True)
    write_csv(args.out, table)
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    import ase.io

    from gdyn.files import atomic_path

    frame = int(args.settings.get("snapshot_frame", 0))
    an = _analysis(args)
    piece = an.pieces[0]
    atoms = snapshot_atoms(piece, frame)
    with atomic_path(args.out, suffix=".extxyz") as tmp:
        ase.io.write(tmp, atoms, format="extxyz")
    _plot_snapshot(atoms, args.png,
                   f"{piece.source} frame {atoms.info['frame']}: tau* = {an.tau_star_ps:g} ps")
    return 0


def _cmd_positions(args: argparse.Namespace) -> int:
    from gdyn.files import write_csv

    an = _analysis(args)
    write_csv(args.out, positions_table(an.pieces, args.max_rows))
    return 0


def _cmd_q3(args: argparse.Namespace) -> int:
    import pandas as pd

    from gdyn.files import write_csv

    block = _settings_block(args.settings, "q3")
    an = _analysis(args)
    q, dens = q3_distribution(an.pieces, block.get("element", "Si"),
                              int(block.get("n_neighbors", 4)), int(block.get("n_bins", 50)),
                              int(block.get("stride", 1)))
    table = pd.concat([pd.DataFrame({"state": i, "q3": q, "density": dens[i]})
                       for i in range(dens.shape[0])], ignore_index=True)
    write_csv(args.out, table)
    return 0


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    """--test / --probs / --summary / --settings, shared with gdyn.conduction."""
    from gdyn.cli import json_arg

    p.add_argument("--test", nargs="+", type=Path, required=True, metavar="PIECE.npz",
                   help="test split pieces")
    p.add_argument("--probs", nargs="+", type=Path, required=True, metavar="PROBS.npz",
                   help="the model's probs_test.npz at every lag (tau* picked via --summary)")
    p.add_argument("--summary", type=Path, required=True, metavar="SUMMARY.json",
                   help="Koopman summary.json of the model (tau_star_ps, probs_test)")
    p.add_argument("--settings", type=json_arg, default={}, metavar="JSON",
                   help="the system's 'structure' config section")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rdf``, ``charge``, ``profile``, ``snapshot``, ``positions`` and ``q3``."""
    from gdyn.cli import json_arg

    p = subparsers.add_parser("rdf", help="state-weighted RDF and coordination number (Eq. 12)")
    p.add_argument("out", type=Path, metavar="RDF.csv")
    add_analysis_args(p)
    p.set_defaults(func=_cmd_rdf)

    p = subparsers.add_parser("charge", help="charge integral per state (Supp. Note 3)")
    p.add_argument("rdf", type=Path, metavar="RDF.csv")
    p.add_argument("out", type=Path, metavar="CHARGE.csv")
    p.add_argument("--settings", type=json_arg, default={}, metavar="JSON",
                   help="the system's 'structure' config section")
    p.set_defaults(func=_cmd_charge)

    p = subparsers.add_parser("profile", help="distribution of each state along an axis")
    p.add_argument("out", type=Path, metavar="PROFILE.csv")
    add_analysis_args(p)
    p.set_defaults(func=_cmd_profile)

    p = subparsers.add_parser("snapshot", help="one frame's state probabilities (extxyz + PNG)")
    p.add_argument("out", type=Path, metavar="SNAPSHOT.extxyz")
    p.add_argument("--png", type=Path, required=True, metavar="SNAPSHOT.png")
    add_analysis_args(p)
    p.set_defaults(func=_cmd_snapshot)

    p = subparsers.add_parser("positions", help="folded target positions + state probabilities")
    p.add_argument("out", type=Path, metavar="POSITIONS.csv")
    p.add_argument("--max-rows", type=int, default=MAX_POSITION_ROWS)
    add_analysis_args(p)
    p.set_defaults(func=_cmd_positions)

    p = subparsers.add_parser("q3", help="Steinhardt q3 of the targets per state (Supp. Fig. 2)")
    p.add_argument("out", type=Path, metavar="Q3.csv")
    add_analysis_args(p)
    p.set_defaults(func=_cmd_q3)
