"""The Koopman API: ``KoopmanModel``, ``CKTest``, ``ImpliedTimescales``, ``implied_timescales``.

deeptime's conventions: an estimator classmethod returns a model with its matrices and
spectrum as attributes; validation objects (implied timescales, Chapman-Kolmogorov test)
hold the numbers, give them as a tidy table (``to_frame``: exactly the columns of the
workflow's CSVs, docs/contracts.md) and draw themselves (``plot``: the paper's panel)::

    km = KoopmanModel.estimate(probs, lag_ps=10.0, frame_interval_ps=0.1, ci={"n": 5})
    km.timescales_ps, km.stationary_distribution
    km.ck_test(probs, steps=5).to_frame()
    implied_timescales({1.0: p1, 2.0: p2, 5.0: p5}, frame_interval_ps=0.1).plot()

``probs`` is the softmax output (F, n_sets, n_states) of one contiguous trajectory, a list
of such arrays, a :class:`~gdyn.koopman.probs.Probs` or a probs npz path (see
:func:`~gdyn.koopman.probs.as_probs`). ``ci`` selects the CI groups as the workflow's
``koopman.ci`` block does; without it the CI columns are NaN. States are ordered by
decreasing stationary population (state 0 = most populated) in every result.

The stage (:func:`gdyn.koopman.analysis.run_koopman`) is built on these objects, so a
notebook and the workflow get the same numbers from one code path. ``plot`` methods import
their panel from :mod:`gdyn.plots` inside the method: plotting sits above this package in
the import order, and its panels take the tidy tables, so there is no cycle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman.ci import CISpec, Group, resolve_groups, t_interval
from gdyn.koopman.estimate import estimate_koopman
from gdyn.koopman.probs import Probs, ProbsLike, as_probs
from gdyn.koopman.spectrum import (
    Spectrum,
    align_spectrum,
    ck_deviation,
    ck_predictions,
    permute_states,
    spectrum,
    state_order,
    timescales_from_eigenvalues,
)
from gdyn.koopman.tau_star import TauStar, select_tau_star
from gdyn.layout import lag_label

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "CKTest",
    "ImpliedTimescales",
    "KoopmanModel",
    "LagResult",
    "analyse_lag",
    "implied_timescales",
]

log = logging.getLogger(__name__)

TIMESCALES_COLUMNS = [
    "model",
    "n_states",
    "lag_ps",
    "process",
    "eigenvalue",
    "timescale_ps",
    "ci_low_ps",
    "ci_high_ps",
]


def _new_figure(width_in: float, height_in: float) -> Any:
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width_in, height_in))


def _grid_spec(ax: Axes | None, width_in: float, height_in: float, top_in: float) -> Any:
    """The SubplotSpec a grid panel fills: ``ax``'s place (``ax`` is removed) or a new figure."""
    if ax is not None:
        spec = ax.get_subplotspec()
        fig = ax.figure
        ax.remove()
        return fig, spec
    fig = _new_figure(width_in, height_in)
    # Room above the grid for the title and legend the panel puts there.
    return fig, fig.add_gridspec(1, 1, top=1.0 - top_in / height_in, bottom=0.5 / height_in)[0]


# --------------------------------------------------------------------------------------
# Implied timescales


@dataclass
class LagResult:
    """Timescales of one lag's model: pooled and per CI group."""

    lag_ps: float
    eigenvalues: np.ndarray  # (S-1,) complex, slowest first (stationary excluded)
    timescales: np.ndarray  # (S-1,)
    group_timescales: np.ndarray  # (n_groups, S-1)
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_samples: int


def analyse_lag(data: Probs, groups: Sequence[Group]) -> LagResult:
    """Pooled and per-group timescales of the model trained at ``data.lag_ps``.

    Raises :class:`InputError` when ``data`` has no pair of rows ``lag`` apart.
    """
    lf = data.frames_for(data.lag_ps)
    k, count = estimate_koopman(data.probs, data.traj, data.frame, lf)
    if count == 0:
        raise InputError(
            f"{data.path}: keys 'traj'/'frame': expected rows {lf} frames apart within one "
            f"trajectory (lag {lag_label(data.lag_ps)}), got none"
        )
    spec = spectrum(k)
    ts = timescales_from_eigenvalues(spec.eigenvalues[1:], data.lag_ps)
    per_group = []
    for g in groups:
        kg, _ = estimate_koopman(data.probs, data.traj, data.frame, lf, g.rows, g.sets)
        per_group.append(timescales_from_eigenvalues(spectrum(kg).eigenvalues[1:], data.lag_ps))
    group_ts = np.array(per_group).reshape(len(groups), len(ts))
    low, high = t_interval(group_ts, log_scale=True)
    return LagResult(data.lag_ps, spec.eigenvalues[1:], ts, group_ts, low, high, count)


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class ImpliedTimescales:
    """Relaxation timescales ``t_i(tau) = -tau / ln|lambda_i(tau)|`` over a lag grid.

    One :class:`LagResult` per lag, in the order given (the workflow's is ascending).
    Arrays are (n_lags, n_states - 1), slowest process first; CIs are 95 % Student-t
    intervals on ``ln t`` over the CI groups (NaN without groups).
    """

    results: tuple[LagResult, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))
        if not self.results:
            raise ValueError("ImpliedTimescales: expected at least one lag, got none")

    def __repr__(self) -> str:
        lags = ", ".join(lag_label(x) for x in self.lags_ps)
        return f"ImpliedTimescales(n_states={self.n_states}, lags=[{lags}])"

    @property
    def lags_ps(self) -> np.ndarray:
        """(n_lags,) lag times in ps."""
        return np.array([r.lag_ps for r in self.results], dtype=float)

    @property
    def n_states(self) -> int:
        return len(self.results[0].timescales) + 1

    @property
    def eigenvalues(self) -> np.ndarray:
        """(n_lags, S-1) complex eigenvalues of K(tau), stationary one excluded."""
        return np.array([r.eigenvalues for r in self.results])

    @property
    def timescales_ps(self) -> np.ndarray:
        """(n_lags, S-1) timescales in ps, slowest first."""
        return np.array([r.timescales for r in self.results])

    @property
    def ci_low_ps(self) -> np.ndarray:
        return np.array([r.ci_low for r in self.results])

    @property
    def ci_high_ps(self) -> np.ndarray:
        return np.array([r.ci_high for r in self.results])

    @property
    def n_samples(self) -> np.ndarray:
        """(n_lags,) (pair, target set) samples pooled at each lag."""
        return np.array([r.n_samples for r in self.results], dtype=np.int64)

    def select_tau_star(self) -> TauStar:
        """The automatic tau* of this grid (:func:`~gdyn.koopman.tau_star.select_tau_star`)."""
        return select_tau_star(
            [r.lag_ps for r in self.results], self.timescales_ps, self.ci_low_ps, self.ci_high_ps
        )

    def to_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``timescales.csv``: one row per (lag, process); ``model`` fills the model column."""
        import pandas as pd

        n_states = self.n_states
        rows = []
        for r in self.results:
            for i in range(len(r.timescales)):
                rows.append(
                    {
                        "model": model,
                        "n_states": n_states,
                        "lag_ps": r.lag_ps,
                        "process": i + 1,
                        "eigenvalue": float(np.real(r.eigenvalues[i])),
                        "timescale_ps": float(r.timescales[i]),
                        "ci_low_ps": float(r.ci_low[i]),
                        "ci_high_ps": float(r.ci_high[i]),
                    }
                )
        return pd.DataFrame(rows, columns=TIMESCALES_COLUMNS)

    def plot(
        self,
        ax: Axes | None = None,
        tau_star_ps: float | None = None,
        title: str | None = None,
        unit: tuple[str, float] | None = None,
    ) -> Axes:
        """Timescales vs lag with CI bands and the ``t = tau`` line (Figs. 2-4 panel d).

        Draws into ``ax`` (a new figure when None) and returns it.
        """
        from gdyn.plots import plot_timescales

        if ax is None:
            ax = _new_figure(3.4, 2.6).add_subplot()
        plot_timescales(ax, self.to_frame(), tau_star_ps, title=title, unit=unit)
        return ax


def implied_timescales(
    probs: ProbsLike | Mapping[float, ProbsLike],
    frame_interval_ps: float | None = None,
    lags_ps: Sequence[float] | None = None,
    traj: np.ndarray | None = None,
    frame: np.ndarray | None = None,
    ci: CISpec = None,
) -> ImpliedTimescales:
    """Implied timescales over a lag grid, with 95 % CIs over CI groups.

    Parameters
    ----------
    probs : mapping or probs
        ``{lag_ps: probs}``, one model's output per lag (as the workflow trains them; each
        value is loaded when its lag is analysed, so paths keep memory low); or one probs
        analysed at every lag of ``lags_ps``. Any form :func:`~gdyn.koopman.probs.as_probs`
        takes.
    frame_interval_ps : float, optional
        Time between frames (ps); required unless the probs are files / ``Probs``.
    lags_ps : sequence of float, optional
        The lag grid for a single probs (ignored with a mapping).
    traj, frame : (F,) int, optional
        Trajectory and frame of every row of an array probs.
    ci : mapping, optional
        CI groups as the config's ``koopman.ci`` block (``{"method": "chunks", "n": 5}``);
        None: CI columns are NaN.

    Returns
    -------
    ImpliedTimescales
        Lags in ascending order.
    """
    if isinstance(probs, Mapping):
        items = sorted(((float(lag), value) for lag, value in probs.items()), key=lambda x: x[0])
    else:
        if lags_ps is None or len(lags_ps) == 0:
            raise ValueError("lags_ps: expected the lag grid for a single probs, got none")
        base = as_probs(probs, min(lags_ps), frame_interval_ps, traj, frame)
        items = [(float(lag), base) for lag in sorted(lags_ps)]
        frame_interval_ps = traj = frame = None  # carried by ``base`` now
    results = []
    for lag, value in items:
        data = as_probs(value, lag, frame_interval_ps, traj, frame)
        groups = resolve_groups(ci, data.traj, data.frame, data.n_sets)
        results.append(analyse_lag(data, groups))
    return ImpliedTimescales(tuple(results))


# --------------------------------------------------------------------------------------
# Koopman model at one lag and its CK test


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class CKTest:
    """Chapman-Kolmogorov test: ``K(tau)^n`` (predicted) against ``K(n tau)`` (estimated).

    Arrays are (steps, S, S), row = start state, column = end state, in the model's state
    order; ``group_*`` are the same per CI group (n_groups, steps, S, S).
    """

    lag_ps: float
    predicted: np.ndarray = field(repr=False)
    estimated: np.ndarray = field(repr=False)
    group_predicted: np.ndarray = field(repr=False)
    group_estimated: np.ndarray = field(repr=False)

    @property
    def steps(self) -> int:
        return int(self.predicted.shape[0])

    @property
    def n_states(self) -> int:
        return int(self.predicted.shape[-1])

    @property
    def max_deviation(self) -> float:
        """Largest ``|predicted - estimated|`` over steps and state pairs."""
        return ck_deviation(self.predicted, self.estimated)

    def to_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``ck.csv``: one row per (step, from_state, to_state) with 95 % CIs."""
        import pandas as pd

        plo, phi = t_interval(self.group_predicted)
        elo, ehi = t_interval(self.group_estimated)
        rows = []
        steps, s, _ = self.predicted.shape
        for n in range(steps):
            for i in range(s):
                for j in range(s):
                    rows.append(
                        {
                            "model": model,
                            "n_states": s,
                            "tau_ps": self.lag_ps,
                            "step": n + 1,
                            "lag_ps": (n + 1) * self.lag_ps,
                            "from_state": i,
                            "to_state": j,
                            "predicted": self.predicted[n, i, j],
                            "predicted_ci_low": plo[n, i, j],
                            "predicted_ci_high": phi[n, i, j],
                            "estimated": self.estimated[n, i, j],
                            "estimated_ci_low": elo[n, i, j],
                            "estimated_ci_high": ehi[n, i, j],
                        }
                    )
        return pd.DataFrame(rows)

    def plot(self, ax: Axes | None = None, title: str | None = None) -> list[Axes]:
        """The CK grid (Figs. 3f, 4f): predicted line with CI band, estimates with CI bars.

        The S x S grid fills ``ax``'s place in its figure (``ax`` is removed) or a new
        figure; returns the grid's axes, row-major.
        """
        from gdyn.plots import plot_ck

        n = self.n_states
        fig, spec = _grid_spec(ax, 1.1 * n + 1.0, 0.9 * n + 1.4, top_in=0.6)
        return plot_ck(fig, spec, self.to_frame(), title=title)


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class KoopmanModel:
    """Koopman model ``K(tau) = C00^+ C01`` of the state probabilities at one lag.

    Build it with :meth:`estimate`. States are ordered by decreasing stationary population:
    new state ``a`` is model output ``state_order[a]``. ``group_matrices`` and
    ``group_spectra`` are the CI groups' estimates in the same basis (eigenvector signs
    aligned with the pooled ones).
    """

    lag_ps: float
    frame_interval_ps: float
    koopman_matrix: np.ndarray = field(repr=False)  # (S, S)
    state_order: np.ndarray = field(repr=False)  # (S,)
    spectrum: Spectrum = field(repr=False)
    group_matrices: np.ndarray = field(repr=False)  # (n_groups, S, S)
    group_spectra: tuple[Spectrum, ...] = field(repr=False)
    n_samples: int
    ci: CISpec = field(default=None, repr=False)

    @classmethod
    def estimate(
        cls,
        probs: ProbsLike,
        lag_ps: float,
        frame_interval_ps: float | None = None,
        traj: np.ndarray | None = None,
        frame: np.ndarray | None = None,
        ci: CISpec = None,
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
            CI groups as the config's ``koopman.ci`` block (``{"method": "chunks", "n": 5,
            "seed": 0}``), or a list of :class:`~gdyn.koopman.ci.Group` of these rows;
            None: no CIs (NaN columns).
        """
        data = as_probs(probs, lag_ps, frame_interval_ps, traj, frame)
        groups = resolve_groups(ci, data.traj, data.frame, data.n_sets)
        lf = data.frames_for(data.lag_ps)
        k, count = estimate_koopman(data.probs, data.traj, data.frame, lf)
        if not np.all(np.isfinite(k)):
            raise InputError(
                f"{data.path}: keys 'traj'/'frame': expected rows {lf} frames apart within one "
                f"trajectory (lag {lag_label(data.lag_ps)}), got none"
            )
        order = state_order(spectrum(k).stationary)
        k = permute_states(k, order)
        spec = spectrum(k)
        g_k, g_spec = [], []
        for g in groups:
            gk = estimate_koopman(data.probs, data.traj, data.frame, lf, g.rows, g.sets)[0]
            gk = permute_states(gk, order)
            g_k.append(gk)
            g_spec.append(align_spectrum(spectrum(gk), spec))
        n = data.n_states
        return cls(
            lag_ps=data.lag_ps,
            frame_interval_ps=data.frame_interval_ps,
            koopman_matrix=k,
            state_order=order,
            spectrum=spec,
            group_matrices=np.array(g_k).reshape(len(groups), n, n),
            group_spectra=tuple(g_spec),
            n_samples=count,
            ci=ci,
        )

    def __repr__(self) -> str:
        ts = np.round(self.timescales_ps, 4).tolist()
        return (
            f"KoopmanModel(lag={lag_label(self.lag_ps)}, n_states={self.n_states}, "
            f"timescales_ps={ts}, n_groups={len(self.group_spectra)})"
        )

    @property
    def n_states(self) -> int:
        return int(self.koopman_matrix.shape[0])

    @property
    def eigenvalues(self) -> np.ndarray:
        """(S,) complex; [0] is the stationary one, then slowest first."""
        return self.spectrum.eigenvalues

    @property
    def eigenvectors(self) -> np.ndarray:
        """(S, S) right eigenvectors (columns), ``sum_j pi_j r_j^2 = 1``, largest entry > 0.

        Column 0 is the constant vector of ones (eigenvalue 1); ``eigen.csv`` puts the
        stationary distribution in its place.
        """
        return self.spectrum.right

    @property
    def stationary_distribution(self) -> np.ndarray:
        """(S,) state populations, decreasing."""
        return self.spectrum.stationary

    @property
    def timescales_ps(self) -> np.ndarray:
        """(S-1,) relaxation timescales in ps, slowest first."""
        return timescales_from_eigenvalues(self.spectrum.eigenvalues[1:], self.lag_ps)

    def ck_test(
        self,
        probs: ProbsLike,
        steps: int,
        frame_interval_ps: float | None = None,
        traj: np.ndarray | None = None,
        frame: np.ndarray | None = None,
    ) -> CKTest:
        """CK test: this model's ``K(tau)^n`` against ``K(n tau)`` estimated from ``probs``.

        ``probs`` takes the forms of :meth:`estimate` (frame interval defaults to the
        model's); CI groups follow the model's ``ci`` (a list of groups must fit these
        rows), and the predictions' CIs come from the model's group matrices.
        """
        if frame_interval_ps is None and not isinstance(probs, Probs | str | os.PathLike):
            frame_interval_ps = self.frame_interval_ps  # arrays: the model's frame interval
        data = as_probs(probs, self.lag_ps, frame_interval_ps, traj, frame)
        if data.n_states != self.n_states:
            raise ValueError(
                f"probs: expected {self.n_states} states like the model, got {data.n_states}"
            )
        groups = resolve_groups(self.ci, data.traj, data.frame, data.n_sets)
        lf = data.frames_for(self.lag_ps)
        order = self.state_order

        def ks(rows: Any, sets: Any) -> list[np.ndarray]:
            return [
                permute_states(
                    estimate_koopman(data.probs, data.traj, data.frame, n * lf, rows, sets)[0],
                    order,
                )
                for n in range(1, steps + 1)
            ]

        pooled = ks(None, None)
        for n, k in enumerate(pooled[1:], start=2):
            if not np.all(np.isfinite(k)):
                log.warning(
                    "CK: no lag pairs at %d x tau* = %s; estimate is NaN",
                    n,
                    lag_label(n * self.lag_ps),
                )
        s = self.n_states
        g_pred = [ck_predictions(gk, steps) for gk in self.group_matrices]
        g_est = [np.stack(ks(g.rows, g.sets)) for g in groups]
        return CKTest(
            lag_ps=self.lag_ps,
            predicted=ck_predictions(self.koopman_matrix, steps),
            estimated=np.stack(pooled),
            group_predicted=np.array(g_pred).reshape(len(g_pred), steps, s, s),
            group_estimated=np.array(g_est).reshape(len(g_est), steps, s, s),
        )

    def eigen_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``eigen.csv``: process 0 = stationary distribution, then right eigenvectors."""
        import pandas as pd

        spec = self.spectrum
        comp = spec.right.copy()
        comp[:, 0] = spec.stationary
        n = comp.shape[0]
        g_comp = np.array([g.right for g in self.group_spectra]).reshape(-1, n, n)
        g_comp[:, :, 0] = np.array([g.stationary for g in self.group_spectra]).reshape(-1, n)
        lo, hi = t_interval(g_comp)
        ts = timescales_from_eigenvalues(spec.eigenvalues, self.lag_ps)
        rows = []
        for p in range(comp.shape[1]):
            for j in range(comp.shape[0]):
                rows.append(
                    {
                        "model": model,
                        "n_states": n,
                        "tau_ps": self.lag_ps,
                        "process": p,
                        "eigenvalue": float(np.real(spec.eigenvalues[p])),
                        "timescale_ps": float(ts[p]),
                        "state": j,
                        "component": comp[j, p],
                        "ci_low": lo[j, p],
                        "ci_high": hi[j, p],
                    }
                )
        return pd.DataFrame(rows)

    def populations_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``populations.csv``: the stationary distribution with 95 % CIs."""
        import pandas as pd

        pi = self.spectrum.stationary
        lo, hi = t_interval(
            np.array([g.stationary for g in self.group_spectra]).reshape(-1, len(pi))
        )
        return pd.DataFrame(
            {
                "model": model,
                "n_states": len(pi),
                "tau_ps": self.lag_ps,
                "state": np.arange(len(pi)),
                "population": pi,
                "ci_low": lo,
                "ci_high": hi,
            }
        )

    def plot(self, ax: Axes | None = None) -> list[Axes]:
        """Right eigenvectors projected onto the states, one bar panel per relaxation.

        The panels (Figs. 3e, 4e) fill ``ax``'s place in its figure (``ax`` is removed) or
        a new figure; returns their axes.
        """
        from gdyn.plots import plot_eigen

        fig, spec = _grid_spec(ax, 1.8 * max(self.n_states - 1, 1) + 0.8, 2.4, top_in=0.3)
        return plot_eigen(fig, spec, self.eigen_frame())
