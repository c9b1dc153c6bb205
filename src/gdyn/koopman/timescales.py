"""Implied timescales over a lag grid: ``LagResult``, ``ImpliedTimescales``, ``implied_timescales``.

``t_i(tau) = -tau / ln|lambda_i(tau)|`` of each lag's :class:`~gdyn.koopman.model.KoopmanModel`
(its surviving states), with 95 % CIs over the CI groups and the flags of
:mod:`~gdyn.koopman.tau_star` (faster than the lag, complex or negative eigenvalue,
converged). Every lag has ``n_states - 1`` process slots; a lag whose model has fewer
surviving states leaves the last slots NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from gdyn.koopman.eigen import timescales_from_eigenvalues
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs, ProbsLike, as_probs
from gdyn.koopman.selection import SelectionSpec
from gdyn.koopman.tau_star import TauStar, TimescaleFlags, select_tau_star, timescale_flags
from gdyn.koopman.uncertainty import CISettings, CISpec, Group, Replicates, parse_ci
from gdyn.layout import lag_label
from gdyn.settings import default

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "TIMESCALES_COLUMNS",
    "ImpliedTimescales",
    "LagResult",
    "analyse_lag",
    "implied_timescales",
]

TIMESCALES_COLUMNS = [
    "model",
    "n_states",
    "lag_ps",
    "process",
    "eigenvalue",
    "timescale_ps",
    "ci_low_ps",
    "ci_high_ps",
    "eigenvalue_imag",
    "n_surviving_states",
    "faster_than_lag",
    "complex",
    "negative",
    "resolved",
    "converged",
]


def _pad(x: np.ndarray, n: int, axis: int = -1) -> np.ndarray:
    """``x`` padded with NaN to length ``n`` along ``axis``."""
    x = np.asarray(x)
    missing = n - x.shape[axis]
    if missing <= 0:
        return x
    width = [(0, 0)] * x.ndim
    width[axis] = (0, missing)
    if np.iscomplexobj(x):
        return np.pad(x, width, constant_values=complex(np.nan, np.nan))
    return np.pad(x.astype(float), width, constant_values=np.nan)


@dataclass
class LagResult:
    """Timescales of one lag's model: pooled and per CI group, ``n_states - 1`` slots."""

    lag_ps: float
    eigenvalues: np.ndarray  # (S-1,) complex, slowest first (stationary excluded), NaN-padded
    timescales: np.ndarray  # (S-1,)
    group_timescales: np.ndarray  # (n_groups, S-1)
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_samples: int
    n_surviving: int = -1
    replicates: Replicates | None = None

    def __post_init__(self) -> None:
        if self.n_surviving < 0:
            self.n_surviving = len(self.timescales) + 1

    @classmethod
    def from_model(cls, km: KoopmanModel) -> LagResult:
        """The timescales of a model and of its CI groups."""
        slots = km.n_states - 1
        lam = km.eigenvalues[1:]
        ts = timescales_from_eigenvalues(lam, km.lag_ps)
        per_group = [
            timescales_from_eigenvalues(g.eigenvalues[1:], km.lag_ps) for g in km.group_spectra
        ]
        group_ts = np.array(per_group).reshape(len(per_group), len(ts))
        low, high = km.interval(group_ts, log_scale=True)
        return cls(
            lag_ps=km.lag_ps,
            eigenvalues=_pad(lam.astype(complex), slots),
            timescales=_pad(ts, slots),
            group_timescales=_pad(group_ts, slots, axis=1),
            ci_low=_pad(low, slots),
            ci_high=_pad(high, slots),
            n_samples=km.n_samples,
            n_surviving=km.n_surviving,
            replicates=km.replicates,
        )


def analyse_lag(
    data: Probs,
    groups: Sequence[Group] | CISettings,
    selection: SelectionSpec = "auto",
    estimator: str = default("koopman", "estimator"),
) -> LagResult:
    """Pooled and per-replicate timescales of the model trained at ``data.lag_ps``
    (``groups``: CI groups or uncertainty settings).

    Raises :class:`InputError` when ``data`` has no pair of rows ``lag`` apart.
    """
    ci = groups if isinstance(groups, CISettings) else list(groups)
    km = KoopmanModel.estimate(data, data.lag_ps, ci=ci, selection=selection, estimator=estimator)
    return LagResult.from_model(km)


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class ImpliedTimescales:
    """Relaxation timescales ``t_i(tau) = -tau / ln|lambda_i(tau)|`` over a lag grid.

    One :class:`LagResult` per lag, in the order given (the workflow's is ascending).
    Arrays are (n_lags, n_states - 1), slowest process first; CIs are the uncertainty
    engine's 95 % intervals (percentile over the block bootstrap, or Student-t on ``ln t``
    over CI groups; NaN without replicates). :attr:`flags` marks each (lag, process)
    (:func:`~gdyn.koopman.tau_star.timescale_flags`).
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
        return np.array([r.eigenvalues for r in self.results], dtype=complex)

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

    @cached_property
    def flags(self) -> TimescaleFlags:
        """Per (lag, process) flags: complex, negative, faster than the lag, resolved,
        converged (:mod:`~gdyn.koopman.tau_star`)."""
        rep = self.replicate_timescales
        reps = self.results[0].replicates
        return timescale_flags(
            self.lags_ps, self.eigenvalues, self.timescales_ps, self.ci_low_ps, self.ci_high_ps,
            rep, None if rep is None or reps is None else reps.interval,
        )  # fmt: skip

    @property
    def replicate_timescales(self) -> np.ndarray | None:
        """(n_lags, R, S-1) replicate timescales when every lag has the same number R >= 2
        of replicates of one kind (the same resamples at every lag), else None."""
        shapes = {r.group_timescales.shape for r in self.results}
        kinds = {None if r.replicates is None else r.replicates.bootstrap for r in self.results}
        if len(shapes) != 1 or None in kinds or len(kinds) != 1:
            return None
        rep = np.array([r.group_timescales for r in self.results])
        return rep if rep.shape[1] >= 2 else None

    def drift(self, k: int, process: int = 0) -> dict[str, float] | None:
        """How far process ``process`` (0: the slowest) moves from lag index ``k`` to the
        last lag that resolves it: ``change_ps`` = t(last) - t(k) with the engine's
        interval of the replicate differences, and the same relative to t(k).

        A measured quantity, not a verdict: "converged" means the interval of this change
        contains 0, which short data grant a rising curve too (BENCHMARKS.md, liquid
        benchmark); the size of the change and its interval say how much could move.
        None when no later lag resolves the process.

        Parameters
        ----------
        k : int
            Index of the lag (e.g. tau*'s) in the grid.
        process : int
            Process index, slowest first.

        Returns
        -------
        dict or None
            ``from_ps``, ``to_ps``, ``change_ps``, ``ci_low_ps``, ``ci_high_ps`` (NaN
            without replicates), ``relative_change``.
        """
        resolved = self.flags.resolved[:, process]
        later = [m for m in range(k + 1, len(self.results)) if resolved[m]]
        if not resolved[k] or not later:
            return None
        m = later[-1]
        t = self.timescales_ps[:, process]
        change = float(t[m] - t[k])
        lo = hi = float("nan")
        rep, reps = self.replicate_timescales, self.results[0].replicates
        if rep is not None and reps is not None:
            diff = rep[m, :, process] - rep[k, :, process]
            diff = diff[np.isfinite(diff)]
            if diff.size >= 2:
                low, high = reps.interval(diff[:, None])
                lo, hi = float(low[0]), float(high[0])
        return {"from_ps": float(self.lags_ps[k]), "to_ps": float(self.lags_ps[m]),
                "change_ps": change, "ci_low_ps": lo, "ci_high_ps": hi,
                "relative_change": change / float(t[k])}

    def select_tau_star(self, ck_pass: Sequence[bool] | None = None) -> TauStar:
        """The automatic tau* of this grid (:func:`~gdyn.koopman.tau_star.select_tau_star`;
        ``ck_pass``: each lag's CK verdict, required to pass when given)."""
        return select_tau_star(
            self.lags_ps, self.timescales_ps, self.ci_low_ps, self.ci_high_ps, self.eigenvalues,
            self.flags, ck_pass,
        )  # fmt: skip

    def to_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``timescales.csv``: one row per (lag, process) with its flags; ``model`` fills
        the model column."""
        import pandas as pd

        n_states = self.n_states
        f = self.flags
        rows = []
        for k, r in enumerate(self.results):
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
                        "eigenvalue_imag": float(np.imag(r.eigenvalues[i])),
                        "n_surviving_states": r.n_surviving,
                        "faster_than_lag": bool(f.faster_than_lag[k, i]),
                        "complex": bool(f.complex[k, i]),
                        "negative": bool(f.negative[k, i]),
                        "resolved": bool(f.resolved[k, i]),
                        "converged": bool(f.converged[k, i]),
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
            import matplotlib.pyplot as plt

            ax = plt.figure(figsize=(3.4, 2.6)).add_subplot()
        plot_timescales(ax, self.to_frame(), tau_star_ps, title=title, unit=unit)
        return ax


def implied_timescales(
    probs: ProbsLike | Mapping[float, ProbsLike],
    frame_interval_ps: float | None = None,
    lags_ps: Sequence[float] | None = None,
    traj: np.ndarray | None = None,
    frame: np.ndarray | None = None,
    ci: CISpec = None,
    selection: SelectionSpec = "auto",
    estimator: str = default("koopman", "estimator"),
) -> ImpliedTimescales:
    """Implied timescales over a lag grid, with the uncertainty engine's 95 % CIs.

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
        The config's ``koopman.ci`` block (``{"method": "bootstrap", "n": 500, "seed": 0}``,
        the workflow's default; or the paper's groups ``{"method": "chunks", "n": 5}``);
        with the bootstrap every lag draws the same resamples (one block for the grid),
        so convergence can test differences between lags. None: CI columns are NaN.
    selection : "auto", mapping or None
        The near-empty rule, applied to each lag's model (see
        :meth:`KoopmanModel.estimate <gdyn.koopman.model.KoopmanModel.estimate>`).
    estimator : {"nonreversible", "reversible"}

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
    if isinstance(ci, Mapping):
        ci = parse_ci(ci)
    if isinstance(ci, CISettings) and ci.bootstrap and ci.block_ps is None:
        # One block for every lag (the slowest timescale of the grid), so the same
        # resamples are drawn at every lag and convergence can use their differences.
        want = max(lag for lag, _ in items)
        for lag, value in items:
            data = as_probs(value, lag, frame_interval_ps, traj, frame)
            km = KoopmanModel.estimate(data, lag, selection=selection, estimator=estimator)
            t = km.timescales_ps
            t = t[np.isfinite(t) & (t > lag)]
            want = max(want, float(t.max()) if t.size else 0.0)
        ci = ci.with_block(want)
    results = []
    for lag, value in items:
        data = as_probs(value, lag, frame_interval_ps, traj, frame)
        km = KoopmanModel.estimate(data, lag, ci=ci, selection=selection, estimator=estimator)
        results.append(LagResult.from_model(km))
    return ImpliedTimescales(tuple(results))
