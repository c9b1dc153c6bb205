"""State selection: near-empty states, their exclusion from K, and collapsed models.

A learned model can have states it (almost) never uses: the default toy's 8-state global
VAMPnet has two at populations 1.7e-4 and 6.6e-5. Their rows of ``K = C00^+ C01`` rest on a
handful of samples in a nearly singular direction of C00, and the CK test of such a row
deviates by up to 132 for a probability. The rule here decides which states K is estimated
on; the Koopman stage applies it to the tau* model (and to each lag's model for its
timescales and its CK verdict) and writes the outcome to ``summary.json``, from which every
analysis reads it (:mod:`gdyn.analysis.inputs`), so all outputs use one selection.

The rule
--------
For state ``i`` of a model at lag ``tau`` on the test data:

* population ``pi_i``: the mean of ``p_i`` over every scored (frame, target set) row;
* effective number of samples ``n_i``: the soft count of lag-tau transitions that start in
  state ``i``, counted in non-overlapping windows,
  ``n_i = sum_{pairs (t, t + tau), sets} p_i(x_t) / (tau / step)``, ``step`` the frame
  spacing of the rows (the gcd of the frame gaps within a trajectory). For one-hot
  probabilities it is the row sum of deeptime's ``sliding-effective`` count matrix (sliding
  counts divided by the lag), a standard estimate of the number of statistically
  independent transitions out of the state. Element ``j`` of state ``i``'s row of K then
  has a binomial standard error ``sqrt(K_ij (1 - K_ij) / n_i) <= 1 / (2 sqrt(n_i))``.

A state is **near-empty** when ``pi_i < min_population`` or ``n_i < min_samples``.
Defaults: ``min_population = 0.005`` (0.5 %: the toy's unused VAMPnet outputs sit at
1e-4 and below, the paper's smallest state is 7.0 % (PEO state 3), and the toy's real 4 %
tetrahedral state must stay) and ``min_samples = 10`` (every element of the row known to
+-0.16 at worst, one standard error; the toy's unused outputs have 1.3 and 0.5 effective
samples, while a real 20 % state of the end-to-end test's 1200-row test set has 24). The other states **survive**: K is estimated on them
from the renormalised probabilities ``q_i = p_i / sum_{j surviving} p_j``. A row whose
surviving mass ``sum_{j surviving} p_j`` is below ``min_mass = 0.5`` lies mostly in
excluded states; it is dropped (unscored: no lag pair starts or ends there, zero weight in
every analysis) rather than renormalised, which would blow its remaining noise up to a full
probability. With no excluded state the probabilities are used as they are.

A model is **collapsed** when fewer than two states survive, when the surviving
probabilities are constant (standard deviation below 1e-6 for every state: the network
outputs the same vector for every input), or when ``VAMP-2 - 1 < 1e-3`` (no singular value
of the whitened ``C01`` above 0.032: every process decays by more than three e-folds within
one lag, so the model resolves no dynamics at this lag).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman.estimate import C00_EPSILON, lag_pairs, lagged_covariances
from gdyn.koopman.probs import Probs
from gdyn.layout import lag_label
from gdyn.settings import default

__all__ = [
    "COLLAPSE_VAMP2",
    "CONSTANT_SD",
    "DEFAULT_MIN_POPULATION",
    "DEFAULT_MIN_SAMPLES",
    "MIN_SURVIVING_MASS",
    "SelectionSpec",
    "StateSelection",
    "effective_samples",
    "frame_step",
    "renormalise",
    "resolve_selection",
    "select_states",
    "state_populations",
    "vamp2_score",
]

DEFAULT_MIN_POPULATION = float(default("koopman", "min_population"))
DEFAULT_MIN_SAMPLES = float(default("koopman", "min_samples"))
MIN_SURVIVING_MASS = float(default("koopman", "min_surviving_mass"))
COLLAPSE_VAMP2 = 1e-3
CONSTANT_SD = 1e-6


def frame_step(traj: np.ndarray, frame: np.ndarray) -> int:
    """Frame spacing of the rows: the gcd of the frame gaps within each trajectory (>= 1)."""
    traj = np.asarray(traj, dtype=np.int64)
    frame = np.asarray(frame, dtype=np.int64)
    order = np.lexsort((frame, traj))
    same = np.diff(traj[order]) == 0
    gaps = np.diff(frame[order])[same]
    gaps = gaps[gaps > 0]
    return int(np.gcd.reduce(gaps)) if gaps.size else 1


def state_populations(probs: np.ndarray) -> np.ndarray:
    """(S,) mean probability of each state over the scored (row, target set) entries."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1, probs.shape[-1])
    ok = np.isfinite(p).all(axis=1)
    if not ok.any():
        return np.full(p.shape[1], np.nan)
    return p[ok].mean(axis=0)


def effective_samples(
    probs: np.ndarray, traj: np.ndarray, frame: np.ndarray, lag_frames: int
) -> np.ndarray:
    """(S,) soft count of lag transitions out of each state in non-overlapping windows.

    ``sum_{pairs, sets} p_i(x_t) / (lag_frames / step)`` with ``step`` from
    :func:`frame_step` (see the module docstring); pairs with an unscored end are skipped.
    """
    i0, i1 = lag_pairs(traj, frame, lag_frames)
    n_states = probs.shape[-1]
    if i0.size == 0:
        return np.zeros(n_states)
    a = np.asarray(probs[i0], dtype=np.float64).reshape(-1, n_states)
    b = np.asarray(probs[i1], dtype=np.float64).reshape(-1, n_states)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    window = max(1.0, lag_frames / frame_step(traj, frame))
    return a[ok].sum(axis=0) / window


def renormalise(
    probs: np.ndarray, columns: Sequence[int] | np.ndarray, min_mass: float = MIN_SURVIVING_MASS
) -> np.ndarray:
    """``probs[..., columns]`` renormalised to sum 1; rows with less mass than ``min_mass``
    in ``columns`` (and unscored rows) become NaN. float64, shape (..., len(columns))."""
    cols = np.asarray(columns, dtype=np.int64)
    q = np.asarray(probs, dtype=np.float64)[..., cols]
    mass = q.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = q / mass
    return np.where(mass >= min_mass, out, np.nan)


def vamp2_score(
    probs: np.ndarray, traj: np.ndarray, frame: np.ndarray, lag_frames: int,
    epsilon: float = C00_EPSILON,
) -> float:
    """VAMP-2 score ``||C00^-1/2 C01 C11^-1/2||_F^2`` of the (non-mean-free) probabilities.

    Softmax features span the constant function, so the score includes its singular value
    1 (it equals 1 + the mean-free score, deeptime's convention); NaN without pairs.
    """
    i0, i1 = lag_pairs(traj, frame, lag_frames)
    if i0.size == 0:
        return math.nan
    c00, c01, c11, count = lagged_covariances(probs, i0, i1, with_c11=True)
    if count == 0:
        return math.nan

    def inv_sqrt(c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((c + c.T) / 2 / count)
        keep = w > epsilon * max(float(w.max()), 0.0)
        return (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T

    assert c11 is not None
    m = inv_sqrt(c00) @ (c01 / count) @ inv_sqrt(c11)
    return float(np.sum(m**2))


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class StateSelection:
    """Which states of a model survive (raw model-output indices), and why.

    Attributes
    ----------
    keep : (S,) bool
        Surviving states, indexed by model output.
    population, effective_samples : (S,) float
        The rule's two numbers per state (see the module docstring).
    lag_ps : float
        The lag the effective samples are counted at.
    min_population, min_samples, min_mass : float
        The rule's thresholds.
    rows_dropped, rows_total : int
        Scored (row, target set) entries with less surviving mass than ``min_mass``, and
        all scored entries.
    vamp2 : float
        VAMP-2 score of the surviving probabilities at the lag.
    collapsed : bool
    collapse_reason : str
        Empty unless collapsed.
    """

    keep: np.ndarray
    population: np.ndarray
    effective_samples: np.ndarray
    lag_ps: float
    min_population: float = DEFAULT_MIN_POPULATION
    min_samples: float = DEFAULT_MIN_SAMPLES
    min_mass: float = MIN_SURVIVING_MASS
    rows_dropped: int = 0
    rows_total: int = 0
    vamp2: float = math.nan
    collapsed: bool = False
    collapse_reason: str = field(default="")

    @property
    def n_states(self) -> int:
        """All states of the model."""
        return int(self.keep.size)

    @property
    def surviving(self) -> np.ndarray:
        """Raw indices of the surviving states, ascending."""
        return np.flatnonzero(self.keep)

    @property
    def excluded(self) -> np.ndarray:
        """Raw indices of the near-empty states, ascending."""
        return np.flatnonzero(~self.keep)

    @property
    def n_surviving(self) -> int:
        return int(self.keep.sum())

    def apply(self, probs: np.ndarray, columns: Sequence[int] | np.ndarray | None = None
              ) -> np.ndarray:
        """The probabilities K is estimated from: surviving ``columns`` (raw indices,
        default all surviving in ascending order) renormalised, rows with less surviving
        mass than ``min_mass`` NaN. Unchanged (as float64) when no state is excluded."""
        cols = self.surviving if columns is None else np.asarray(columns, dtype=np.int64)
        if self.keep.all():
            return np.asarray(probs, dtype=np.float64)[..., cols]
        return renormalise(probs, cols, self.min_mass)

    def rule(self) -> str:
        """The rule with its thresholds, one phrase."""
        return (
            f"population < {self.min_population:g} or effective samples < "
            f"{self.min_samples:g} (soft count of non-overlapping {lag_label(self.lag_ps)} "
            f"transitions out of the state in the test data)"
        )

    def describe(self, order: Sequence[int] | np.ndarray | None = None) -> str:
        """One sentence saying what was done; states numbered as in ``order`` (new state a is
        raw state ``order[a]``; default the raw indices)."""
        new = (
            {int(raw): a for a, raw in enumerate(order)}
            if order is not None
            else {i: i for i in range(self.n_states)}
        )
        ex = sorted(self.excluded.tolist(), key=lambda raw: new[raw])
        if not ex:
            text = (
                f"All {self.n_states} states kept (near-empty rule: {self.rule()}); K is "
                f"estimated on all of them."
            )
        else:
            listed = ", ".join(
                f"{new[raw]} (population {self.population[raw]:.2g}, effective samples "
                f"{self.effective_samples[raw]:.3g})"
                for raw in ex
            )
            word = "State" if len(ex) == 1 else "States"
            text = (
                f"{word} {listed} near-empty (rule: {self.rule()}) and excluded: K is estimated "
                f"on the {self.n_surviving} surviving states with probabilities renormalised "
                f"over them; {self.rows_dropped} of {self.rows_total} (frame, target set) "
                f"rows with surviving mass < {self.min_mass:g} dropped (unscored). Excluded "
                f"states keep their rows in every table, flagged, with no estimate."
            )
        if self.collapsed:
            text += f" Model collapsed: {self.collapse_reason}."
        return text

    def thresholds(self) -> dict[str, float]:
        """The rule's thresholds (``summary.json`` ``selection_thresholds``)."""
        return {
            "min_population": float(self.min_population),
            "min_samples": float(self.min_samples),
            "min_surviving_mass": float(self.min_mass),
        }


def select_states(
    probs: Probs,
    lag_ps: float | None = None,
    min_population: float = DEFAULT_MIN_POPULATION,
    min_samples: float = DEFAULT_MIN_SAMPLES,
    min_mass: float = MIN_SURVIVING_MASS,
) -> StateSelection:
    """Apply the near-empty rule (module docstring) to one model's test probabilities.

    Parameters
    ----------
    probs : Probs
        The model's probabilities (:func:`~gdyn.koopman.probs.as_probs` makes one).
    lag_ps : float, optional
        The lag the model is for (default ``probs.lag_ps``).
    min_population, min_samples, min_mass : float
        Thresholds of the rule.

    Returns
    -------
    StateSelection
    """
    lag = float(probs.lag_ps if lag_ps is None else lag_ps)
    lf = probs.frames_for(lag)
    pop = state_populations(probs.probs)
    n_eff = effective_samples(probs.probs, probs.traj, probs.frame, lf)
    keep = (pop >= min_population) & (n_eff >= min_samples)
    flat = np.asarray(probs.probs, dtype=np.float64).reshape(-1, probs.n_states)
    scored = np.isfinite(flat).all(axis=1)
    mass = flat[scored][:, keep].sum(axis=1)
    dropped = int((mass < min_mass).sum()) if not keep.all() else 0
    reasons = []
    vamp2 = math.nan
    if keep.sum() < 2:
        reasons.append(f"{int(keep.sum())} state(s) survive the near-empty rule (fewer than two)")
    else:
        cols = np.flatnonzero(keep)
        q = probs.probs[..., cols] if keep.all() else renormalise(probs.probs, cols, min_mass)
        qf = np.asarray(q, dtype=np.float64).reshape(-1, cols.size)
        qf = qf[np.isfinite(qf).all(axis=1)]
        if qf.shape[0] < 2 or float(qf.std(axis=0).max()) < CONSTANT_SD:
            reasons.append("the surviving state probabilities are constant over the test data")
        vamp2 = vamp2_score(q, probs.traj, probs.frame, lf)
        if not reasons and not (vamp2 - 1.0 >= COLLAPSE_VAMP2):
            reasons.append(
                f"VAMP-2 - 1 = {vamp2 - 1.0:.2g} < {COLLAPSE_VAMP2:g} at {lag_label(lag)} (no "
                f"process survives one lag)"
            )
    return StateSelection(
        keep=keep,
        population=pop,
        effective_samples=n_eff,
        lag_ps=lag,
        min_population=float(min_population),
        min_samples=float(min_samples),
        min_mass=float(min_mass),
        rows_dropped=dropped,
        rows_total=int(scored.sum()),
        vamp2=vamp2,
        collapsed=bool(reasons),
        collapse_reason="; ".join(reasons),
    )


# What the API accepts as ``selection``: "auto" (the rule with its default thresholds), a
# mapping of thresholds ({"min_population": ..., "min_samples": ...}), a ready
# StateSelection, or None (keep every state).
SelectionSpec = str | Mapping[str, Any] | StateSelection | None

_THRESHOLD_KEYS = ("min_population", "min_samples", "min_surviving_mass")


def resolve_selection(selection: SelectionSpec, probs: Probs, lag_ps: float) -> StateSelection:
    """The :class:`StateSelection` a ``selection`` argument stands for on ``probs``."""
    if isinstance(selection, StateSelection):
        if selection.n_states != probs.n_states:
            raise ValueError(
                f"selection: expected {probs.n_states} states like the probs, got "
                f"{selection.n_states}"
            )
        return selection
    if selection is None:
        keep = np.ones(probs.n_states, dtype=bool)
        return StateSelection(
            keep=keep,
            population=state_populations(probs.probs),
            effective_samples=effective_samples(
                probs.probs, probs.traj, probs.frame, probs.frames_for(lag_ps)
            ),
            lag_ps=float(lag_ps),
            min_population=0.0,
            min_samples=0.0,
        )
    if isinstance(selection, str):
        if selection != "auto":
            raise ValueError(f"selection: expected 'auto', a mapping or None, got {selection!r}")
        return select_states(probs, lag_ps)
    if isinstance(selection, Mapping):
        unknown = sorted(set(selection) - set(_THRESHOLD_KEYS))
        if unknown:
            raise InputError(
                f"koopman settings: expected selection keys among {', '.join(_THRESHOLD_KEYS)}, "
                f"got {', '.join(unknown)}"
            )
        return select_states(
            probs,
            lag_ps,
            float(selection.get("min_population", DEFAULT_MIN_POPULATION)),
            float(selection.get("min_samples", DEFAULT_MIN_SAMPLES)),
            float(selection.get("min_surviving_mass", MIN_SURVIVING_MASS)),
        )
    raise TypeError(f"selection: expected 'auto', a mapping, a StateSelection or None, "
                    f"got {type(selection).__name__}")
