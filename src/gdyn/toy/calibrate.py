"""Calibration of the toy against the paper's two ground-truth observables.

The paper does not publish its Born-Mayer parameters, only two numbers that follow from the
dynamics of its trajectory: the tetrahedral population (~9.1 %, the stationary vector
[0.995, 0.0997] of the original code's published K at tau = 10 ps) and the two-state
tet <-> oct relaxation time at a 10 ps lag (42.3 ps). This module measures both for given
settings, from the simulator's own geometric site labels only:

- :func:`transition_state_theory`: Boltzmann quadrature of the tetrahedral population and
  the transition-state-theory (TST) rate through the shared S faces, without MD. TST is the
  no-recrossing upper bound on the hopping rate, so its relaxation time is a lower bound on
  the simulated one at any friction.
- :func:`wall_r_for_population`: the Born-Mayer anchor ``wall_r_A`` that gives a target
  tetrahedral population (quadrature; the population is a static property).
- :func:`bootstrap_site_statistics` and :func:`measure`: the tet fraction and the two-state
  MSM relaxation time of simulated labels, with bootstrap standard errors over Li.

``scripts/calibrate_toy.py`` scans settings with these functions; the measured table and the
chosen point are in ``docs/toy.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from gdyn.config import lag_to_frames
from gdyn.errors import InputError
from gdyn.toy.md import simulate
from gdyn.toy.potential import (
    KB_EV_PER_K,
    LI_MASS_AMU,
    ToySettings,
    boltzmann_tet_population,
    minimum_image_energy_eV,
)
from gdyn.toy.sites import TETRAHEDRAL, _columns, count_transitions, label_sites

__all__ = [
    "PAPER_LAG_PS",
    "PAPER_RELAXATION_PS",
    "PAPER_TET_POPULATION",
    "bootstrap_site_statistics",
    "measure",
    "transition_state_theory",
    "wall_r_for_population",
]

# Stationary vector of the original code's published K at tau = 10 ps: [0.995, 0.0997].
PAPER_TET_POPULATION = 0.0997 / (0.995 + 0.0997)
PAPER_RELAXATION_PS = 42.3  # main text, Fig. 2b: GDyNet, 2 states, tau = 10 ps
PAPER_LAG_PS = 10.0

_AMU_KG = 1.66053906660e-27
_EV_J = 1.602176634e-19


def _face_centroids(n: int) -> np.ndarray:
    """Barycentric (u, v) of the centroids of the n^2 congruent sub-triangles of a triangle."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    up = i + j <= n - 1
    down = i + j <= n - 2
    u = np.concatenate([(i[up] + 1 / 3) / n, (i[down] + 2 / 3) / n])
    v = np.concatenate([(j[up] + 1 / 3) / n, (j[down] + 2 / 3) / n])
    return np.stack([u, v], axis=1)


def transition_state_theory(
    s: ToySettings, n_grid: int = 40, n_face: int = 400
) -> dict[str, float]:
    """Tetrahedral population and TST hopping rate of ``s`` by quadrature (no MD).

    The rate out of one tetrahedron through its 4 faces is
    ``k_tet_to_oct = sqrt(kT / (2 pi m)) * 4 Z_face / Z_tet`` with ``Z_face`` the Boltzmann
    weight ``exp(-V/kT)`` integrated over one shared S triangle (the dividing surface of the
    site labels) and ``Z_tet`` over one tetrahedron. The two-state relaxation time is
    ``1 / (k_tet_to_oct + k_oct_to_tet) = pi_oct / k_tet_to_oct`` (detailed balance).

    Parameters
    ----------
    s
        Toy settings (lattice, temperature, potential).
    n_grid
        Midpoint-rule points per axis on the octant ``[0, a/2]^3``, which holds one whole
        tetrahedron and 1/8 of the octahedral volume (cubic symmetry).
    n_face
        Subdivisions per triangle edge (``n_face^2`` sub-triangles, centroid rule).

    Returns
    -------
    dict
        ``tet_population``, ``z_face_A2``, ``z_tet_A3``, ``k_tet_to_oct_per_ps`` and
        ``relaxation_ps`` (TST: a lower bound on the relaxation time at any friction).
    """
    a = s.lattice_A
    kt = KB_EV_PER_K * s.temperature_K
    # The face shared by the tetrahedron around (1/4, 1/4, 1/4) a and the octahedron around
    # (1/2, 1/2, 1/2) a: the S triangle on the plane x + y + z = a.
    p0, p1, p2 = (np.array(p) * a for p in ([0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]))
    uv = _face_centroids(n_face)
    points = p0 + uv[:, :1] * (p1 - p0) + uv[:, 1:] * (p2 - p0)
    area = float(np.linalg.norm(np.cross(p1 - p0, p2 - p0))) / 2
    z_face = float(np.exp(-minimum_image_energy_eV(points, s) / kt).mean()) * area
    h = a / 2 / n_grid
    axis = (np.arange(n_grid) + 0.5) * h
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    weight = np.exp(-minimum_image_energy_eV(grid, s) / kt) * h**3
    tet = label_sites(grid, a) == TETRAHEDRAL
    z_tet, z_oct_octant = float(weight[tet].sum()), float(weight[~tet].sum())
    pi_tet = z_tet / (z_tet + z_oct_octant)
    # sqrt(kT / 2 pi m) in Angstrom / ps
    v = math.sqrt(kt * _EV_J / (2 * math.pi * LI_MASS_AMU * _AMU_KG)) * 1e-2
    k_to = v * 4 * z_face / z_tet if z_tet > 0 else math.inf
    return {
        "tet_population": pi_tet,
        "z_face_A2": z_face,
        "z_tet_A3": z_tet,
        "k_tet_to_oct_per_ps": k_to,
        "relaxation_ps": (1 - pi_tet) / k_to if k_to > 0 else math.inf,
    }


def wall_r_for_population(
    s: ToySettings,
    target: float = PAPER_TET_POPULATION,
    bracket: tuple[float, float] | None = None,
    n_grid: int = 40,
    xtol: float = 1e-5,
) -> float:
    """``wall_r_A`` (at fixed ``rho_A``, ``wall_energy_eV``, cutoff) giving a tet population.

    Solves ``boltzmann_tet_population(s) = target`` by Brent's method. A larger ``wall_r_A``
    is a stronger wall, which takes a larger share of the small tetrahedra.

    Parameters
    ----------
    s
        Settings whose other keys are kept.
    target
        Tetrahedral population in (0, 1/3) (1/3 is the volume share of the tetrahedra).
    bracket
        ``(low, high)`` wall positions in Angstrom that bracket the root; default
        ``(0.01, cutoff)``.
    n_grid, xtol
        Quadrature points per axis and the tolerance on ``wall_r_A`` (Angstrom).
    """
    from scipy.optimize import brentq

    if not 0.0 < target < 1.0 / 3.0:
        raise InputError(f"target tet population: expected in (0, 1/3), got {target}")
    lo, hi = bracket if bracket is not None else (0.01, s.cutoff_A)

    def excess(wall_r: float) -> float:
        return boltzmann_tet_population(dataclasses.replace(s, wall_r_A=wall_r), n_grid) - target

    f_lo, f_hi = excess(lo), excess(hi)
    if f_lo * f_hi > 0:
        raise InputError(
            f"wall_r_A bracket [{lo:g}, {hi:g}] A: expected tet populations either side of "
            f"{target:.4f}, got {f_lo + target:.4f} and {f_hi + target:.4f}"
        )
    return float(brentq(excess, lo, hi, xtol=xtol))


def _pair_counts(units: Sequence[np.ndarray], lag_frames: int) -> np.ndarray:
    """(n_units, 2, 2) sliding-window transition counts of each label trajectory."""
    out = np.zeros((len(units), 2, 2))
    for k, col in enumerate(units):
        if len(col) > lag_frames:
            np.add.at(out[k], (col[:-lag_frames], col[lag_frames:]), 1.0)
    return out


def _relaxation_frames(counts: np.ndarray) -> np.ndarray:
    """Two-state relaxation time (frames per lag) of count matrices (..., 2, 2), lag 1."""
    rows = counts.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = counts[..., 0, 0] / rows[..., 0] + counts[..., 1, 1] / rows[..., 1] - 1.0
        out = np.where((lam > 0) & (lam < 1), -1.0 / np.log(np.where(lam > 0, lam, 1.0)), np.nan)
    return out


def _std(values: np.ndarray) -> float:
    """Sample standard deviation of the finite values (NaN with fewer than two)."""
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if len(finite) >= 2 else math.nan


def bootstrap_site_statistics(
    labels: np.ndarray | Sequence[np.ndarray],
    frame_interval_ps: float,
    lag_ps: float = PAPER_LAG_PS,
    n_boot: int = 1000,
    blocks: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """Tet fraction and two-state relaxation time of site labels, with bootstrap errors.

    The estimates are those of :func:`gdyn.toy.site_statistics` (all trajectories pooled,
    sliding-window counts), whatever ``blocks``. The standard errors resample whole units with
    replacement:
    the trajectories (columns), each cut into ``blocks`` contiguous pieces (use
    ``blocks > 1`` for a single long trajectory; pieces must be much longer than the
    relaxation time).

    Parameters
    ----------
    labels
        (F,) or (F, n) labels, or a list of them (see :func:`gdyn.toy.sites.two_state_msm`).
    frame_interval_ps, lag_ps
        Frame spacing and the MSM lag (ps).
    n_boot, blocks, seed
        Bootstrap resamples, pieces per trajectory, and the generator seed.

    Returns
    -------
    dict
        ``li_ns``, ``transitions``, ``transitions_per_li_ns``, ``tet_fraction``,
        ``tet_fraction_se``, ``relaxation_ps``, ``relaxation_se_ps``, ``lag_ps``,
        ``n_units``.
    """
    if blocks < 1 or n_boot < 2:
        raise InputError(f"blocks, n_boot: expected >= 1 and >= 2, got {blocks}, {n_boot}")
    lag = lag_to_frames(lag_ps, frame_interval_ps)
    units = [piece for col in _columns(labels) for piece in np.array_split(col, blocks)]
    frames = np.array([len(u) for u in units], dtype=float)
    tet = np.array([float(np.count_nonzero(u == TETRAHEDRAL)) for u in units])
    counts = _pair_counts(units, lag)
    whole = _pair_counts(_columns(labels), lag).sum(axis=0)  # also the pairs across blocks
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(units), size=(n_boot, len(units)))
    boot_fraction = tet[pick].sum(axis=1) / frames[pick].sum(axis=1)
    boot_relax = _relaxation_frames(counts[pick].sum(axis=1)) * lag * frame_interval_ps
    li_ns = frames.sum() * frame_interval_ps / 1000.0
    transitions = float(sum(count_transitions(c[:, None]) for c in _columns(labels)))
    return {
        "li_ns": li_ns,
        "transitions": transitions,
        "transitions_per_li_ns": transitions / li_ns,
        "tet_fraction": float(tet.sum() / frames.sum()),
        "tet_fraction_se": _std(boot_fraction),
        "relaxation_ps": float(_relaxation_frames(whole) * lag * frame_interval_ps),
        "relaxation_se_ps": _std(boot_relax),
        "lag_ps": float(lag_ps),
        "n_units": len(units),
    }


def measure(
    s: ToySettings,
    lags_ps: Sequence[float] = (1.0, 5.0, PAPER_LAG_PS, 20.0, 40.0),
    frame_interval_ps: float = 0.1,
    platform: str = "Reference",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """Simulate ``s.n_li`` Li (one job) and return the ground-truth observables.

    Returns
    -------
    dict
        ``tet_fraction`` and ``tet_fraction_se``, ``transitions``, ``li_ns``, and
        ``relaxation_ps`` / ``relaxation_se_ps``: ``{lag_ps: value}`` for every lag (from
        :func:`bootstrap_site_statistics`), plus the quadrature values ``boltzmann`` (tet
        population) and ``tst_relaxation_ps``.
    """
    job = simulate(s, list(range(s.n_li)), frame_interval_ps, platform=platform, progress=False)
    per_lag = {
        float(lag): bootstrap_site_statistics(
            job["site_label"], frame_interval_ps, lag, n_boot=n_boot, seed=seed
        )
        for lag in lags_ps
    }
    first = next(iter(per_lag.values()))
    tst = transition_state_theory(s)
    return {
        "li_ns": first["li_ns"],
        "transitions": first["transitions"],
        "transitions_per_li_ns": first["transitions_per_li_ns"],
        "tet_fraction": first["tet_fraction"],
        "tet_fraction_se": first["tet_fraction_se"],
        "relaxation_ps": {lag: v["relaxation_ps"] for lag, v in per_lag.items()},
        "relaxation_se_ps": {lag: v["relaxation_se_ps"] for lag, v in per_lag.items()},
        "boltzmann": tst["tet_population"],
        "tst_relaxation_ps": tst["relaxation_ps"],
    }
