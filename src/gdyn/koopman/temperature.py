"""Koopman models per temperature of one pooled set of states (issue 25).

A network trained on every temperature of a series gives each frame the same states; here
the test frames are grouped by their trajectory's temperature (:mod:`gdyn.temperatures`)
and K, its replicates (the uncertainty engine), the kinetics and the rates are estimated
per temperature at one lag. Every table numbers the states as the pooled Koopman model at
that lag does (``kinetics.csv``, ``summary.json``'s ``state_order``), whatever the
population order at a single temperature: a state keeps its meaning across temperatures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman.arrhenius import ArrheniusResult, arrhenius
from gdyn.koopman.kinetics import KINETICS_COLUMNS
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs
from gdyn.settings import default

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["kinetics_by_temperature", "models_by_temperature", "split_by_temperature"]


def _trajectory_name(source: str) -> str:
    return Path(str(source)).stem  # results/split/{system}/{part}/{traj}.npz


def split_by_temperature(data: Probs, temperature_of: Mapping[str, float]) -> dict[float, Probs]:
    """The rows of ``data`` grouped by the temperature of their trajectory.

    ``temperature_of`` maps trajectory names (the stem of each entry of ``data.sources``)
    to kelvin. Raises :class:`InputError` naming a source without a temperature.
    """
    temps = np.full(len(data.sources), np.nan)
    for i, src in enumerate(data.sources):
        name = _trajectory_name(src)
        if name not in temperature_of:
            raise InputError(
                f"{data.path}: key 'sources': expected every trajectory in the temperature "
                f"series ({', '.join(sorted(temperature_of))}), got {name!r} without one"
            )
        temps[i] = float(temperature_of[name])
    row_t = temps[data.traj]
    out = {}
    for t in np.unique(row_t):
        rows = np.flatnonzero(row_t == t)
        out[float(t)] = dataclasses.replace(
            data, probs=data.probs[rows], traj=data.traj[rows], frame=data.frame[rows]
        )
    return out


def models_by_temperature(
    data: Probs,
    temperature_of: Mapping[str, float],
    pooled: KoopmanModel,
    ci: Any,
    estimator: str = default("koopman", "estimator"),
) -> dict[float, KoopmanModel]:
    """K at ``pooled.lag_ps`` on each temperature's rows, with the pooled state selection
    (the same surviving states at every temperature) and the engine's replicates."""
    return {
        t: KoopmanModel.estimate(part, pooled.lag_ps, ci=ci, selection=pooled.selection,
                                 estimator=estimator)
        for t, part in split_by_temperature(data, temperature_of).items()
    }


def _to_pooled(model: KoopmanModel, pooled_order: np.ndarray) -> np.ndarray:
    """Position in the pooled numbering of each of ``model``'s states."""
    where = {int(o): i for i, o in enumerate(pooled_order)}
    return np.array([where[int(o)] for o in model.state_order], dtype=np.int64)


def kinetics_by_temperature(
    models: Mapping[float, KoopmanModel], pooled_order: Sequence[int]
) -> pd.DataFrame:
    """``kinetics.csv`` of a series: each model's lifetimes and MFPTs with a
    ``temperature_K`` column, states in the pooled model's numbering."""
    import pandas as pd

    frames = []
    order = np.asarray(pooled_order)
    for t in sorted(models):
        m = models[t]
        table = m.kinetics_frame()
        pos = _to_pooled(m, order)
        table["from_state"] = pos[table["from_state"].to_numpy(int)]
        to = table["to_state"]
        table["to_state"] = pd.array(
            [pd.NA if pd.isna(x) else int(pos[int(x)]) for x in to], dtype="Int64"
        )
        table.insert(0, "temperature_K", float(t))
        frames.append(table)
    return pd.concat(frames, ignore_index=True)[["temperature_K", *KINETICS_COLUMNS]]


def arrhenius_by_temperature(
    models: Mapping[float, KoopmanModel], pooled_order: Sequence[int], **kw: Any
) -> ArrheniusResult:
    """:func:`~gdyn.koopman.arrhenius.arrhenius` in the pooled model's state numbering."""
    res = arrhenius(models, **kw)  # network output numbering
    order = np.asarray(pooled_order)
    s = order.size
    perm = np.ix_(range(len(res.temperature_K)), order, order)

    def pooled(x: np.ndarray) -> np.ndarray:
        return x[perm] if x.shape[-1] == s else x

    fits = {}
    where = {int(o): i for i, o in enumerate(order)}
    for (i, j), f in res.fits.items():
        fits[(where[i], where[j])] = f
    return ArrheniusResult(res.temperature_K, pooled(res.rates), pooled(res.rate_low),
                           pooled(res.rate_high), fits)  # fmt: skip
