"""The toy potential: Li in a frozen FCC S lattice with a repulsive Born-Mayer wall (numpy).

Physics (paper, Methods "Lithium diffusion in the FCC lattice toy system"): one Li per
cubic cell of four S (a = 6.5 Angstrom), S frozen, a purely repulsive Born-Mayer term
``A exp(-r / rho)`` between Li and S and nothing else, Langevin NVT at 64 K, 1 fs steps,
positions every 0.1 ps. See ``docs/toy.md`` for the parameter choice and measurements.

This module holds the settings and an independent numpy lattice sum of the potential
(energies along the tet-oct-tet path, Fig. 2a; Boltzmann site populations); the OpenMM
simulation is in :mod:`gdyn.toy.md`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.settings import default
from gdyn.toy.sites import SITE_NAMES, TETRAHEDRAL, label_sites

__all__ = [
    "EV_TO_KJ_PER_MOL",
    "KB_EV_PER_K",
    "LI",
    "LI_MASS_AMU",
    "S_BASIS",
    "S",
    "ToySettings",
    "boltzmann_tet_population",
    "born_mayer_energy_eV",
    "born_mayer_prefactor",
    "energy_path_table",
    "minimum_image_energy_eV",
    "parse_settings",
    "plot_energy_path",
    "s_positions",
    "site_energies_meV",
    "steps_per_frame",
    "tet_oct_tet_path",
]

LI, S = 3, 16
LI_MASS_AMU = 6.94
EV_TO_KJ_PER_MOL = 96.48533212331002
KB_EV_PER_K = 8.617333262e-5

# Fractional positions of the S in the conventional FCC cell.
S_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


@dataclass(frozen=True)
class ToySettings:
    """The ``simulate`` block of a toy system.

    Defaults: the calibrated toy (docs/toy.md, "Calibration"): ``wall_r_A`` gives the paper's
    9.1 % tetrahedral population and ``friction_per_ps`` its 42.3 ps relaxation at a 10 ps lag.
    The keys the schema gives a default (``n_jobs``, ``equilibration_ps``) take it from there.
    """

    n_li: int = 16
    n_jobs: int = default("simulate", "n_jobs")
    duration_ps: float = 8000.0
    equilibration_ps: float = default("simulate", "equilibration_ps")
    temperature_K: float = 64.0
    timestep_fs: float = 1.0
    friction_per_ps: float = 140.0
    lattice_A: float = 6.5
    rho_A: float = 0.05
    wall_r_A: float = 2.343
    wall_energy_eV: float = 1.0
    cutoff_A: float = 3.2
    seed: int = 2019

    @property
    def prefactor_eV(self) -> float:
        """Born-Mayer A (eV) such that A exp(-wall_r_A / rho_A) = wall_energy_eV."""
        return born_mayer_prefactor(self.wall_energy_eV, self.wall_r_A, self.rho_A)


_INT_KEYS = {"n_li", "n_jobs", "seed"}


def parse_settings(raw: Mapping[str, Any], where: str = "--settings") -> ToySettings:
    """Validate a ``simulate`` mapping (missing keys take the defaults of :class:`ToySettings`)."""
    known = set(ToySettings.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}: key {key!r}: expected a number, got {value!r}")
        if key in _INT_KEYS:
            if int(value) != value:
                raise InputError(f"{where}: key {key!r}: expected an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value):
            raise InputError(f"{where}: key {key!r}: expected a finite number, got {value!r}")
        values[key] = value
    s = ToySettings(**values)
    for key in known - {"seed", "equilibration_ps"}:
        if getattr(s, key) <= 0:
            raise InputError(f"{where}: key {key!r}: expected > 0, got {getattr(s, key)!r}")
    if s.equilibration_ps < 0 or s.seed < 0:
        bad = "equilibration_ps" if s.equilibration_ps < 0 else "seed"
        raise InputError(f"{where}: key {bad!r}: expected >= 0, got {getattr(s, bad)!r}")
    if s.cutoff_A > s.lattice_A / 2:
        # Beyond a/2 two images of one S sublattice could both be in range, and the
        # minimum-image sum would no longer be the lattice sum.
        raise InputError(
            f"{where}: key 'cutoff_A': expected <= lattice_A / 2 = {s.lattice_A / 2:g}, "
            f"got {s.cutoff_A:g}"
        )
    return s


def born_mayer_prefactor(wall_energy_eV: float, wall_r_A: float, rho_A: float) -> float:
    """A (eV) of ``A exp(-r/rho)`` with value ``wall_energy_eV`` at ``wall_r_A``."""
    return wall_energy_eV * math.exp(wall_r_A / rho_A)


def s_positions(lattice_A: float) -> np.ndarray:
    """Cartesian positions (4, 3) of the S basis in the cubic cell (Angstrom)."""
    return S_BASIS * lattice_A


def steps_per_frame(s: ToySettings, frame_interval_ps: float) -> int:
    """MD steps between stored frames; the frame interval must be a whole number of steps."""
    ratio = frame_interval_ps * 1000.0 / s.timestep_fs
    n = round(ratio)
    if n < 1 or abs(ratio - n) > 1e-6 * ratio:
        raise InputError(
            f"--frame-interval-ps {frame_interval_ps:g}: expected a whole multiple of "
            f"timestep_fs {s.timestep_fs:g} fs, got {ratio:g} steps"
        )
    return int(n)


# ---------------------------------------------------------------- the potential (numpy)


def born_mayer_energy_eV(positions_A: np.ndarray, s: ToySettings) -> np.ndarray:
    """Energy (eV) of Li at ``positions_A`` (..., 3) in the S lattice: brute-force lattice sum.

    Sums over every S image in the 27 cells around the minimum image, independent of the
    minimum-image expression OpenMM evaluates. The term is shifted to zero at the cutoff
    (continuous energy; the shift is ~1e-7 eV for the defaults).
    """
    pos = np.asarray(positions_A, dtype=float)
    a = s.lattice_A
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    shift_at_cutoff = math.exp((s.wall_r_A - s.cutoff_A) / s.rho_A)
    energy = np.zeros(pos.shape[:-1])
    for site in s_positions(a):
        d = pos - site
        d = d - a * np.round(d / a)
        for shift in shifts:
            r = np.linalg.norm(d + a * shift, axis=-1)
            term = np.exp((s.wall_r_A - r) / s.rho_A) - shift_at_cutoff
            energy += np.where(r < s.cutoff_A, term, 0.0)
    return s.wall_energy_eV * energy


def minimum_image_energy_eV(positions_A: np.ndarray, s: ToySettings) -> np.ndarray:
    """:func:`born_mayer_energy_eV` by minimum image only: ~27x faster, for quadratures.

    Exact when ``cutoff_A <= lattice_A / 2`` (what :func:`parse_settings` enforces): every
    other image of an S is at least a/2 away. Falls back to the brute-force sum otherwise.
    """
    if s.cutoff_A > s.lattice_A / 2:
        return born_mayer_energy_eV(positions_A, s)
    pos = np.asarray(positions_A, dtype=float)
    a = s.lattice_A
    shift_at_cutoff = math.exp((s.wall_r_A - s.cutoff_A) / s.rho_A)
    energy = np.zeros(pos.shape[:-1])
    for site in s_positions(a):
        d = pos - site
        d = d - a * np.round(d / a)
        r = np.linalg.norm(d, axis=-1)
        term = np.exp((s.wall_r_A - r) / s.rho_A) - shift_at_cutoff
        energy += np.where(r < s.cutoff_A, term, 0.0)
    return s.wall_energy_eV * energy


def tet_oct_tet_path(lattice_A: float, n_points: int = 601) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, 3) on the straight tet (1/4) -> oct (1/2) -> tet (3/4) path along [111].

    The line passes through the centres of the two shared triangular S faces, the saddles.
    Returns (path coordinate in Angstrom from the first tet site, Cartesian points).
    """
    if n_points < 3 or n_points % 2 == 0:
        raise InputError(f"n_points: expected an odd number >= 3, got {n_points}")
    frac = np.linspace(0.25, 0.75, n_points)
    points = np.repeat(frac[:, None], 3, axis=1) * lattice_A
    coordinate = (frac - 0.25) * lattice_A * math.sqrt(3.0)
    return coordinate, points


def energy_path_table(s: ToySettings, n_points: int = 601) -> dict[str, np.ndarray]:
    """Columns of ``energy_path.csv``: energy (meV, relative to the octahedral site) on the path."""
    coordinate, points = tet_oct_tet_path(s.lattice_A, n_points)
    energy_eV = born_mayer_energy_eV(points, s)
    mid = n_points // 2
    site = np.full(n_points, "", dtype=object)
    site[0], site[mid], site[-1] = "tet", "oct", "tet"
    polyhedron = np.array(
        [SITE_NAMES[int(x)] for x in label_sites(points[:, None, :], s.lattice_A)[:, 0]]
    )
    return {
        "path_coordinate_A": coordinate,
        "energy_meV": (energy_eV - energy_eV[mid]) * 1000.0,
        "site": site,
        "polyhedron": polyhedron,
    }


def site_energies_meV(s: ToySettings) -> dict[str, float]:
    """Energies (meV, relative to the octahedral site) of the tet site and the saddle.

    The saddle of the tet -> oct hop is the centre of the shared S triangle, (1/3, 1/3, 1/3) a
    on the [111] path: a maximum along the path and a minimum within the face.
    """
    points = np.array([[0.5] * 3, [0.25] * 3, [1 / 3] * 3]) * s.lattice_A
    oct_e, tet_e, saddle_e = born_mayer_energy_eV(points, s) * 1000.0
    return {"oct": 0.0, "tet": float(tet_e - oct_e), "barrier": float(saddle_e - oct_e)}


def boltzmann_tet_population(s: ToySettings, n_grid: int = 40) -> float:
    """Equilibrium probability of the tetrahedral polyhedra, by quadrature of exp(-V/kT).

    Midpoint rule on the octant [0, a/2]^3, which the cubic symmetry makes representative
    of the whole cell. An independent check of the sampled temperature and potential.
    """
    h = s.lattice_A / 2 / n_grid
    axis = (np.arange(n_grid) + 0.5) * h
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    energy = minimum_image_energy_eV(grid, s)
    weight = np.exp(-(energy - energy.min()) / (KB_EV_PER_K * s.temperature_K))
    tet = label_sites(grid, s.lattice_A) == TETRAHEDRAL
    return float(weight[tet].sum() / weight.sum())


def plot_energy_path(table: Mapping[str, np.ndarray]) -> Any:
    """Quick-look figure of :func:`energy_path_table`: energy along the path, sites marked.

    Returns the matplotlib Figure (the caller saves and closes it); the backend is the
    caller's choice (the CLI uses Agg).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(table["path_coordinate_A"], table["energy_meV"], color="k")
    for x, y, name in zip(
        table["path_coordinate_A"], table["energy_meV"], table["site"], strict=True
    ):
        if name:
            ax.annotate(
                name.capitalize(),
                (x, y),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
            )
    ax.set_xlabel("Tet-Oct-Tet path (Å)")
    ax.set_ylabel("Energy (meV)")
    fig.tight_layout()
    return fig
