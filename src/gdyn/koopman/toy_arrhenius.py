"""Ground truth of the toy's Arrhenius analysis (issue 25): site labels, TST, the barrier.

* **Site labels**: the simulator's geometric labels (:mod:`gdyn.toy.sites`, oct = 0,
  tet = 1) of the test pieces as one-hot memberships, put through exactly the learned
  states' pipeline (per-temperature :class:`~gdyn.koopman.KoopmanModel` at the same lag,
  the same bootstrap, rates from K's generator, the same fit);
* **TST**: the transition-state-theory rates of the toy potential at each temperature by
  quadrature (:func:`gdyn.toy.calibrate.transition_state_theory`; oct -> tet from detailed
  balance), fitted the same way without intervals. Its prefactor grows as sqrt(T) (the
  mean thermal speed through the dividing face), so its apparent activation energy exceeds
  the energy difference by about ``k_B T / 2`` at the middle of the range;
* **barrier**: the energy along the tet-oct path (Fig. 2a): ``E_saddle - E_tet`` for
  tet -> oct, ``E_saddle - E_oct`` for oct -> tet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gdyn.koopman.arrhenius import ArrheniusResult, arrhenius, arrhenius_from_rates
from gdyn.koopman.model import KoopmanModel
from gdyn.settings import default
from gdyn.toy import (
    OCTAHEDRAL,
    TETRAHEDRAL,
    ToySettings,
    site_energies_meV,
    transition_state_theory,
)

__all__ = ["barrier_eV", "label_arrhenius", "label_models", "tst_arrhenius"]


def label_models(
    pieces: Sequence[Any],
    temperature_of: Mapping[str, float],
    lag_ps: float,
    ci: Any,
    estimator: str = default("koopman", "estimator"),
) -> dict[float, KoopmanModel]:
    """Per-temperature Koopman models of the site labels of ``pieces``
    (:class:`~gdyn.trajectory.Trajectory` split pieces with ``site_label`` and a ``source``
    whose stem names the trajectory); state 0 = oct, 1 = tet (no state selection)."""
    from pathlib import Path

    by_t: dict[float, list[np.ndarray]] = {}
    interval = None
    for p in pieces:
        name = Path(str(np.asarray(p.extras["source"]))).stem
        labels = np.asarray(p.extras["site_label"])[:, 0].astype(np.int64)
        onehot = np.zeros((labels.size, 1, 2))
        onehot[labels == OCTAHEDRAL, 0, 0] = 1.0
        onehot[labels == TETRAHEDRAL, 0, 1] = 1.0
        by_t.setdefault(float(temperature_of[name]), []).append(onehot)
        interval = float(p.frame_interval_ps)
    return {
        t: KoopmanModel.estimate(arrays, lag_ps, interval, ci=ci, selection=None,
                                 estimator=estimator)
        for t, arrays in sorted(by_t.items())
    }


def label_arrhenius(models: Mapping[float, KoopmanModel], **kw: Any) -> ArrheniusResult:
    """The Arrhenius fit of :func:`label_models` (states oct = 0, tet = 1)."""
    return arrhenius(models, **kw)


def tst_arrhenius(s: ToySettings, temperatures_K: Sequence[float]) -> ArrheniusResult:
    """TST rates (oct = 0, tet = 1) at each temperature and their (unweighted) fit."""
    rates = []
    for t in temperatures_K:
        r = transition_state_theory(dataclasses.replace(s, temperature_K=float(t)))
        pi = r["tet_population"]
        k_to = r["k_tet_to_oct_per_ps"]
        rates.append([[-k_to * pi / (1 - pi), k_to * pi / (1 - pi)], [k_to, -k_to]])
    q = np.array(rates)
    q[:, 0, 0] = q[:, 0, 1]
    q[:, 1, 1] = q[:, 1, 0]
    return arrhenius_from_rates(temperatures_K, q)


def barrier_eV(s: ToySettings) -> dict[tuple[int, int], float]:
    """Energy differences along the tet-oct path: ``{(oct, tet): ..., (tet, oct): ...}``."""
    e = site_energies_meV(s)
    return {(OCTAHEDRAL, TETRAHEDRAL): (e["barrier"] - e["oct"]) / 1000.0,
            (TETRAHEDRAL, OCTAHEDRAL): (e["barrier"] - e["tet"]) / 1000.0}  # fmt: skip
