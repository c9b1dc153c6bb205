"""gdyn: Graph Dynamical Networks (Xie et al., Nat. Commun. 2019) as a reproducible workflow.

The public API, for notebooks and scripts (the workflow's CLI calls the same functions)::

    import gdyn
    traj = gdyn.load_trajectory("results/raw/toy/li000.npz")
    model = gdyn.GDyNet(n_states=2, lag_ps=10.0, n_neighbors=12).fit(traj[:50_000])
    probs = model.transform(traj[50_000:])
    km = gdyn.KoopmanModel.estimate(probs, lag_ps=10.0, frame_interval_ps=0.1)
    km.timescales_ps, km.stationary_distribution, km.ck_test(probs, steps=5).plot()

Names are imported on first use (torch, for instance, only with ``GDyNet``), so ``import
gdyn`` is cheap. The layout of the package is described in ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from gdyn.errors import InputError

__version__ = "0.1.0"

# Public name -> module that defines it (imported lazily, PEP 562).
_API: dict[str, str] = {
    "Trajectory": "gdyn.trajectory",
    "load_trajectory": "gdyn.trajectory",
    "GDyNet": "gdyn.train",
    "VAMPNet": "gdyn.train",
    "GDyNetModel": "gdyn.train",
    "KoopmanModel": "gdyn.koopman",
    "CKTest": "gdyn.koopman",
    "ImpliedTimescales": "gdyn.koopman",
    "implied_timescales": "gdyn.koopman",
    "select_states": "gdyn.koopman",
    "ck_verdict": "gdyn.koopman",
    "arrhenius": "gdyn.koopman.arrhenius",
    "per_temperature_drift": "gdyn.koopman.drift",
    "state_weighted_rdf": "gdyn.analysis",
    "charge_integral": "gdyn.analysis",
    "conduction": "gdyn.analysis",
    "representative_configurations": "gdyn.analysis",
}

__all__ = ["InputError", "__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'gdyn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
