"""The Koopman API: ``KoopmanModel`` (with ``CKTest``, :mod:`.ck`, and the implied
timescales, :mod:`.timescales`).

deeptime's conventions: an estimator classmethod returns a model with its matrices and
spectrum as attributes; validation objects (implied timescales, Chapman-Kolmogorov test)
hold the numbers, give them as a tidy table (``to_frame``: exactly the columns of the
workflow's CSVs, docs/contracts.md) and draw themselves (``plot``: the paper's panel)::

    km = KoopmanModel.estimate(probs, lag_ps=10.0, frame_interval_ps=0.1, ci={"n": 5})
    km.timescales_ps, km.stationary_distribution, km.near_empty_states
    ck = km.ck_test(probs, steps=5)
    ck.passed, ck.worst(), ck.to_frame()
    implied_timescales({1.0: p1, 2.0: p2, 5.0: p5}, frame_interval_ps=0.1).plot()

Intervals come from the uncertainty engine (:mod:`~gdyn.koopman.uncertainty`): a block
bootstrap by default, the paper's CI groups on request. ``probs`` is the softmax output (F, n_sets, n_states) of one contiguous trajectory, a list
of such arrays, a :class:`~gdyn.koopman.probs.Probs` or a probs npz path (see
:func:`~gdyn.koopman.probs.as_probs`). ``ci`` selects the CI groups as the workflow's
``koopman.ci`` block does; without it the CI columns are NaN. ``selection`` applies the
near-empty rule (:mod:`~gdyn.koopman.selection`; default ``"auto"``): K is estimated on the
surviving states, which come first in population order, the near-empty ones after them.
``estimator`` is ``nonreversible`` (the paper's) or ``reversible``
(:mod:`~gdyn.koopman.estimate`).

The stage (:func:`gdyn.koopman.analysis.run_koopman`) is built on these objects, so a
notebook and the workflow get the same numbers from one code path. ``plot`` methods import
their panel from :mod:`gdyn.plots` inside the method: plotting sits above this package in
the import order, and its panels take the tidy tables, so there is no cycle.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman.ck import CKTest, grid_spec
from gdyn.koopman.eigen import (
    Spectrum,
    align_spectrum,
    ck_predictions,
    permute_states,
    spectrum,
    state_order,
    timescales_from_eigenvalues,
)
from gdyn.koopman.estimate import check_estimator, estimate_koopman, lag_pairs
from gdyn.koopman.kinetics import KINETICS_COLUMNS, lifetimes, mfpt_matrix
from gdyn.koopman.probs import Probs, ProbsLike, as_probs
from gdyn.koopman.selection import SelectionSpec, StateSelection, resolve_selection
from gdyn.koopman.uncertainty import CISpec, Replicates, replicate_koopman, resolve_replicates
from gdyn.koopman.verdict import DEFAULT_CK_ALPHA, DEFAULT_CK_TOLERANCE
from gdyn.layout import lag_label
from gdyn.settings import default

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["EIGEN_COLUMNS", "POPULATION_COLUMNS", "CKTest", "KoopmanModel"]

log = logging.getLogger(__name__)

EIGEN_COLUMNS = [
    "model",
    "n_states",
    "tau_ps",
    "process",
    "eigenvalue",
    "timescale_ps",
    "state",
    "component",
    "ci_low",
    "ci_high",
    "near_empty",
]
POPULATION_COLUMNS = [
    "model",
    "n_states",
    "tau_ps",
    "state",
    "population",
    "ci_low",
    "ci_high",
    "near_empty",
    "mean_probability",
    "effective_samples",
]


def _no_pairs(data: Probs, lf: int) -> InputError:
    return InputError(
        f"{data.path}: keys 'traj'/'frame': expected rows {lf} frames apart within one "
        f"trajectory (lag {lag_label(data.lag_ps)}), got none"
    )


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class KoopmanModel:
    """Koopman model ``K(tau) = C00^+ C01`` of the state probabilities at one lag.

    Build it with :meth:`estimate`. States are ordered surviving first, by decreasing
    stationary population, then the near-empty ones by decreasing mean probability: new
    state ``a`` is model output ``state_order[a]``. ``koopman_matrix``, ``spectrum``,
    ``group_matrices`` and ``group_spectra`` cover the s surviving states (states 0..s-1);
    the CI groups' eigenvector signs are aligned with the pooled ones.
    """

    lag_ps: float
    frame_interval_ps: float
    koopman_matrix: np.ndarray = field(repr=False)  # (s, s)
    state_order: np.ndarray = field(repr=False)  # (S,)
    spectrum: Spectrum = field(repr=False)
    group_matrices: np.ndarray = field(repr=False)  # (n_replicates, s, s)
    n_samples: int
    ci: CISpec = field(default=None, repr=False)
    selection: StateSelection | None = field(default=None, repr=False)
    estimator: str = default("koopman", "estimator")
    replicates: Replicates | None = field(default=None, repr=False)

    @classmethod
    def estimate(
        cls,
        probs: ProbsLike,
        lag_ps: float,
        frame_interval_ps: float | None = None,
        traj: np.ndarray | None = None,
        frame: np.ndarray | None = None,
        ci: CISpec = None,
        selection: SelectionSpec = "auto",
        estimator: str = default("koopman", "estimator"),
    ) -> KoopmanModel:
        """Estimate K at ``lag_ps`` from state probabilities, pooled over sets and rows.

        Parameters
        ----------
        probs : ndarray, list of ndarrays, Probs or path
            (F, n_sets, S) of one contiguous trajectory, one such array per trajectory, or
            a probs file (:func:`~gdyn.koopman.probs.as_probs`).
        lag_ps : float
            The lag tau (a whole number of frames).
        frame_interval_ps : float, optional
            Time between frames; required for arrays.
        traj, frame : (F,) int, optional
            Trajectory and frame of every row of an array ``probs`` (rows in any order,
            gaps allowed).
        ci : mapping, optional
            The uncertainty engine's settings as the config's ``koopman.ci`` block
            (``{"method": "bootstrap", "n": 500, "seed": 0}``, the default block rule;
            or the paper's groups ``{"method": "chunks", "n": 5}``,
            :mod:`~gdyn.koopman.uncertainty`), or a list of
            :class:`~gdyn.koopman.uncertainty.Group` of these rows; None: no CIs (NaN
            columns). ``group_matrices`` holds K on every replicate.
        selection : "auto", mapping, StateSelection or None
            The near-empty rule with default thresholds (``"auto"``), with given
            thresholds (``{"min_population": 0.005, "min_samples": 25}``), a ready
            selection, or None to keep every state.
        estimator : {"nonreversible", "reversible"}
            How K is estimated from the covariances (:mod:`~gdyn.koopman.estimate`).
        """
        check_estimator(estimator)
        data = as_probs(probs, lag_ps, frame_interval_ps, traj, frame)
        lf = data.frames_for(data.lag_ps)
        if lag_pairs(data.traj, data.frame, lf)[0].size == 0:
            raise _no_pairs(data, lf)
        sel = resolve_selection(selection, data, data.lag_ps)
        surv = sel.surviving
        excluded = sel.excluded
        ex_order = excluded[np.argsort(-np.nan_to_num(sel.population[excluded]), kind="stable")]
        s = surv.size
        if s == 0:
            empty = np.zeros((0, 0))
            reps = resolve_replicates(
                ci, data.traj, data.frame, data.n_sets, data.frame_interval_ps, data.lag_ps
            )
            n_rep = 0 if reps is None else reps.n
            return cls(
                lag_ps=data.lag_ps, frame_interval_ps=data.frame_interval_ps,
                koopman_matrix=empty, state_order=ex_order, spectrum=spectrum(empty),
                group_matrices=np.zeros((n_rep, 0, 0)),
                n_samples=0, ci=ci,
                selection=sel, estimator=estimator, replicates=reps,
            )  # fmt: skip
        q = sel.apply(data.probs)
        k, count = estimate_koopman(q, data.traj, data.frame, lf, estimator=estimator)
        if not np.all(np.isfinite(k)):
            raise _no_pairs(data, lf)
        within = state_order(spectrum(k).stationary)  # positions in ``surv``
        k = permute_states(k, within)
        spec = spectrum(k)
        qm = q[..., within]
        # Bootstrap blocks as long as the slowest process (and at least one lag).
        reps = resolve_replicates(
            ci, data.traj, data.frame, data.n_sets, data.frame_interval_ps,
            _block_want(spec, data.lag_ps, data.lag_ps),
        )  # fmt: skip
        if reps is None:
            g_k = np.zeros((0, s, s))
        else:
            g_k = replicate_koopman(qm, data.traj, data.frame, lf, reps, estimator)
        return cls(
            lag_ps=data.lag_ps,
            frame_interval_ps=data.frame_interval_ps,
            koopman_matrix=k,
            state_order=np.concatenate([surv[within], ex_order]).astype(np.int64),
            spectrum=spec,
            group_matrices=np.asarray(g_k).reshape(-1, s, s),
            n_samples=count,
            ci=ci,
            selection=sel,
            estimator=estimator,
            replicates=reps,
        )

    @cached_property
    def group_spectra(self) -> tuple[Spectrum, ...]:
        """Spectra of the replicate matrices, eigenvector signs aligned with the pooled ones
        (computed on first use: the CK test does not need them)."""
        return tuple(align_spectrum(spectrum(gk), self.spectrum) for gk in self.group_matrices)

    def __repr__(self) -> str:
        ts = np.round(self.timescales_ps, 4).tolist()
        excluded = f", near_empty_states={self.near_empty_states}" if self.near_empty_states else ""
        return (
            f"KoopmanModel(lag={lag_label(self.lag_ps)}, n_states={self.n_states}, "
            f"timescales_ps={ts}, n_groups={len(self.group_spectra)}{excluded})"
        )

    @property
    def n_states(self) -> int:
        """Every state of the model (surviving and near-empty)."""
        return int(self.state_order.size)

    @property
    def n_surviving(self) -> int:
        """States K is estimated on (states 0..n_surviving-1)."""
        return int(self.koopman_matrix.shape[0])

    @property
    def near_empty_states(self) -> list[int]:
        """The excluded states, in this model's numbering (the last ones)."""
        return list(range(self.n_surviving, self.n_states))

    @property
    def collapsed(self) -> bool:
        """Fewer than two surviving states, constant outputs or VAMP-2 ~ 1 (the selection's)."""
        if self.selection is not None:
            return self.selection.collapsed
        return self.n_surviving < 2

    @property
    def eigenvalues(self) -> np.ndarray:
        """(s,) complex; [0] is the stationary one, then slowest first."""
        return self.spectrum.eigenvalues

    @property
    def eigenvectors(self) -> np.ndarray:
        """(s, s) right eigenvectors (columns), ``sum_j pi_j r_j^2 = 1``, largest entry > 0.

        Column 0 is the constant vector of ones (eigenvalue 1); ``eigen.csv`` puts the
        stationary distribution in its place.
        """
        return self.spectrum.right

    @property
    def stationary_distribution(self) -> np.ndarray:
        """(s,) populations of the surviving states, decreasing, summing to 1."""
        return self.spectrum.stationary

    @property
    def timescales_ps(self) -> np.ndarray:
        """(s-1,) relaxation timescales in ps, slowest first."""
        return timescales_from_eigenvalues(self.spectrum.eigenvalues[1:], self.lag_ps)

    @property
    def lifetimes_ps(self) -> np.ndarray:
        """(s,) mean lifetime of each surviving state, ``tau / (1 - K_ii)`` in ps
        (:mod:`~gdyn.koopman.kinetics`)."""
        return lifetimes(self.koopman_matrix, self.lag_ps)

    @property
    def mfpt_ps(self) -> np.ndarray:
        """(s, s) mean first-passage times ``i -> j`` in ps between the surviving states
        (diagonal 0; :mod:`~gdyn.koopman.kinetics`)."""
        return mfpt_matrix(self.koopman_matrix, self.lag_ps)

    def kinetics_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``kinetics.csv``: lifetimes (``to_state`` empty) and MFPTs between the surviving
        states with the engine's intervals over the replicate matrices."""
        import pandas as pd

        del model  # the directory names the model; the columns are the contract's
        s = self.n_surviving
        g = self.group_matrices
        life_lo, life_hi = self.interval(lifetimes(g, self.lag_ps), log_scale=True)
        m_lo, m_hi = self.interval(mfpt_matrix(g, self.lag_ps), log_scale=True)
        life, mfpt = self.lifetimes_ps, self.mfpt_ps
        rows = [
            {"quantity": "lifetime", "from_state": i, "to_state": None, "value_ps": life[i],
             "ci_low_ps": life_lo[i], "ci_high_ps": life_hi[i]}
            for i in range(s)
        ]  # fmt: skip
        rows += [
            {"quantity": "mfpt", "from_state": i, "to_state": j, "value_ps": mfpt[i, j],
             "ci_low_ps": m_lo[i, j], "ci_high_ps": m_hi[i, j]}
            for i in range(s) for j in range(s) if i != j
        ]  # fmt: skip
        table = pd.DataFrame(rows, columns=KINETICS_COLUMNS)
        table["to_state"] = table["to_state"].astype("Int64")
        return table

    def interval(
        self, samples: np.ndarray, log_scale: bool = False, probability: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Interval of a quantity from its (R, ...) replicate values (NaN without CIs)."""
        x = np.asarray(samples, dtype=float)
        if self.replicates is None or x.shape[0] == 0:
            nan = np.full(x.shape[1:], np.nan)
            return nan, nan.copy()
        return self.replicates.interval(x, log_scale=log_scale, probability=probability)

    def model_probs(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities (F, n_sets, S) in model output order -> what K describes: the
        surviving states in this model's order, renormalised (rows mostly in excluded states
        NaN; see :meth:`StateSelection.apply`)."""
        cols = self.state_order[: self.n_surviving]
        if self.selection is None:
            return np.asarray(probs, dtype=np.float64)[..., cols]
        return self.selection.apply(probs, cols)

    def ck_test(
        self,
        probs: ProbsLike,
        steps: int,
        frame_interval_ps: float | None = None,
        traj: np.ndarray | None = None,
        frame: np.ndarray | None = None,
        tolerance: float = DEFAULT_CK_TOLERANCE,
        alpha: float = DEFAULT_CK_ALPHA,
        ci: CISpec | str = "model",
    ) -> CKTest:
        """CK test: this model's ``K(tau)^n`` against ``K(n tau)`` estimated from ``probs``.

        ``probs`` takes the forms of :meth:`estimate` (frame interval defaults to the
        model's) and goes through the model's state selection; CI groups follow the model's
        ``ci`` (a list of groups must fit these rows). On every replicate (bootstrap
        resample, with blocks at least ``steps`` lags long, or CI group) both
        ``K(tau)^n`` and ``K(n tau)`` are recomputed, so the verdict
        (:func:`~gdyn.koopman.verdict.ck_verdict_replicates`, family-wise error ``alpha``)
        tests their difference; ``tolerance`` decides elements whose difference has no
        spread (and every element without CIs). ``ci`` replaces the model's ``ci`` for the
        test (default ``"model"``: the model's).
        """
        if frame_interval_ps is None and not isinstance(probs, Probs | str | os.PathLike):
            frame_interval_ps = self.frame_interval_ps  # arrays: the model's frame interval
        data = as_probs(probs, self.lag_ps, frame_interval_ps, traj, frame)
        if data.n_states != self.n_states:
            raise ValueError(
                f"probs: expected {self.n_states} states like the model, got {data.n_states}"
            )
        reps = resolve_replicates(
            self.ci if isinstance(ci, str) and ci == "model" else ci,
            data.traj, data.frame, data.n_sets, data.frame_interval_ps,
            _block_want(self.spectrum, self.lag_ps, steps * self.lag_ps),
        )  # fmt: skip
        lf = data.frames_for(self.lag_ps)
        q = self.model_probs(data.probs)

        def ks(rows: Any, sets: Any) -> list[np.ndarray]:
            return [
                estimate_koopman(q, data.traj, data.frame, n * lf, rows, sets, self.estimator)[0]
                for n in range(1, steps + 1)
            ]

        s = self.n_surviving
        n_rep = 0 if reps is None else reps.n
        g_pred = np.zeros((n_rep, steps, s, s))
        g_est = np.zeros((n_rep, steps, s, s))
        starts: list[np.ndarray] = []
        # A bootstrap's sums give the pooled K too (every pair kept); groups drop the pairs
        # that straddle two groups, so their pooled K is estimated separately.
        pooled: list[np.ndarray] = []
        if reps is not None and s:
            k1 = None
            for n in range(1, steps + 1):
                kn = replicate_koopman(
                    q, data.traj, data.frame, n * lf, reps, self.estimator, starts,
                    pooled if reps.bootstrap else None,
                )  # (R, s, s): the same resamples at every step
                k1 = kn if k1 is None else k1
                g_est[:, n - 1] = kn
                g_pred[:, n - 1] = np.linalg.matrix_power(k1, n)
        if len(pooled) != steps:
            pooled = ks(None, None) if s else [np.zeros((0, 0))] * steps
        for n, k in enumerate(pooled[1:], start=2):
            if not np.all(np.isfinite(k)):
                log.warning(
                    "CK: no lag pairs at %d x tau* = %s; estimate is NaN",
                    n,
                    lag_label(n * self.lag_ps),
                )
        return CKTest(
            lag_ps=self.lag_ps,
            predicted=ck_predictions(self.koopman_matrix, steps),
            estimated=np.stack(pooled),
            group_predicted=g_pred,
            group_estimated=g_est,
            n_states=self.n_states,
            tolerance=float(tolerance),
            alpha=float(alpha),
            replicates=reps,
            # Independent starts per state and step: pairs n lags long overlap, so the
            # soft count of starts is divided by the pair length in frames.
            frame_interval_ps=float(data.frame_interval_ps),
            effective_starts=(
                np.array(starts) / (np.arange(1, steps + 1) * lf)[:, None] if starts else None
            ),
        )

    def _selection_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean probability, effective samples) per state in this model's order."""
        if self.selection is None:
            nan = np.full(self.n_states, np.nan)
            return nan, nan
        return (
            self.selection.population[self.state_order],
            self.selection.effective_samples[self.state_order],
        )

    def eigen_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``eigen.csv``: process 0 = stationary distribution, then right eigenvectors; one
        row per state of every process of the surviving model (near-empty states: NaN)."""
        import pandas as pd

        spec = self.spectrum
        s, total = self.n_surviving, self.n_states
        comp = spec.right.copy()
        if s:  # within [0, 1] as in populations.csv
            comp[:, 0] = np.clip(spec.stationary, 0.0, 1.0)
        n_groups = len(self.group_spectra)
        g_comp = np.array([g.right for g in self.group_spectra]).reshape(n_groups, s, s)
        if s:
            g_comp[:, :, 0] = np.array([g.stationary for g in self.group_spectra]).reshape(
                n_groups, s
            )
        lo, hi = self.interval(g_comp)
        if s:  # process 0 is the stationary distribution: a probability
            lo[:, 0], hi[:, 0] = self.interval(g_comp[:, :, 0], probability=True)
        ts = timescales_from_eigenvalues(spec.eigenvalues, self.lag_ps)
        nan = float("nan")
        rows = []
        for p in range(max(s, 1)):  # no surviving state: process 0 rows without numbers
            for j in range(total):
                ok = j < s
                rows.append(
                    {
                        "model": model,
                        "n_states": total,
                        "tau_ps": self.lag_ps,
                        "process": p,
                        "eigenvalue": float(np.real(spec.eigenvalues[p])) if s else nan,
                        "timescale_ps": float(ts[p]) if s else nan,
                        "state": j,
                        "component": comp[j, p] if ok else nan,
                        "ci_low": lo[j, p] if ok else nan,
                        "ci_high": hi[j, p] if ok else nan,
                        "near_empty": not ok,
                    }
                )
        return pd.DataFrame(rows, columns=EIGEN_COLUMNS)

    def populations_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``populations.csv``: the stationary distribution of the surviving states with
        95 % CIs; near-empty states flagged with NaN population, and every state's mean
        probability and effective samples (the selection rule's numbers)."""
        import pandas as pd

        s, total = self.n_surviving, self.n_states
        pi = np.full(total, np.nan)
        lo, hi = np.full(total, np.nan), np.full(total, np.nan)
        # A probability, reported within [0, 1] like its interval (a non-stochastic K of
        # soft memberships can put a rare state's stationary weight a little below 0).
        pi[:s] = np.clip(self.spectrum.stationary, 0.0, 1.0)
        lo[:s], hi[:s] = self.interval(
            np.array([g.stationary for g in self.group_spectra]).reshape(len(self.group_spectra), s),
            probability=True,
        )
        mean, n_eff = self._selection_columns()
        return pd.DataFrame(
            {
                "model": model,
                "n_states": total,
                "tau_ps": self.lag_ps,
                "state": np.arange(total),
                "population": pi,
                "ci_low": lo,
                "ci_high": hi,
                "near_empty": np.arange(total) >= s,
                "mean_probability": mean,
                "effective_samples": n_eff,
            },
            columns=POPULATION_COLUMNS,
        )

    def plot(self, ax: Axes | None = None) -> list[Axes]:
        """Right eigenvectors projected onto the states, one bar panel per relaxation.

        The panels (Figs. 3e, 4e) fill ``ax``'s place in its figure (``ax`` is removed) or
        a new figure; returns their axes.
        """
        from gdyn.plots import plot_eigen

        fig, spec = grid_spec(ax, 1.8 * max(self.n_surviving - 1, 1) + 0.8, 2.4, top_in=0.3)
        return plot_eigen(fig, spec, self.eigen_frame())



def _block_want(spec: Spectrum, lag_ps: float, span_ps: float) -> float:
    """The bootstrap block a quantity asks for: the slowest finite implied timescale of
    ``spec`` or ``span_ps`` (the longest lag the quantity spans), whichever is longer."""
    t = timescales_from_eigenvalues(spec.eigenvalues[1:], lag_ps)
    t = t[np.isfinite(t)]
    return max(float(span_ps), float(t.max()) if t.size else 0.0)
