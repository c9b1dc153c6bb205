"""The standard inputs of every analysis: test pieces + probabilities at tau*, in Koopman order.

Every analysis reads the test split pieces, the analysed model's test probabilities at
every lag (the one at tau* is picked from the Koopman ``summary.json``) and reorders the
states like the Koopman outputs (decreasing stationary population), so state ``i`` here is
state ``i`` in every Koopman table and figure (:func:`load_analysis`). The API takes
trajectories and probabilities directly (:func:`as_pieces`); both end as :class:`Piece`.

The Koopman stage's state selection (``summary.json``: ``near_empty_states``,
``selection_thresholds``; :mod:`gdyn.koopman.selection`) is applied here, once, for every
analysis: the near-empty states get zero weight, the surviving states' probabilities are
renormalised over them, and rows whose surviving mass is below ``min_surviving_mass`` are
unscored (NaN), exactly as the Koopman stage estimated K. The tables keep a row for every
state and say which are near-empty (:func:`flag_states`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.config import lag_to_frames
from gdyn.errors import InputError
from gdyn.files import read_json
from gdyn.koopman import (
    covariance_sums,
    koopman_matrix,
    lag_pairs,
    load_probs,
    renormalise,
    spectrum,
    state_order,
)
from gdyn.settings import default
from gdyn.trajectory import Trajectory, load_trajectory

log = logging.getLogger(__name__)


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
    summary_path: Path | None = None
    near_empty_states: list[int] = field(default_factory=list)
    state_selection: str = ""


def _scalar(value: Any) -> Any:
    return np.asarray(value).reshape(()).item()


def element_number(symbol: str, where: str) -> int:
    """Atomic number of an element symbol; bad symbols raise :class:`InputError` at ``where``."""
    from ase.data import atomic_numbers

    if symbol not in atomic_numbers:
        raise InputError(f"{where}: expected an element symbol, got {symbol!r}")
    return int(atomic_numbers[symbol])


# --------------------------------------------------------------------------------------
# The API's inputs: trajectories + probabilities


def as_pieces(
    trajectories: Trajectory | Piece | Sequence[Trajectory | Piece],
    probs: np.ndarray | Sequence[np.ndarray] | None = None,
    frame_interval_ps: float | None = None,
) -> list[Piece]:
    """Pieces from what the API takes: trajectories with their probabilities.

    Parameters
    ----------
    trajectories : Trajectory, Piece or a list of them
        The MD data (a :class:`~gdyn.trajectory.Trajectory` or a slice of one).
        :class:`Piece` objects (as :func:`load_analysis` gives) carry their own
        probabilities and pass through when ``probs`` is None.
    probs : ndarray (F, n_sets, S) or a list of them, one per trajectory, optional
        State probabilities aligned frame by frame with the trajectory, states in the order
        the results should use; NaN rows are unscored frames (zero weight). A (F, S) array
        is one target set.
    frame_interval_ps : float, optional
        Time between frames, for trajectories without a ``frame_interval_ps`` extra (only
        the transport analysis needs it).

    Returns
    -------
    list of Piece
    """
    items = [trajectories] if isinstance(trajectories, Trajectory | Piece) else list(trajectories)
    if not items:
        raise InputError("trajectories: expected at least one trajectory, got none")
    if probs is None:
        if all(isinstance(t, Piece) for t in items):
            return list(items)  # type: ignore[arg-type]
        raise InputError("probs: expected the state probabilities of every trajectory, got None")
    plist = [probs] if isinstance(probs, np.ndarray) else list(probs)
    if len(plist) != len(items):
        raise InputError(f"probs: expected one array per trajectory ({len(items)}), "
                         f"got {len(plist)}")
    pieces = []
    for i, (t, p_raw) in enumerate(zip(items, plist, strict=True)):
        p = np.asarray(p_raw, dtype=np.float64)
        if isinstance(t, Piece):
            pieces.append(Piece(t.source, t.path, t.coords, t.lattices, t.atom_types,
                                t.target_sets, _check_probs(p, t.n_frames, t.target_sets, i),
                                t.frame_interval_ps, t.frame_offset))
            continue
        extras = t.extras
        if "source" in extras:
            source = str(_scalar(extras["source"]))
        else:
            source = t.path.stem if t.path is not None else f"trajectory{i}"
        fi = frame_interval_ps if frame_interval_ps is not None else t.frame_interval_ps
        offset = int(_scalar(extras["frame_offset"])) if "frame_offset" in extras else 0
        sets = t.target_sets
        pieces.append(Piece(source, t.path if t.path is not None else Path(source),
                            t.traj_coords, t.lattices, np.asarray(t.atom_types), sets,
                            _check_probs(p, t.n_frames, sets, i),
                            math.nan if fi is None else float(fi), offset))
    n_states = {pc.probs.shape[2] for pc in pieces}
    if len(n_states) != 1:
        raise InputError(f"probs: expected the same number of states for every trajectory, "
                         f"got {sorted(n_states)}")
    return pieces


def _check_probs(p: np.ndarray, n_frames: int, sets: np.ndarray, i: int) -> np.ndarray:
    if p.ndim == 2 and sets.shape[0] == 1:
        p = p[:, None, :]
    if p.ndim != 3 or p.shape[:2] != (n_frames, sets.shape[0]) or p.shape[2] < 2:
        raise InputError(f"probs[{i}]: expected shape ({n_frames}, {sets.shape[0]}, n_states>=2) "
                         f"(frames, target sets of trajectory {i}), got {p.shape}")
    return p


# --------------------------------------------------------------------------------------
# The workflow's inputs: split pieces, probs files, Koopman summary


def summary_lag_ps(summary: dict[str, Any]) -> Any:
    """The lag a Koopman summary's tables describe: ``tau_star_ps``, or ``analysis_lag_ps``
    when the data gave no tau* (``tau_star_ps`` null, issue 22)."""
    tau = summary.get("tau_star_ps")
    return summary.get("analysis_lag_ps") if tau is None else tau


def load_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Koopman ``summary.json`` with the keys this stage needs checked."""
    path = Path(path)
    summary = read_json(path)
    tau = summary_lag_ps(summary)
    if not isinstance(tau, int | float) or not math.isfinite(tau) or tau <= 0:
        key = "tau_star_ps" if summary.get("tau_star_ps") is not None else "analysis_lag_ps"
        raise InputError(f"{path}: key '{key}': expected a positive number, got {tau!r}")
    return summary


def read_probs(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A ``probs_{part}.npz`` (contract in docs/contracts.md) as a dict, validated by
    :func:`gdyn.koopman.load_probs` so both stages accept exactly the same files."""
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
    tau = float(summary_lag_ps(summary))
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


def _piece_meta(traj: Trajectory, path: Path) -> tuple[str, int, float | None]:
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


def population_order(pieces: Sequence[Piece], tau_frames: int) -> np.ndarray:
    """Raw state indices by decreasing stationary population of K(tau*) from these pieces
    (the mean probability when no lag pair exists or K has no unique stationary vector).

    K is :func:`gdyn.koopman.koopman_matrix` of :func:`gdyn.koopman.covariance_sums` over
    the lag pairs of every scored (frame, target set) row: each target set of each piece is
    its own sequence of rows for :func:`gdyn.koopman.lag_pairs`, so a pair never mixes sets
    or pieces and both of its ends are scored.
    """
    s = pieces[0].probs.shape[2]
    c00, c0t = np.zeros((s, s)), np.zeros((s, s))
    mean = np.zeros(s)
    for pc in pieces:
        frame, target = np.nonzero(pc.valid)
        i0, i1 = lag_pairs(target, frame, tau_frames)
        a, b, _ = covariance_sums(pc.probs[frame, target][:, None, :], i0, i1)
        c00 += a
        c0t += b
        mean += pc.weights().sum(axis=(0, 1))
    pop = mean
    if c00.trace() > 0:
        k = koopman_matrix(c00, c0t)
        # A repeated unit eigenvalue (no transitions between some states) leaves the
        # stationary vector undefined; the mean probability is then the population.
        if np.sort(np.abs(np.linalg.eigvals(k)))[-2] < 1.0 - 1e-8:
            pop = spectrum(k).stationary
    return state_order(pop)


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
    tau = float(summary_lag_ps(summary))
    ppath = tau_star_probs_path(probs_paths, summary, summary_path)
    probs = read_probs(ppath)
    n_states = int(probs["probs"].shape[2])
    fi_probs = float(_scalar(probs["frame_interval_ps"])) if "frame_interval_ps" in probs else None
    pieces: list[Piece] = []
    for raw in test_paths:
        path = Path(raw)
        traj = load_trajectory(path, mmap=True)
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
        order_arr = population_order(
            pieces, lag_to_frames(tau, pieces[0].frame_interval_ps))
        how = "stationary population of K(tau*) recomputed from the test probabilities"
    near, min_mass = summary_selection(summary, n_states, summary_path)
    for pc in pieces:
        pc.probs = apply_selection(pc.probs[..., order_arr], near, min_mass)
    log.info("tau* = %g ps from %s; states reordered %s (%s)", tau, ppath,
             order_arr.tolist(), how)
    sentence = str(summary.get("state_selection", ""))
    if near:
        log.info("near-empty states %s excluded (zero weight, surviving states renormalised, "
                 "rows with surviving mass < %g unscored): %s", near, min_mass, sentence)
    return Analysis(pieces, tau, n_states, order_arr.tolist(), how, ppath, summary,
                    Path(summary_path), near, sentence)


# --------------------------------------------------------------------------------------
# The Koopman stage's state selection, applied to every analysis


def summary_selection(
    summary: dict[str, Any], n_states: int, where: Any
) -> tuple[list[int], float]:
    """(near-empty states, minimum surviving mass) from a Koopman ``summary.json``; a
    summary without them (written before the selection existed) excludes nothing."""
    near = summary.get("near_empty_states") or []
    if not isinstance(near, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_states for i in near
    ) or len(set(near)) != len(near):
        raise InputError(
            f"{where}: key 'near_empty_states': expected distinct state indices in "
            f"0..{n_states - 1}, got {near!r}"
        )
    thresholds = summary.get("selection_thresholds") or {}
    min_mass = thresholds.get("min_surviving_mass", default("koopman", "min_surviving_mass"))
    if not isinstance(min_mass, int | float) or not 0.0 <= float(min_mass) <= 1.0:
        raise InputError(
            f"{where}: key 'selection_thresholds/min_surviving_mass': expected a number in "
            f"[0, 1], got {min_mass!r}"
        )
    return sorted(int(i) for i in near), float(min_mass)


def apply_selection(probs: np.ndarray, near_empty: Sequence[int],
                    min_mass: float = default("koopman", "min_surviving_mass")) -> np.ndarray:
    """(F, n, S) probabilities in Koopman order with the near-empty states excluded: their
    columns zero, the others renormalised over the surviving states, rows with less
    surviving mass than ``min_mass`` NaN (unscored). Unchanged when nothing is excluded."""
    if not len(near_empty):
        return probs
    n_states = probs.shape[-1]
    surviving = [i for i in range(n_states) if i not in set(near_empty)]
    q = renormalise(probs, surviving, min_mass)
    out = np.zeros(probs.shape, dtype=np.float64)
    out[..., surviving] = q
    out[~np.isfinite(q).all(axis=-1)] = np.nan
    return out


def flag_states(table: Any, near_empty: Sequence[int],
                columns: Sequence[str] = ("state",)) -> Any:
    """``table`` with a ``near_empty`` column: True on rows where any of ``columns`` is a
    near-empty state (their values rest on zero weight and are NaN or zero)."""
    near = {int(i) for i in near_empty}
    flag = np.zeros(len(table), dtype=bool)
    for c in columns:
        flag |= table[c].astype(int).isin(near).to_numpy()
    out = table.copy()
    out["near_empty"] = flag
    return out
