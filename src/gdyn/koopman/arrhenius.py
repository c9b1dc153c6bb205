"""Rates between states and their Arrhenius fit across temperatures (issue 25).

**Rates from K's generator** (the documented choice). A Markov chain in continuous time
with rate matrix ``Q`` (``Q_ij`` the rate i -> j, rows summing to 0) has
``K(tau) = exp(Q tau)``, so ``Q = log K(tau) / tau`` and ``k_ij = Q_ij`` (i != j), in
1/ps. The matrix logarithm is taken through K's eigendecomposition, which is real and
unique when every eigenvalue is real and positive (the case for a reversible chain at a
lag shorter than its fastest relaxation); otherwise, or where an off-diagonal of ``log K``
is negative (K is not the exponential of any rate matrix: not embeddable), the rate is
NaN. Why not ``1 / lifetime`` or ``1 / MFPT``: the lifetime ``tau / (1 - K_ii)``
(:mod:`~gdyn.koopman.kinetics`) is resolved no finer than tau and is biased upwards by
O(tau) for a Markov chain (a state left and re-entered within one lag counts as never
left), so its Arrhenius slope mixes in the lag; the generator's rates are exact for a
Markov chain at any lag (tested against ``scipy.linalg.expm``). For two states,
``k_01 = K_01 (-ln lambda_1) / (tau (1 - lambda_1))`` with ``lambda_1 = 1 - K_01 - K_10``.

**Arrhenius fit.** ``ln k = ln A - E_a / (k_B T)``, weighted least squares of ``ln k``
against ``x = 1 / (k_B T)`` with weights ``1 / var(ln k)`` from the rate intervals
(``var`` of the log of the bootstrap replicates, or ``((ln hi - ln lo) / (2 z))^2`` from
an interval alone). Interval of ``E_a`` and ``A``: a bootstrap that propagates the rate
intervals: each resample draws, independently per temperature (each temperature is its own
data), one replicate rate (the uncertainty engine's bootstrap replicates) or, given only
an interval, a log-normal rate with that interval; refits; percentile interval. The
weights stay those of the point fit, as a weighted least squares with known variances
does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.koopman.uncertainty import CI_LEVEL
from gdyn.settings import default

if TYPE_CHECKING:
    import pandas as pd

    from gdyn.koopman.model import KoopmanModel

# The uncertainty engine's defaults (one source: the schema's koopman.ci block).
CI_SEED = int(default("koopman", "ci", "seed"))

__all__ = [
    "ARRHENIUS_COLUMNS",
    "KB_EV_PER_K",
    "ArrheniusFit",
    "ArrheniusResult",
    "arrhenius",
    "fit_arrhenius",
    "generator_rates",
]

KB_EV_PER_K = 8.617333262e-5  # Boltzmann constant (CODATA 2018), eV/K
ARRHENIUS_COLUMNS = ["temperature_K", "from_state", "to_state", "rate_per_ps", "ci_low", "ci_high"]


def generator_rates(k: np.ndarray, lag_ps: float) -> np.ndarray:
    """Rates ``k_ij`` (1/ps) of the rate matrix ``Q = log K / tau`` (module docstring).

    Parameters
    ----------
    k : (..., s, s) ndarray
        Koopman / transition matrices at lag ``lag_ps`` (batched over leading axes, so the
        uncertainty engine's replicate matrices give replicate rates in one call).
    lag_ps : float
        The lag tau.

    Returns
    -------
    (..., s, s) ndarray
        Off-diagonal rates; the diagonal is the total exit rate ``-Q_ii``. NaN where the
        logarithm is not real (an eigenvalue <= 0 or complex), K is not finite, or the
        off-diagonal element of ``log K`` is negative (not a rate).
    """
    k = np.asarray(k, dtype=float)
    s = k.shape[-1]
    flat = k.reshape(-1, s, s)
    out = np.full(flat.shape, np.nan)
    for n, m in enumerate(flat):
        if not np.all(np.isfinite(m)):
            continue
        w, v = np.linalg.eig(m)
        if np.any(np.abs(w.imag) > 1e-10) or np.any(w.real <= 0):
            continue
        try:
            q = (v.real * np.log(w.real)) @ np.linalg.inv(v.real) / float(lag_ps)
        except np.linalg.LinAlgError:
            continue
        q[q < 0] = np.nan  # off-diagonal only below (diagonal replaced)
        np.fill_diagonal(q, np.nansum(np.where(np.eye(s, dtype=bool), 0.0, q), axis=1))
        out[n] = q
    return out.reshape(k.shape)


@dataclass(frozen=True)
class ArrheniusFit:
    """``k(T) = A exp(-E_a / k_B T)`` of one transition, with percentile intervals."""

    activation_energy_eV: float
    ci_low_eV: float
    ci_high_eV: float
    prefactor_per_ps: float
    prefactor_ci_low: float
    prefactor_ci_high: float
    n_temperatures: int
    level: float = CI_LEVEL

    def rate(self, temperature_K: np.ndarray | float) -> np.ndarray:
        """The fitted rate (1/ps) at ``temperature_K``."""
        t = np.asarray(temperature_K, dtype=float)
        return self.prefactor_per_ps * np.exp(-self.activation_energy_eV / (KB_EV_PER_K * t))

    def as_dict(self) -> dict[str, float]:
        """The ``arrhenius.json`` entry of the transition."""
        return {
            "activation_energy_eV": self.activation_energy_eV,
            "ci_low": self.ci_low_eV,
            "ci_high": self.ci_high_eV,
            "prefactor_per_ps": self.prefactor_per_ps,
            "prefactor_ci_low": self.prefactor_ci_low,
            "prefactor_ci_high": self.prefactor_ci_high,
            "n_temperatures": self.n_temperatures,
            "level": self.level,
        }


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(..., 2) weighted least-squares (intercept, slope) of y (..., n) on x (n,)."""
    sw = w.sum()
    xm = (w * x).sum() / sw
    ym = (y * w).sum(axis=-1) / sw
    slope = ((w * (x - xm)) * (y - ym[..., None])).sum(axis=-1) / (w * (x - xm) ** 2).sum()
    return np.stack([ym - slope * xm, slope], axis=-1)


def fit_arrhenius(
    temperature_K: Sequence[float] | np.ndarray,
    rate_per_ps: Sequence[float] | np.ndarray,
    ci_low: Sequence[float] | np.ndarray | None = None,
    ci_high: Sequence[float] | np.ndarray | None = None,
    replicates: Sequence[np.ndarray] | None = None,
    n_boot: int = 2000,
    level: float = CI_LEVEL,
    seed: int = CI_SEED,
) -> ArrheniusFit:
    """Weighted fit of ``ln k`` against ``1 / (k_B T)`` with a bootstrap interval.

    Parameters
    ----------
    temperature_K, rate_per_ps : (n,) array
        One rate per temperature (n >= 2 distinct temperatures; NaN/non-positive rates are
        left out).
    ci_low, ci_high : (n,) array, optional
        The rates' intervals at ``level`` (used when ``replicates`` is not given).
    replicates : list of (R_t,) arrays, optional
        Bootstrap replicate rates of each temperature (the uncertainty engine's); the fit's
        weights and its bootstrap draw from them.
    n_boot, level, seed
        Bootstrap resamples, interval level, random seed.

    Returns
    -------
    ArrheniusFit
        NaN throughout when fewer than two temperatures have a positive rate; the interval
        is NaN without rate intervals or replicates (unweighted fit then).
    """
    t = np.asarray(temperature_K, dtype=float)
    k = np.asarray(rate_per_ps, dtype=float)
    n = t.size
    from scipy.stats import norm  # scipy costs ~0.7 s to import: only where a fit needs it

    z = float(norm.ppf(0.5 + level / 2))
    logs: list[np.ndarray] | None = None
    if replicates is not None:
        logs = []
        for r in replicates:
            r = np.asarray(r, dtype=float)
            logs.append(np.log(r[np.isfinite(r) & (r > 0)]))
        var = np.array([np.var(x, ddof=1) if x.size > 1 else np.nan for x in logs])
    elif ci_low is not None and ci_high is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            var = ((np.log(np.asarray(ci_high, float)) - np.log(np.asarray(ci_low, float)))
                   / (2 * z)) ** 2  # fmt: skip
    else:
        var = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(k) & (k > 0) & np.isfinite(t) & (t > 0)
        has_var = np.isfinite(var) & (var > 0)
    weighted = bool(np.all(has_var[ok]))
    ok_idx = np.flatnonzero(ok)
    nan = float("nan")
    if np.unique(t[ok_idx]).size < 2:
        return ArrheniusFit(nan, nan, nan, nan, nan, nan, int(ok_idx.size), level)
    x = 1.0 / (KB_EV_PER_K * t[ok_idx])
    w = 1.0 / var[ok_idx] if weighted else np.ones(ok_idx.size)
    y = np.log(k[ok_idx])
    ln_a, slope = _wls(x, y, w)
    ea, a = -float(slope), float(np.exp(ln_a))
    if not weighted:
        return ArrheniusFit(ea, nan, nan, a, nan, nan, int(ok_idx.size), level)
    rng = np.random.default_rng(seed)
    if logs is not None:
        yb = np.stack(
            [logs[i][rng.integers(logs[i].size, size=n_boot)] for i in ok_idx], axis=1
        )
    else:
        yb = y + np.sqrt(var[ok_idx]) * rng.standard_normal((n_boot, ok_idx.size))
    coef = _wls(x, yb, w)
    q = [50 * (1 - level), 50 * (1 + level)]
    ea_lo, ea_hi = np.percentile(-coef[:, 1], q)
    a_lo, a_hi = np.exp(np.percentile(coef[:, 0], q))
    return ArrheniusFit(ea, float(ea_lo), float(ea_hi), a, float(a_lo), float(a_hi),
                        int(ok_idx.size), level)  # fmt: skip


@dataclass(frozen=True)
class ArrheniusResult:
    """Rates between states at several temperatures and one fit per transition.

    ``rates`` (n_T, s, s), ``rate_low``/``rate_high`` their intervals, ``fits`` keyed by
    ``(from_state, to_state)``.
    """

    temperature_K: np.ndarray
    rates: np.ndarray = field(repr=False)
    rate_low: np.ndarray = field(repr=False)
    rate_high: np.ndarray = field(repr=False)
    fits: dict[tuple[int, int], ArrheniusFit]

    def to_frame(self) -> pd.DataFrame:
        """``arrhenius.csv``: one row per temperature and transition."""
        import pandas as pd

        s = self.rates.shape[-1]
        rows = [
            {"temperature_K": float(t), "from_state": i, "to_state": j,
             "rate_per_ps": self.rates[n, i, j], "ci_low": self.rate_low[n, i, j],
             "ci_high": self.rate_high[n, i, j]}
            for n, t in enumerate(self.temperature_K)
            for i in range(s) for j in range(s) if i != j
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=ARRHENIUS_COLUMNS)

    def to_json(self) -> dict[str, Any]:
        """``arrhenius.json``: ``{"transitions": [{from_state, to_state, ...fit}]}``."""
        return {
            "rates_from": "generator of K (log K / tau)",
            "transitions": [
                {"from_state": i, "to_state": j, **f.as_dict()}
                for (i, j), f in sorted(self.fits.items())
            ],
        }


def arrhenius_from_rates(
    temperature_K: Sequence[float],
    rates: np.ndarray,
    replicate_rates: Sequence[np.ndarray] | None = None,
    rate_low: np.ndarray | None = None,
    rate_high: np.ndarray | None = None,
    level: float = CI_LEVEL,
    n_boot: int = 2000,
    seed: int = CI_SEED,
) -> ArrheniusResult:
    """:class:`ArrheniusResult` from per-temperature rate matrices (n_T, s, s) and either
    their bootstrap replicates (a list of (R_t, s, s)) or their intervals."""
    t = np.asarray(temperature_K, dtype=float)
    rates = np.asarray(rates, dtype=float)
    s = rates.shape[-1]
    if replicate_rates is not None:
        q = [50 * (1 - level), 50 * (1 + level)]
        bounds = [np.nanpercentile(r, q, axis=0) if len(r) else np.full((2, s, s), np.nan)
                  for r in replicate_rates]  # fmt: skip
        rate_low = np.array([b[0] for b in bounds])
        rate_high = np.array([b[1] for b in bounds])
    if rate_low is None or rate_high is None:
        rate_low = rate_high = np.full(rates.shape, np.nan)
    fits = {}
    for i in range(s):
        for j in range(s):
            if i == j:
                continue
            reps = None if replicate_rates is None else [r[:, i, j] for r in replicate_rates]
            fits[(i, j)] = fit_arrhenius(
                t, rates[:, i, j], rate_low[:, i, j], rate_high[:, i, j], reps,
                n_boot=n_boot, level=level, seed=seed,
            )  # fmt: skip
    return ArrheniusResult(t, rates, np.asarray(rate_low), np.asarray(rate_high), fits)


def arrhenius(
    models: Mapping[float, KoopmanModel],
    n_boot: int = 2000,
    seed: int = CI_SEED,
    level: float = CI_LEVEL,
) -> ArrheniusResult:
    """Arrhenius analysis of Koopman models of one set of states at several temperatures.

    Parameters
    ----------
    models : mapping
        ``{temperature_K: KoopmanModel}``, every model over the same states in the same
        numbering (a pooled network's outputs, :meth:`KoopmanModel.estimate` with
        ``selection=None`` or a shared selection; states are mapped back to the network's
        output numbering through each model's ``state_order``, so a different population
        order at another temperature does not swap them).
    n_boot, seed, level
        The fit's bootstrap (module docstring).

    Returns
    -------
    ArrheniusResult
        States numbered as the network's outputs; rates from K's generator with the
        models' bootstrap replicates (``ci``), or without intervals when a model has none.

    Examples
    --------
    >>> fits = gdyn.arrhenius({t: KoopmanModel.estimate(p[t], 10.0, 0.1, ci={})
    ...                        for t in p}).fits           # doctest: +SKIP
    >>> fits[(1, 0)].activation_energy_eV                  # doctest: +SKIP
    """
    by_t = {float(t): m for t, m in models.items()}
    temps = sorted(by_t)
    size = by_t[temps[0]].n_states
    rates, reps = [], []
    for t in temps:
        m = by_t[t]
        if m.n_states != size:
            raise ValueError(f"models: expected {size} states at every temperature, "
                             f"got {m.n_states} at {t:g} K")  # fmt: skip
        order = m.state_order[: m.n_surviving]
        full = np.full((size, size), np.nan)
        full[np.ix_(order, order)] = generator_rates(m.koopman_matrix, m.lag_ps)
        rates.append(full)
        g = m.group_matrices
        rg = np.full((g.shape[0], size, size), np.nan)
        rg[:, order[:, None], order[None, :]] = generator_rates(g, m.lag_ps)
        reps.append(rg)
    use_reps = all(r.shape[0] > 1 for r in reps) and all(
        m.replicates is not None and m.replicates.bootstrap for m in models.values()
    )
    return arrhenius_from_rates(
        temps, np.array(rates), reps if use_reps else None, level=level, n_boot=n_boot,
        seed=seed,
    )  # fmt: skip
