"""How far per-temperature states drift from the pooled ones (``train.per_temperature``).

A temperature series trains one model on every temperature pooled, so a state means the
same at every temperature (:mod:`gdyn.koopman.temperature`). With ``train.per_temperature:
true`` the analysed model is also trained on each temperature alone; this module measures,
on that temperature's test frames, how far the two assign the same states:

* the state permutation of the per-temperature model that best matches the pooled one:
  the Hungarian assignment on the soft contingency table ``O[a, j] = mean p_pooled[a]
  p_T[j]`` of the two (:mod:`gdyn.states`), the rule that aligns lags and seeds and that
  maps the per-temperature model's outputs onto the pooled model's when it is trained
  (:mod:`gdyn.train.align`);
* ``argmax_agreement``: the fraction of (frame, target set) rows whose most probable state
  is the same in both, after that permutation;
* ``membership_overlap``: the mean over rows of ``sum_i min(p_pooled_i, p_T_i)``, the
  overlap of the two membership vectors (1 when they are identical, 0 when they put their
  probability on different states; ``1 - overlap`` is their total-variation distance);
* the slowest implied timescale of K at the analysis lag, of the pooled model's memberships
  at that temperature and of the per-temperature model's, with the Koopman uncertainty
  engine's intervals.

Pure functions of the probabilities; ``gdyn per-temperature`` is the workflow's command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs, as_probs
from gdyn.koopman.settings import KoopmanSettings, as_koopman_settings
from gdyn.koopman.temperature import split_by_temperature
from gdyn.koopman.timescales import timescales_from_eigenvalues
from gdyn.states import hard_agreement, hungarian_order, overlap_matrix

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DRIFT_COLUMNS", "MembershipDrift", "membership_drift", "per_temperature_drift"]

DRIFT_COLUMNS = [
    "temperature_K", "lag_ps", "n_rows", "state_order", "argmax_agreement",
    "membership_overlap", "pooled_timescale_ps", "pooled_ci_low_ps", "pooled_ci_high_ps",
    "per_temperature_timescale_ps", "per_temperature_ci_low_ps", "per_temperature_ci_high_ps",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MembershipDrift:
    """The agreement of two state assignments of the same rows (module docstring).

    ``order[a]`` is the other model's output that matches pooled state ``a``.
    """

    order: np.ndarray
    argmax_agreement: float
    membership_overlap: float
    n_rows: int


def membership_drift(p_pooled: np.ndarray, p_other: np.ndarray) -> MembershipDrift:
    """Best permutation, argmax agreement and mean membership overlap of two models'
    probabilities ``(..., S)`` of the same rows (rows unscored by either are left out).

    Parameters
    ----------
    p_pooled, p_other : ndarray (..., S)
        Memberships of the same (frame, target set) rows, in any state numbering.
    """
    a = np.asarray(p_pooled, dtype=np.float64)
    b = np.asarray(p_other, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"membership_drift: expected the same rows and states, got shapes "
                         f"{a.shape} and {b.shape}")  # fmt: skip
    s = a.shape[-1]
    a, b = a.reshape(-1, s), b.reshape(-1, s)
    keep = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    a, b = a[keep], b[keep]
    if not len(a):
        raise InputError("membership_drift: no row scored by both models")
    order = hungarian_order(overlap_matrix(a, b))
    overlap = float(np.minimum(a, b[:, order]).sum(axis=1).mean())
    return MembershipDrift(order, hard_agreement(a, b, order), overlap, len(a))


def _row_keys(data: Probs) -> np.ndarray:
    names = np.array([Path(str(s)).stem for s in data.sources], dtype=object)[data.traj]
    return np.array([f"{n}:{f}" for n, f in zip(names, data.frame, strict=True)])


def _matched(pooled: Probs, other: Probs) -> tuple[np.ndarray, np.ndarray]:
    """The two files' probabilities on their common (trajectory, frame) rows."""
    common, i, j = np.intersect1d(_row_keys(pooled), _row_keys(other), return_indices=True)
    if not len(common):
        raise InputError(f"{other.path}: no (trajectory, frame) row in common with "
                         f"{pooled.path} (expected the same test frames)")  # fmt: skip
    return pooled.probs[i], other.probs[j]


def _slowest(km: KoopmanModel) -> tuple[float, float, float]:
    """The slowest implied timescale (ps) of a Koopman model and its interval (NaN when
    the model resolves no process)."""
    ts = km.timescales_ps
    if ts.size == 0:
        return (float("nan"),) * 3
    reps = np.array([timescales_from_eigenvalues(g.eigenvalues[1:2], km.lag_ps)[0]
                     for g in km.group_spectra]).reshape(-1)  # fmt: skip
    lo, hi = km.interval(reps[:, None], log_scale=True)
    return float(ts[0]), float(lo[0]), float(hi[0])


def per_temperature_drift(
    pooled: Probs | str | Path,
    per_temperature: Sequence[Probs | str | Path],
    temperature_of: Mapping[str, float],
    lag_ps: float,
    settings: KoopmanSettings | Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """How far models trained at each temperature alone drift from the pooled model
    (``per_temperature.csv``; ``gdyn.per_temperature_drift``): one row per temperature.

    Parameters
    ----------
    pooled : Probs or path
        The pooled model's test probabilities (a ``probs_test.npz``) at every temperature.
    per_temperature : list of Probs or paths
        Each per-temperature model's test probabilities (one temperature each).
    temperature_of : mapping
        ``{trajectory name: temperature_K}`` (:func:`gdyn.temperatures.temperature_of`); a
        row's trajectory is the stem of its ``sources`` entry.
    lag_ps : float
        The analysis lag both models' K is estimated at.
    settings : KoopmanSettings or mapping, optional
        The ``koopman`` config block: its CI engine (``ci``; the intervals), state
        selection thresholds and estimator, as the Koopman stage reads them.

    Returns
    -------
    pandas.DataFrame
        :data:`DRIFT_COLUMNS`, temperatures ascending; ``state_order``: the per-temperature
        model's outputs that match pooled states 0, 1, ... (space-separated).
    """
    opts = as_koopman_settings(settings)  # tau_star_ps is not read: the lag is given
    ci, selection, estimator = opts.ci, opts.selection, opts.estimator
    pooled = as_probs(pooled, lag_ps)
    per_temperature = [as_probs(p, lag_ps) for p in per_temperature]
    import pandas as pd

    pooled_at = split_by_temperature(pooled, temperature_of)
    rows = []
    for other in per_temperature:
        temps = split_by_temperature(other, temperature_of)
        if len(temps) != 1:
            raise InputError(f"{other.path}: expected the test frames of one temperature, got "
                             f"{', '.join(f'{t:g} K' for t in temps)}")  # fmt: skip
        (t, part), = temps.items()
        if t not in pooled_at:
            raise InputError(f"{pooled.path}: expected test frames at {t:g} K (those of "
                             f"{other.path}), got none")  # fmt: skip
        a, b = _matched(pooled_at[t], part)
        drift = membership_drift(a, b)

        def slowest(p: Probs) -> tuple[float, float, float]:
            return _slowest(KoopmanModel.estimate(p, lag_ps, ci=ci, selection=selection,
                                                  estimator=estimator))  # fmt: skip

        ts_p, ts_p_lo, ts_p_hi = slowest(pooled_at[t])
        ts_t, ts_t_lo, ts_t_hi = slowest(part)
        rows.append({
            "temperature_K": t, "lag_ps": float(lag_ps), "n_rows": drift.n_rows,
            "state_order": " ".join(str(int(x)) for x in drift.order),
            "argmax_agreement": drift.argmax_agreement,
            "membership_overlap": drift.membership_overlap,
            "pooled_timescale_ps": ts_p, "pooled_ci_low_ps": ts_p_lo,
            "pooled_ci_high_ps": ts_p_hi,
            "per_temperature_timescale_ps": ts_t, "per_temperature_ci_low_ps": ts_t_lo,
            "per_temperature_ci_high_ps": ts_t_hi,
        })  # fmt: skip
    if not rows:
        raise InputError("per_temperature_drift: expected at least one per-temperature model")
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS).sort_values(
        "temperature_K", ignore_index=True)

