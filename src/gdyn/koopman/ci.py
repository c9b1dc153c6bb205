"""CI groups and intervals: kept as the import path of the paper's CI groups.

Everything lives in :mod:`gdyn.koopman.uncertainty` (the one uncertainty engine); this
module re-exports its group API (``chunks``, ``target_subsets``, ``trajectories``).
"""

from __future__ import annotations

from gdyn.koopman.uncertainty import (
    CI_FORMULA,
    CI_LEVEL,
    CI_METHODS,
    DEFAULT_CI_N,
    CISettings,
    CISpec,
    Group,
    chunk_labels,
    ci_groups,
    parse_ci,
    resolve_groups,
    resolve_replicates,
    t_interval,
)

__all__ = [
    "CI_FORMULA",
    "CI_LEVEL",
    "CI_METHODS",
    "DEFAULT_CI_N",
    "CISettings",
    "CISpec",
    "Group",
    "chunk_labels",
    "ci_groups",
    "parse_ci",
    "resolve_groups",
    "resolve_replicates",
    "t_interval",
]
