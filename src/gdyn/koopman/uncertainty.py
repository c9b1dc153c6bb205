"""The uncertainty engine: every interval the workflow reports comes from here.

(Slightly over ~600 lines: one engine for every interval is the point of the module.)

One object, :class:`CISettings` (the ``koopman.ci`` block, read by :func:`parse_ci` and
nowhere else), makes the **replicates** of a data set (:class:`Replicates`) and turns the
replicate values of any quantity into an interval (:meth:`Replicates.interval`).

A replicate re-weights the data: every row (frame) of the probs belongs to a *unit* and
replicate ``r`` gives unit ``u`` the weight ``W[r, u]`` and target set ``s`` the weight
``V[r, s]``; a lag pair counts with the weight of its first row's unit times its set's
weight. Covariance sums are therefore summed once per (unit, set) (:func:`unit_sums`)
and every replicate's K is a weighted sum of those (:func:`replicate_koopman`), so a
replicate of K(tau), K(2 tau), ... and of the analyses costs a matrix product.

Methods (``koopman.ci.method``):

* ``bootstrap`` (default): a block bootstrap. Units are non-overlapping blocks of
  ``block`` consecutive frames of each trajectory, every target set of a frame in the
  same block (so correlations between atoms are kept); a replicate draws the blocks
  (pooled over trajectories) with replacement (multinomial counts ``W``). Block rule: the
  block is ``block_ps`` when set, else the longest of (the slowest implied timescale, the
  longest lag the quantity spans), so that blocks are roughly independent
  (``block_rule = "requested"``). When that leaves fewer than :data:`MIN_BLOCKS` blocks
  over the test data (a window shorter than 20 slowest timescales, e.g. Si-Au), the block
  is shortened to give :data:`MIN_BLOCKS` and the target sets are resampled as well,
  independently (``V``, multinomial counts; ``block_rule = "fallback"``): the two-way
  resample counts the shared variance twice, which errs on the wide side where time
  blocks alone would be too short to carry the slow correlation. (Resampling sets and
  blocks together when the blocks are long enough inflated the standard error of the CK
  differences of a 16-atom Markov chain by a factor 1.8; blocks alone: 1.1.) Intervals are percentile intervals of the
  ``n`` (default :data:`DEFAULT_N_RESAMPLES`) replicate values; a quantity that is a
  probability has its interval clipped to [0, 1] (its replicates can leave [0, 1] only
  through the non-reversible estimator's negative elements).
* ``chunks``, ``target_subsets``, ``trajectories``: the paper's CI groups (``n`` equal time
  chunks per trajectory, random disjoint target subsets, groups of test trajectories).
  Replicate g keeps group g only; intervals are Student-t over the groups
  (``mean +- t_{0.975, n-1} sd / sqrt(n)``, geometric for timescales), clipped like the
  bootstrap's where the quantity is a probability.

Point values are always the estimates from all test data pooled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.koopman.estimate import lag_pairs
from gdyn.settings import default

__all__ = [
    "CI_FORMULA",
    "CI_LEVEL",
    "CI_METHODS",
    "DEFAULT_CI",
    "DEFAULT_N_RESAMPLES",
    "MIN_BLOCKS",
    "CISettings",
    "CISpec",
    "Group",
    "Replicates",
    "block_frames_rule",
    "chunk_labels",
    "ci_groups",
    "koopman_matrices",
    "parse_ci",
    "percentile_interval",
    "replicate_koopman",
    "resolve_groups",
    "resolve_replicates",
    "t_interval",
    "unit_sums",
    "weighted_sums",
]

CI_METHODS: tuple[str, ...] = ("bootstrap", "chunks", "target_subsets", "trajectories")
CI_LEVEL = float(default("koopman", "ci", "level"))
DEFAULT_N_RESAMPLES = 500
DEFAULT_CI_N = {"bootstrap": DEFAULT_N_RESAMPLES, "chunks": 5, "target_subsets": 5}
DEFAULT_CI: dict[str, Any] = {"method": default("koopman", "ci", "method")}
# Fewest blocks a bootstrap resamples; below it the block is shortened (module docstring).
MIN_BLOCKS = 20
CI_FORMULA = {
    "bootstrap": (
        "95% percentile interval over n two-way block-bootstrap replicates (blocks of "
        "block_frames frames of each trajectory and target sets, both drawn with "
        "replacement); probabilities clipped to [0, 1]. Point values: all test data pooled."
    ),
    "groups": (
        "95% Student-t interval over the n group estimates: mean +- t_{0.975,n-1}*sd/sqrt(n), "
        "sd with ddof=1; timescales on ln(t) (geometric mean); non-finite group values "
        "dropped; probabilities clipped to [0, 1]. Point values: all test data pooled."
    ),
}
# Replicates per batch when summing (bounds temporaries to R_batch * n_sets * S^2 floats).
_BATCH = 64


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


def percentile_interval(
    samples: np.ndarray, level: float = CI_LEVEL, min_finite: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (non-finite replicates dropped per element).

    An element with fewer than ``min_finite`` of its replicates finite gets NaN (the
    quantity does not exist on most resamples, e.g. an unresolved timescale). ``inf``
    counts as a value (a timescale beyond any lag), so an upper bound can be ``inf``.
    """
    x = np.asarray(samples, dtype=float)
    if x.shape[0] == 0:
        nan = np.full(x.shape[1:], np.nan)
        return nan, nan.copy()
    ok = ~np.isnan(x)
    frac = ok.mean(axis=0)
    a = (1.0 - level) / 2
    with np.errstate(invalid="ignore"):
        low, high = np.nanquantile(np.where(ok, x, np.nan), [a, 1 - a], axis=0) if ok.any() else (
            np.full(x.shape[1:], np.nan), np.full(x.shape[1:], np.nan)
        )
    bad = frac < min_finite
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


# --------------------------------------------------------------------------------------
# The paper's CI groups


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


# --------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class CISettings:
    """The ``koopman.ci`` block with defaults filled in (:func:`parse_ci`).

    ``n`` is the number of bootstrap resamples (``bootstrap``) or of groups (None with
    ``trajectories``: one group per trajectory); ``block_ps`` the bootstrap block (None:
    the block rule of the module docstring); ``level`` the interval's coverage.
    """

    method: str = default("koopman", "ci", "method")
    n: int | None = DEFAULT_N_RESAMPLES
    seed: int = default("koopman", "ci", "seed")
    block_ps: float | None = None
    level: float = CI_LEVEL

    @property
    def bootstrap(self) -> bool:
        return self.method == "bootstrap"

    @property
    def formula(self) -> str:
        return CI_FORMULA["bootstrap" if self.bootstrap else "groups"]

    def interval(
        self,
        samples: np.ndarray,
        log_scale: bool = False,
        probability: bool = False,
        point: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Interval of a quantity from its (R, ...) replicate values (:meth:`Replicates.interval`).

        Also what a reader of saved replicate values (``replicates.csv``) calls to get the
        run's own interval for a quantity derived from them.
        """
        if self.bootstrap:
            lo, hi = percentile_interval(samples, self.level)
        else:
            lo, hi = t_interval(samples, log_scale=log_scale, level=self.level)
            if point is not None and not log_scale:
                half = 0.5 * (hi - lo)
                lo, hi = point - half, point + half
        if probability:
            lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
        return lo, hi

    def with_block(self, block_ps: float | None) -> CISettings:
        """These settings with the bootstrap block fixed (no-op for group methods or when
        the config sets one)."""
        if not self.bootstrap or self.block_ps is not None or block_ps is None:
            return self
        return replace(self, block_ps=float(block_ps))

    def replicates(
        self,
        traj: np.ndarray,
        frame: np.ndarray,
        n_sets: int,
        frame_interval_ps: float = 1.0,
        want_block_ps: float | None = None,
    ) -> Replicates:
        """The replicates of these settings on the given rows.

        ``want_block_ps`` is the block the caller's quantity asks for (the slowest timescale,
        the longest lag spanned) when the settings fix none; the block rule then caps it
        at ``MIN_BLOCKS`` blocks.
        """
        traj = np.asarray(traj, dtype=np.int64)
        frame = np.asarray(frame, dtype=np.int64)
        if self.bootstrap:
            want = self.block_ps if self.block_ps is not None else want_block_ps
            want_frames = 1 if want is None else max(1, math.ceil(want / frame_interval_ps - 1e-9))
            block, rule = block_frames_rule(traj, frame, want_frames)
            unit = _block_units(traj, frame, block)
            n_units = int(unit.max()) + 1 if unit.size else 0
            rng = np.random.default_rng(self.seed)
            n = int(self.n or DEFAULT_N_RESAMPLES)
            w = rng.multinomial(n_units, np.full(n_units, 1.0 / max(n_units, 1)), size=n)
            if n_sets > 1 and rule == "fallback":
                v = rng.multinomial(n_sets, np.full(n_sets, 1.0 / n_sets), size=n)
            else:
                v = np.ones((n, n_sets), dtype=np.int64)
            return Replicates(unit, w.astype(float), v.astype(float), self, block, rule)
        groups = ci_groups(self.method, self.n, self.seed, traj, frame, n_sets)
        return Replicates.from_groups(groups, traj.size, n_sets, self)


def parse_ci(ci: Mapping[str, Any] | None, where: str = "koopman settings key 'ci") -> CISettings:
    """Check a ``ci`` block (``{"method": "bootstrap", "n": 500, "seed": 0, "block_ps": null}``).

    ``method`` defaults to ``bootstrap``; ``n`` to 500 resamples (``bootstrap``), 5 groups
    (``chunks``, ``target_subsets``) or one group per trajectory (``trajectories``);
    ``seed`` to 0; ``block_ps`` (bootstrap only) to the block rule; ``level`` to 0.95.
    """
    ci = dict(ci or {})
    method = ci.get("method", DEFAULT_CI["method"])
    if method not in CI_METHODS:
        raise InputError(
            f"{where}/method': expected one of {', '.join(CI_METHODS)}, got {method!r}"
        )
    n = ci.get("n", DEFAULT_CI_N.get(method))
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 2):
        raise InputError(f"{where}/n': expected an integer >= 2, got {n!r}")
    block = ci.get("block_ps")
    if block is not None and (
        not isinstance(block, int | float) or isinstance(block, bool) or not block > 0
    ):
        raise InputError(f"{where}/block_ps': expected a positive number or null, got {block!r}")
    if block is not None and method != "bootstrap":
        raise InputError(f"{where}/block_ps': only with method bootstrap, got method {method!r}")
    level = ci.get("level", CI_LEVEL)
    if not isinstance(level, float) or not 0.5 <= level < 1.0:
        raise InputError(f"{where}/level': expected a number in [0.5, 1), got {level!r}")
    unknown = set(ci) - {"method", "n", "seed", "block_ps", "level"}
    if unknown:
        raise InputError(f"{where}': unknown keys {sorted(unknown)}")
    seed = ci.get("seed", default("koopman", "ci", "seed"))
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"{where}/seed': expected an integer >= 0, got {seed!r}")
    return CISettings(method, n, seed, None if block is None else float(block), float(level))


# --------------------------------------------------------------------------------------
# Replicates


def block_frames_rule(traj: np.ndarray, frame: np.ndarray, want_frames: int) -> tuple[int, str]:
    """Block length in frames: ``want_frames``, shortened to leave :data:`MIN_BLOCKS` blocks.

    Returns the block and the rule applied (``"requested"`` or ``"fallback"``).
    """
    total = _n_blocks(traj, frame, 1)
    cap = max(1, total // MIN_BLOCKS)
    want = max(1, int(want_frames))
    if want <= cap or _n_blocks(traj, frame, want) >= MIN_BLOCKS:
        return want, "requested"
    block = cap
    while block > 1 and _n_blocks(traj, frame, block) < MIN_BLOCKS:
        block -= 1
    return block, "fallback"


def _spans(traj: np.ndarray, frame: np.ndarray) -> list[int]:
    out = []
    for t in np.unique(traj):
        f = frame[traj == t]
        out.append(int(f.max() - f.min()) + 1)
    return out


def _n_blocks(traj: np.ndarray, frame: np.ndarray, block: int) -> int:
    return sum(-(-span // block) for span in _spans(traj, frame))


def _block_units(traj: np.ndarray, frame: np.ndarray, block: int) -> np.ndarray:
    """Unit (block) index of every row: consecutive ``block`` frames of one trajectory."""
    unit = np.zeros(traj.size, dtype=np.int64)
    offset = 0
    for t in np.unique(traj):
        sel = traj == t
        f = frame[sel]
        local = (f - f.min()) // block
        unit[sel] = offset + local
        offset += int(local.max()) + 1
    return unit


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class Replicates:
    """Replicate weights of one data set (module docstring).

    Attributes
    ----------
    unit : (F,) int
        Unit of every row (bootstrap block, chunk, ...).
    unit_weights : (R, U) float
    set_weights : (R, n_sets) float
    settings : CISettings
    block_frames : int or None
        The bootstrap block (None for groups).
    block_rule : str
        ``requested``, ``fallback`` or ``groups``.
    """

    unit: np.ndarray
    unit_weights: np.ndarray
    set_weights: np.ndarray
    settings: CISettings
    block_frames: int | None = None
    block_rule: str = "groups"

    @classmethod
    def from_groups(
        cls, groups: Sequence[Any], n_rows: int, n_sets: int, settings: CISettings | None = None
    ) -> Replicates:
        """Replicates that keep one CI group each (:class:`~gdyn.koopman.uncertainty.Group`)."""
        g = len(groups)
        member = np.ones((n_rows, g), dtype=bool)
        v = np.ones((g, n_sets))
        for k, grp in enumerate(groups):
            if grp.rows is not None:
                rows = np.asarray(grp.rows)
                mask = np.zeros(n_rows, dtype=bool)
                mask[rows] = True  # bool masks and index arrays alike
                member[:, k] = mask if rows.dtype != bool else rows
            if grp.sets is not None:
                v[k] = 0.0
                v[k, np.asarray(grp.sets)] = 1.0
        # One unit per distinct membership pattern, so the sums stay (few units, sets).
        patterns, unit = np.unique(member, axis=0, return_inverse=True)
        settings = settings or CISettings("chunks", g)
        return cls(unit.reshape(-1).astype(np.int64), patterns.T.astype(float), v, settings)

    @property
    def n(self) -> int:
        """Number of replicates."""
        return int(self.unit_weights.shape[0])

    @property
    def bootstrap(self) -> bool:
        return self.settings.bootstrap

    def interval(
        self,
        samples: np.ndarray,
        log_scale: bool = False,
        probability: bool = False,
        point: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Interval of a quantity from its (R, ...) replicate values.

        Percentile (bootstrap) or Student-t over groups (``log_scale``: geometric, for
        timescales; ``point``: the half-width around this pooled value instead of the
        group mean); ``probability`` clips to [0, 1].
        """
        return self.settings.interval(samples, log_scale, probability, point)


def unit_sums(
    probs: np.ndarray,
    i0: np.ndarray,
    i1: np.ndarray,
    unit: np.ndarray,
    n_units: int,
    with_c11: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``C00``, ``C01`` (``C11``) summed per (unit of the pair's first row, target set).

    Returns (U, n_sets, S, S) arrays; a (pair, set) with a non-finite entry is skipped.
    """
    n_sets, n_states = probs.shape[1], probs.shape[2]
    shape = (n_units, n_sets, n_states, n_states)
    a00, a01 = np.zeros(shape), np.zeros(shape)
    a11 = np.zeros(shape) if with_c11 else None
    if i0.size == 0:
        return a00, a01, a11
    pu = unit[i0]
    order = np.argsort(pu, kind="stable")
    i0, i1, pu = i0[order], i1[order], pu[order]
    bounds = np.flatnonzero(np.diff(pu)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [pu.size]])
    for a, b in zip(starts, ends, strict=True):
        x0 = probs[i0[a:b]].astype(np.float64)
        x1 = probs[i1[a:b]].astype(np.float64)
        ok = (np.isfinite(x0).all(-1) & np.isfinite(x1).all(-1))[..., None]
        x0 = np.where(ok, x0, 0.0)
        x1 = np.where(ok, x1, 0.0)
        u = pu[a]
        a00[u] = np.einsum("psi,psj->sij", x0, x0)
        a01[u] = np.einsum("psi,psj->sij", x0, x1)
        if a11 is not None:
            a11[u] = np.einsum("psi,psj->sij", x1, x1)
    return a00, a01, a11


def weighted_sums(a: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``sum_{u,s} w[r,u] v[r,s] a[u,s]`` for every replicate r: (R, ...) from (U, n_sets, ...)."""
    n_units, n_sets = a.shape[:2]
    rest = a.shape[2:]
    m = int(np.prod(rest))
    r = w.shape[0]
    if np.all(v == 1.0):  # sets not resampled: sum them first (one matrix product)
        return (w @ a.sum(axis=1).reshape(n_units, m)).reshape(r, *rest)
    flat = a.reshape(n_units, n_sets * m)
    out = np.empty((r, m))
    for start in range(0, r, _BATCH):
        sl = slice(start, start + _BATCH)
        t = (w[sl] @ flat).reshape(-1, n_sets, m)
        out[sl] = np.matmul(v[sl, None, :], t)[:, 0]
    return out.reshape(r, *rest)


def koopman_matrices(
    c00: np.ndarray,
    c01: np.ndarray,
    c11: np.ndarray | None = None,
    estimator: str = default("koopman", "estimator"),
    epsilon: float = 1e-10,
) -> np.ndarray:
    """Batched ``K = C00^+ C01`` (R, S, S), as :func:`~gdyn.koopman.estimate.koopman_matrix`."""
    if estimator == "reversible":
        if c11 is None:
            raise ValueError("c11: expected C11 for the reversible estimator, got None")
        c00 = 0.5 * (c00 + c11)
        c01 = 0.5 * (c01 + np.swapaxes(c01, -1, -2))
    w, vec = np.linalg.eigh(0.5 * (c00 + np.swapaxes(c00, -1, -2)))
    top = np.maximum(w.max(axis=-1, keepdims=True), 0.0)
    keep = w > epsilon * top
    with np.errstate(divide="ignore"):
        winv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    inv = (vec * winv[..., None, :]) @ np.swapaxes(vec, -1, -2)
    k = inv @ c01
    k[~keep.any(axis=-1)] = np.nan
    return k


def replicate_koopman(
    probs: np.ndarray,
    traj: np.ndarray,
    frame: np.ndarray,
    lag_frames: int,
    reps: Replicates,
    estimator: str = default("koopman", "estimator"),
    starts: list[np.ndarray] | None = None,
    pooled: list[np.ndarray] | None = None,
) -> np.ndarray:
    """K at ``lag_frames`` on every replicate: (R, S, S); NaN where a replicate has no pair.

    ``starts``, when given, receives the pooled soft count of pairs starting in each state
    (the row sums of the pooled ``C00``: memberships sum to one); ``pooled`` the K of all
    pairs (every unit and set with weight one; bootstrap only, where no pair is dropped).
    """
    i0, i1 = lag_pairs(traj, frame, lag_frames)
    if not reps.bootstrap:
        # A CI group is estimated on its own rows: both ends of a pair in the group.
        same = reps.unit[i0] == reps.unit[i1]
        i0, i1 = i0[same], i1[same]
    n_units = reps.unit_weights.shape[1]
    rev = estimator == "reversible"
    a00, a01, a11 = unit_sums(probs, i0, i1, reps.unit, n_units, with_c11=rev)
    w, v = reps.unit_weights, reps.set_weights
    if starts is not None:
        starts.append(a00.sum(axis=(0, 1, 3)))
    if pooled is not None:
        one = (a00.sum(axis=(0, 1)), a01.sum(axis=(0, 1)))
        c11p = None if a11 is None else a11.sum(axis=(0, 1))[None]
        pooled.append(koopman_matrices(one[0][None], one[1][None], c11p, estimator)[0])
    c00 = weighted_sums(a00, w, v)
    c01 = weighted_sums(a01, w, v)
    c11 = weighted_sums(a11, w, v) if a11 is not None else None
    return koopman_matrices(c00, c01, c11, estimator)


# What the API accepts as ``ci``: a ci block, settings, ready groups, or None (no CIs).
CISpec = Mapping[str, Any] | CISettings | Sequence[Group] | None


def resolve_replicates(
    ci: CISpec,
    traj: np.ndarray,
    frame: np.ndarray,
    n_sets: int,
    frame_interval_ps: float = 1.0,
    want_block_ps: float | None = None,
) -> Replicates | None:
    """The replicates a ``ci`` argument stands for on the given rows (None: no CIs).

    A mapping is a ``ci`` block (:func:`parse_ci`), a :class:`CISettings` is used as is
    (``want_block_ps``: the block the quantity asks for, see :meth:`CISettings.replicates`),
    and a sequence of :class:`Group` gives one replicate per group.
    """
    if ci is None:
        return None
    if isinstance(ci, Mapping):
        ci = parse_ci(ci)
    if isinstance(ci, CISettings):
        return ci.replicates(traj, frame, n_sets, frame_interval_ps, want_block_ps)
    groups = list(ci)
    if not all(isinstance(g, Group) for g in groups):
        raise TypeError("ci: expected a mapping like {'method': 'bootstrap'}, or Groups")
    if not groups:
        return None
    return Replicates.from_groups(groups, np.asarray(traj).size, n_sets)


def resolve_groups(ci: CISpec, traj: np.ndarray, frame: np.ndarray, n_sets: int) -> list[Group]:
    """The CI groups of a group method (kept for the group API; bootstrap has none)."""
    if ci is None:
        return []
    if isinstance(ci, Mapping):
        ci = parse_ci(ci)
    if isinstance(ci, CISettings):
        if ci.bootstrap:
            raise ValueError("ci: the bootstrap has no groups; use resolve_replicates")
        return ci_groups(ci.method, ci.n, ci.seed, traj, frame, n_sets)
    return list(ci)
