"""Confidence intervals: the paper's CI groups and the Student-t interval over them.

The same quantity is estimated on ``n`` disjoint groups of the test data (time chunks,
random target subsets, or whole trajectories) and the 95 % CI is the Student-t interval of
the group estimates, ``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (sd with ddof = 1).
Timescales use this interval on ``ln t`` (a geometric interval, as the GDyNet reference
code does with 1.96). Reported point values are the estimates from all test data pooled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdyn.errors import InputError

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
    "t_interval",
]

CI_METHODS: tuple[str, ...] = ("chunks", "target_subsets", "trajectories")
CI_LEVEL = 0.95
CI_FORMULA = (
    "95% Student-t interval over the n group estimates: mean +- t_{0.975,n-1}*sd/sqrt(n), "
    "sd with ddof=1; timescales on ln(t) (geometric mean); non-finite group values dropped. "
    "Point values are estimates from all test data pooled."
)
DEFAULT_CI_N = {"chunks": 5, "target_subsets": 5}


def t_interval(
    samples: np.ndarray, log_scale: bool = False, level: float = CI_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t CI over axis 0: ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)``, sd ddof=1.

    Non-finite samples (and non-positive ones when ``log_scale``) are dropped per element;
    fewer than two left gives NaN. With ``log_scale`` the interval is formed on ``ln x``
    and transformed back (a geometric interval, always positive).
    """
    from scipy import stats

    x = np.asarray(samples, dtype=float)
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(x > 0, np.log(x), np.nan)
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    xs = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=0) / n
        var = (np.where(ok, x - mean, 0.0) ** 2).sum(axis=0) / (n - 1)
        half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * np.sqrt(var / n)
    low = np.where(n >= 2, mean - half, np.nan)
    high = np.where(n >= 2, mean + half, np.nan)
    if log_scale:
        low, high = np.exp(low), np.exp(high)
    return low, high


@dataclass(frozen=True)
class Group:
    """One CI group: rows of the probs arrays (None = all) and target sets (None = all)."""

    rows: np.ndarray | None
    sets: np.ndarray | None


def chunk_labels(traj: np.ndarray, frame: np.ndarray, n: int) -> np.ndarray:
    """Chunk index 0..n-1 of every row: each trajectory's frames cut into n equal time chunks."""
    traj = np.asarray(traj)
    frame = np.asarray(frame)
    labels = np.zeros(traj.shape[0], dtype=np.int64)
    order = np.lexsort((frame, traj))
    bounds = np.flatnonzero(np.diff(traj[order])) + 1
    for seg in np.split(order, bounds):
        m = seg.size
        labels[seg] = (np.arange(m) * n) // m
    return labels


def ci_groups(
    method: str, n: int | None, seed: int, traj: np.ndarray, frame: np.ndarray, n_sets: int
) -> list[Group]:
    """The paper's CI groups: time ``chunks``, random ``target_subsets`` or test ``trajectories``.

    Parameters
    ----------
    method : {"chunks", "target_subsets", "trajectories"}
    n : int or None
        Number of groups (None with ``trajectories``: one group per trajectory).
    seed : int
        Seed of the random target subsets.
    traj, frame : (F,) int
        Rows of the probs arrays the groups select from.
    n_sets : int
        Number of target sets per frame.
    """
    if method == "chunks":
        labels = chunk_labels(traj, frame, int(n))
        return [Group(labels == g, None) for g in range(int(n))]
    if method == "target_subsets":
        if n_sets < int(n):
            raise InputError(
                f"koopman settings key 'ci/n': expected at most n_sets={n_sets} target subsets, "
                f"got {n}"
            )
        perm = np.random.default_rng(seed).permutation(n_sets)
        return [Group(None, np.sort(s)) for s in np.array_split(perm, int(n))]
    if method == "trajectories":
        uniq = np.unique(traj)
        k = len(uniq) if n is None else int(n)
        if k > len(uniq) or k < 2:
            raise InputError(
                f"koopman settings key 'ci/n': expected 2..{len(uniq)} (test trajectories), got {k}"
            )
        return [Group(np.isin(traj, part), None) for part in np.array_split(uniq, k)]
    raise InputError(
        f"koopman settings key 'ci/method': expected one of {', '.join(CI_METHODS)}, got {method!r}"
    )


@dataclass(frozen=True)
class CISettings:
    """The ``koopman.ci`` block with its defaults filled in."""

    method: str
    n: int | None
    seed: int

    def groups(self, traj: np.ndarray, frame: np.ndarray, n_sets: int) -> list[Group]:
        """The CI groups of these settings on the given rows (see :func:`ci_groups`)."""
        return ci_groups(self.method, self.n, self.seed, traj, frame, n_sets)


def parse_ci(ci: Mapping[str, Any]) -> CISettings:
    """Check a ``ci`` block (``{"method": "chunks", "n": 5, "seed": 0}``), filling defaults.

    ``method`` defaults to ``chunks``; ``n`` to :data:`DEFAULT_CI_N` of the method (None,
    i.e. one group per trajectory, for ``trajectories``); ``seed`` to 0.
    """
    ci = dict(ci)
    method = ci.get("method", "chunks")
    if method not in CI_METHODS:
        raise InputError(
            f"koopman settings key 'ci/method': expected one of "
            f"{', '.join(CI_METHODS)}, got {method!r}"
        )
    n = ci.get("n", DEFAULT_CI_N.get(method))
    if n is not None and (not isinstance(n, int) or n < 2):
        raise InputError(f"koopman settings key 'ci/n': expected an integer >= 2, got {n!r}")
    return CISettings(method, n, int(ci.get("seed", 0)))


# What the API accepts as ``ci``: a ci block, ready groups, or None (no CIs: NaN columns).
CISpec = Mapping[str, Any] | CISettings | Sequence[Group] | None


def resolve_groups(ci: CISpec, traj: np.ndarray, frame: np.ndarray, n_sets: int) -> list[Group]:
    """The CI groups a ``ci`` argument stands for on the given rows.

    A mapping is a ``ci`` block (:func:`parse_ci`), a :class:`CISettings` is used as is,
    a sequence of :class:`Group` is returned unchanged (its row masks must fit these rows),
    and None means no groups (CIs are NaN).
    """
    if ci is None:
        return []
    if isinstance(ci, Mapping):
        ci = parse_ci(ci)
    if isinstance(ci, CISettings):
        return ci.groups(traj, frame, n_sets)
    groups = list(ci)
    if not all(isinstance(g, Group) for g in groups):
        raise TypeError("ci: expected a mapping like {'method': 'chunks', 'n': 5}, or Groups")
    return groups
