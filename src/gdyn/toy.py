"""The paper's toy system, simulated with OpenMM: Li hopping in a frozen FCC S lattice.

Physics (paper, Methods "Lithium diffusion in the FCC lattice toy system"): one Li per
cubic cell of four S (a = 6.5 Angstrom), S frozen, a purely repulsive Born-Mayer term
``A exp(-r / rho)`` between Li and S and nothing else, Langevin NVT at 64 K, 1 fs steps,
positions every 0.1 ps. See ``docs/toy.md`` for the parameter choice and measurements.

Because the S never move and Li-Li is off, the S are not particles at all: each Li feels one
``CustomExternalForce`` that sums the Born-Mayer term over the four S basis positions by
minimum image. With ``cutoff_A <= lattice_A / 2`` at most one image of each S sublattice is
inside the cutoff, so the minimum image is the exact lattice sum. Several non-interacting Li
share one OpenMM system (one Reference-platform context per job); each Li is then stored as
its own 5-atom (1 Li + 4 S) periodic trajectory in the raw format of ``docs/contracts.md``.

Subcommands: ``gdyn simulate-toy`` (one job: a batch of Li), ``gdyn toy-cell`` (one Li of a
job as a raw trajectory), ``gdyn toy-energy`` (energy along the tet-oct-tet path, Fig. 2a).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError

log = logging.getLogger(__name__)

LI, S = 3, 16
LI_MASS_AMU = 6.94
EV_TO_KJ_PER_MOL = 96.48533212331002
KB_EV_PER_K = 8.617333262e-5

# Fractional positions in the conventional FCC cell.
S_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
OCT_SITES = np.array([[0.5, 0.5, 0.5], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]])
TET_SITES = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])
OCTAHEDRAL, TETRAHEDRAL = 0, 1
SITE_NAMES = {OCTAHEDRAL: "oct", TETRAHEDRAL: "tet"}


class SimulationError(RuntimeError):
    """OpenMM is missing or the requested platform cannot run the toy system."""


@dataclass(frozen=True)
class ToySettings:
    """The ``simulate`` block of a toy system (defaults: the documented choice, docs/toy.md)."""

    n_li: int = 16
    n_jobs: int = 2
    duration_ps: float = 16000.0
    equilibration_ps: float = 200.0
    temperature_K: float = 64.0
    timestep_fs: float = 1.0
    friction_per_ps: float = 1.0
    lattice_A: float = 6.5
    rho_A: float = 0.05
    wall_r_A: float = 2.404
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
    energy = born_mayer_energy_eV(grid, s)
    weight = np.exp(-(energy - energy.min()) / (KB_EV_PER_K * s.temperature_K))
    tet = label_sites(grid, s.lattice_A) == TETRAHEDRAL
    return float(weight[tet].sum() / weight.sum())


# ---------------------------------------------------------------- site labels and MSM


def label_sites(coords_A: np.ndarray, lattice_A: float) -> np.ndarray:
    """Containing polyhedron of each Li: 0 octahedral, 1 tetrahedral; shape ``coords.shape[:-1]``.

    The S octahedron around an octahedral site is ``|dx| + |dy| + |dz| <= a/2`` (minimum
    image); everything else in the FCC cell lies in a tetrahedron. The shared triangular face
    is the dividing surface, which holds the saddle of the potential, so labels do not flip
    while the Li rattles in a site (nearest-site labels do).
    """
    c = np.asarray(coords_A, dtype=float)
    a = lattice_A
    inside = np.zeros(c.shape[:-1], dtype=bool)
    for site in OCT_SITES * a:
        d = c - site
        d = d - a * np.round(d / a)
        inside |= np.abs(d).sum(axis=-1) <= a / 2
    return np.where(inside, OCTAHEDRAL, TETRAHEDRAL).astype(np.int8)


def count_transitions(labels: np.ndarray) -> int:
    """Number of label changes between consecutive frames, summed over columns (F, n)."""
    lab = np.asarray(labels)
    return int(np.count_nonzero(lab[1:] != lab[:-1]))


def _columns(labels: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Label arrays (F,) / (F, n), or a list of them, as a list of (F_i,) trajectories."""
    arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
    cols: list[np.ndarray] = []
    for arr in arrays:
        a = np.asarray(arr)
        cols += [a] if a.ndim == 1 else [a[:, j] for j in range(a.shape[1])]
    return cols


def two_state_msm(labels: np.ndarray | Sequence[np.ndarray], lag_frames: int) -> dict[str, float]:
    """Two-state MSM from site labels: sliding-window counts pooled over all trajectories.

    ``labels``: (F,) or (F, n) int labels (each column one trajectory), or a list of such
    arrays of different lengths. Every 2x2 transition matrix is reversible, so the
    row-normalised count matrix is the maximum-likelihood estimate. Returns the transition
    probabilities, ``lambda2 = T00 + T11 - 1``, the relaxation time in frames
    ``-lag / ln(lambda2)`` and the stationary tetrahedral population.
    """
    if lag_frames < 1:
        raise InputError(f"lag_frames: expected >= 1, got {lag_frames}")
    counts = np.zeros((2, 2))
    for col in _columns(labels):
        if len(col) > lag_frames:
            np.add.at(counts, (col[:-lag_frames], col[lag_frames:]), 1.0)
    if np.any(counts.sum(axis=1) == 0):
        raise InputError(
            f"site_label: both sites must be visited for a two-state MSM at lag {lag_frames} "
            f"frames, got counts {counts.tolist()}"
        )
    t = counts / counts.sum(axis=1, keepdims=True)
    lam = t[0, 0] + t[1, 1] - 1.0
    flux = t[0, 1] + t[1, 0]
    relax = -lag_frames / math.log(lam) if 0 < lam < 1 else float("nan")
    return {
        "p_oct_to_tet": float(t[0, 1]),
        "p_tet_to_oct": float(t[1, 0]),
        "lambda2": float(lam),
        "relaxation_frames": float(relax),
        "tet_population": float(t[0, 1] / flux) if flux > 0 else float("nan"),
        "n_pairs": float(counts.sum()),
    }


def site_statistics(
    labels: np.ndarray | Sequence[np.ndarray], frame_interval_ps: float, lag_ps: float = 10.0
) -> dict[str, float]:
    """Ground-truth statistics of site labels: sampled time, transitions, tet entries, MSM."""
    from gdyn.config import lag_to_frames

    cols = _columns(labels)
    lag = lag_to_frames(lag_ps, frame_interval_ps)
    try:
        msm = two_state_msm(cols, lag)
    except InputError:  # a site never visited: no MSM, but the counts still say so
        msm = {"relaxation_frames": float("nan"), "tet_population": float("nan")}
    frames = sum(len(c) for c in cols)
    entries = sum(
        int(np.count_nonzero((c[1:] == TETRAHEDRAL) & (c[:-1] == OCTAHEDRAL))) for c in cols
    )
    return {
        "n_trajectories": len(cols),
        "li_ns": frames * frame_interval_ps / 1000.0,
        "tet_fraction": float(sum(int(c.sum()) for c in cols) / frames),
        "transitions": sum(count_transitions(c[:, None]) for c in cols),
        "tet_entries": entries,
        "lag_ps": float(lag_ps),
        "relaxation_ps": msm["relaxation_frames"] * frame_interval_ps,
        "msm_tet_population": msm["tet_population"],
    }


# ---------------------------------------------------------------- OpenMM


def _import_openmm() -> Any:
    try:
        import openmm
    except ImportError as exc:
        raise SimulationError(
            f"OpenMM is not installed ({exc}); install it with `pip install openmm` or "
            "`conda install -c conda-forge openmm`"
        ) from None
    return openmm


def external_force_expression(s: ToySettings) -> str:
    """OpenMM (nm, kJ/mol) energy expression of one Li: the shifted wall over the 4 S sites."""
    nm = 0.1
    terms, defs = [], []
    for k, site in enumerate(s_positions(s.lattice_A) * nm):
        terms.append(f"step(rc-r{k})*(exp((rw-r{k})/rho)-shift)")
        defs.append(
            f"r{k}=periodicdistance(x,y,z,{float(site[0])!r},{float(site[1])!r},{float(site[2])!r})"
        )
    return (
        f"ew*({' + '.join(terms)}); "
        + "; ".join(defs)
        + f"; shift=exp((rw-rc)/rho); ew={s.wall_energy_eV * EV_TO_KJ_PER_MOL!r}"
        + f"; rw={s.wall_r_A * nm!r}; rc={s.cutoff_A * nm!r}; rho={s.rho_A * nm!r}"
    )


def build_system(s: ToySettings, n_particles: int) -> Any:
    """An OpenMM System of ``n_particles`` non-interacting Li in the frozen S lattice."""
    openmm = _import_openmm()
    system = openmm.System()
    a_nm = s.lattice_A * 0.1
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(a_nm, 0, 0), openmm.Vec3(0, a_nm, 0), openmm.Vec3(0, 0, a_nm)
    )
    force = openmm.CustomExternalForce(external_force_expression(s))
    for i in range(n_particles):
        system.addParticle(LI_MASS_AMU)
        force.addParticle(i, [])
    system.addForce(force)
    # No CMMotionRemover: it would freeze a lone Li (its centre of mass is the Li).
    return system


def make_context(
    s: ToySettings, positions_A: np.ndarray, platform: str = "Reference", seed: int = 1
) -> tuple[Any, Any]:
    """(Context, Integrator): Langevin NVT for Li at ``positions_A`` (n, 3)."""
    openmm = _import_openmm()
    from openmm import unit

    pos = np.asarray(positions_A, dtype=float)
    system = build_system(s, len(pos))
    integrator = openmm.LangevinMiddleIntegrator(
        s.temperature_K * unit.kelvin,
        s.friction_per_ps / unit.picosecond,
        s.timestep_fs * unit.femtosecond,
    )
    # OpenMM treats seed 0 as "pick one at random": keep it deterministic and nonzero.
    integrator.setRandomNumberSeed(int(seed) % 2_147_483_646 + 1)
    try:
        plat = openmm.Platform.getPlatformByName(platform)
    except Exception as exc:
        names = [
            openmm.Platform.getPlatform(i).getName()
            for i in range(openmm.Platform.getNumPlatforms())
        ]
        raise SimulationError(
            f"OpenMM platform {platform!r} is not available ({exc}); available: {', '.join(names)}"
        ) from None
    try:
        context = openmm.Context(system, integrator, plat)
    except Exception as exc:
        raise SimulationError(
            f"OpenMM platform {platform!r} failed to create a context: {exc}"
        ) from None
    context.setPositions((pos * 0.1).tolist())
    context.setVelocitiesToTemperature(s.temperature_K * unit.kelvin, int(seed) % 2_147_483_646 + 1)
    return context, integrator


def energies_and_forces(
    s: ToySettings, positions_A: np.ndarray, platform: str = "Reference"
) -> tuple[np.ndarray, np.ndarray]:
    """OpenMM's total energy (eV) and forces (n, 3) in eV/Angstrom at ``positions_A``."""
    context, _ = make_context(s, positions_A, platform)
    state = context.getState(getEnergy=True, getForces=True)
    from openmm import unit

    e = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV_TO_KJ_PER_MOL
    f = np.asarray(
        state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    )
    return np.asarray(e), f / EV_TO_KJ_PER_MOL / 10.0


def job_seed(seed: int, li_indices: Sequence[int]) -> int:
    """Integrator seed of a job: the config seed and the job's first Li (independent jobs)."""
    return int(seed) * 100_003 + (int(li_indices[0]) if len(li_indices) else 0)


def simulate(
    s: ToySettings,
    li_indices: Sequence[int],
    frame_interval_ps: float,
    platform: str = "Reference",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Run one job: Li ``li_indices`` from octahedral sites, equilibrate, sample every frame.

    Returns the job arrays: ``li_coords`` (F, n, 3) float32 unwrapped Angstrom, ``site_label``
    (F, n) int8, ``li_index`` (n,), ``time_ps`` (F,), ``frame_interval_ps``.
    """
    from tqdm import tqdm

    unit = _import_openmm().unit
    li = np.asarray(li_indices, dtype=np.int64)
    n_frames = round(s.duration_ps / frame_interval_ps)
    if n_frames < 2:
        raise InputError(
            f"--settings: key 'duration_ps': expected at least 2 frames of "
            f"{frame_interval_ps:g} ps, got {s.duration_ps:g} ps"
        )
    per_frame = steps_per_frame(s, frame_interval_ps)
    # Spread the Li over the four octahedral sites; Li-Li is off, so this only adds variety.
    start = OCT_SITES[li % len(OCT_SITES)] * s.lattice_A
    context, integrator = make_context(s, start, platform, job_seed(s.seed, li))
    n_equil = round(s.equilibration_ps * 1000.0 / s.timestep_fs)
    t0 = time.perf_counter()
    if n_equil:
        integrator.step(n_equil)
    coords = np.empty((n_frames, len(li), 3), dtype=np.float32)
    bar = tqdm(
        range(n_frames),
        desc=f"simulate Li {li[0]}..{li[-1]}",
        unit="frame",
        disable=not progress,
        mininterval=5.0,
        file=sys.stderr,
    )
    for f in bar:
        if f:
            integrator.step(per_frame)
        pos = context.getState(getPositions=True).getPositions(asNumpy=True)
        coords[f] = pos.value_in_unit(unit.nanometer) * 10.0
    if not np.all(np.isfinite(coords)):
        raise SimulationError("non-finite Li positions: the integration blew up (time step?)")
    elapsed = time.perf_counter() - t0
    steps = n_equil + (n_frames - 1) * per_frame
    log.info("%d Li x %d steps in %.1f s (%.0f steps/s)", len(li), steps, elapsed, steps / elapsed)
    return {
        "li_coords": coords,
        "site_label": label_sites(coords, s.lattice_A),
        "li_index": li,
        "time_ps": np.arange(n_frames) * frame_interval_ps,
        "frame_interval_ps": np.float64(frame_interval_ps),
    }


def li_cell(job: Mapping[str, np.ndarray], li: int, lattice_A: float) -> dict[str, np.ndarray]:
    """One Li of a job as a raw trajectory of the paper's 5-atom cell (1 Li + 4 S)."""
    index = np.asarray(job["li_index"])
    where = np.flatnonzero(index == li)
    if where.size != 1:
        raise InputError(
            f"job file: key 'li_index': expected to contain Li {li}, got {index.tolist()}"
        )
    col = int(where[0])
    li_xyz = np.asarray(job["li_coords"])[:, col, :]
    n_frames = li_xyz.shape[0]
    coords = np.empty((n_frames, 5, 3), dtype=np.float32)
    coords[:, 0] = li_xyz
    coords[:, 1:] = s_positions(lattice_A).astype(np.float32)
    lattice = np.broadcast_to(np.eye(3, dtype=np.float32) * np.float32(lattice_A), (n_frames, 3, 3))
    return {
        "traj_coords": coords,
        "lattices": np.ascontiguousarray(lattice),
        "atom_types": np.array([LI, S, S, S, S], dtype=np.int64),
        "target_index": np.array([0], dtype=np.int64),
        "frame_interval_ps": np.float64(job["frame_interval_ps"]),
        "site_label": np.asarray(job["site_label"])[:, col : col + 1].astype(np.int8),
    }


# ---------------------------------------------------------------- CLI


def _parse_li(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated Li indices, got {text!r}"
        ) from None
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct indices >= 0, got {text!r}")
    return out


def _fail(command: str, exc: SimulationError) -> int:
    print(f"gdyn {command}: error: {exc}", file=sys.stderr)
    return 1


def _cmd_simulate(args: argparse.Namespace) -> int:
    from gdyn.files import save_npz

    s = parse_settings(args.settings)
    if max(args.li) >= s.n_li:
        raise InputError(f"--li: expected indices < n_li = {s.n_li}, got {max(args.li)}")
    if args.frame_interval_ps <= 0:
        raise InputError(f"--frame-interval-ps: expected > 0, got {args.frame_interval_ps:g}")
    try:
        job = simulate(s, args.li, args.frame_interval_ps, platform=args.platform)
    except SimulationError as exc:
        return _fail("simulate-toy", exc)
    labels = job["site_label"]
    log.info(
        "tet population %.3f, %d site changes over %d Li x %.0f ps",
        float(labels.mean()),
        count_transitions(labels),
        len(args.li),
        s.duration_ps,
    )
    save_npz(args.output, settings=np.array(json.dumps(asdict(s), sort_keys=True)), **job)
    return 0


def _cmd_cell(args: argparse.Namespace) -> int:
    from gdyn.files import save_npz

    try:
        with np.load(args.job) as data:
            job = {k: data[k] for k in ("li_coords", "li_index", "site_label", "frame_interval_ps")}
            s = parse_settings(json.loads(str(data["settings"])), where=f"{args.job}: settings")
    except FileNotFoundError:
        raise InputError(f"{args.job}: job file not found") from None
    except KeyError as exc:
        raise InputError(f"{args.job}: missing key {exc}; not a simulate-toy job file") from None
    save_npz(args.output, **li_cell(job, args.li, s.lattice_A))
    return 0


def _cmd_sites(args: argparse.Namespace) -> int:
    if not 0.0 <= args.start < args.stop <= 1.0:
        raise InputError(
            f"--start/--stop: expected 0 <= start < stop <= 1, got {args.start}, {args.stop}"
        )
    labels, intervals = [], set()
    for path in args.files:
        try:
            with np.load(path) as data:
                lab = np.asarray(data["site_label"])
                intervals.add(float(data["frame_interval_ps"]))
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except KeyError as exc:
            raise InputError(f"{path}: missing key {exc}; expected a toy trajectory") from None
        n = lab.shape[0]
        labels.append(lab[round(args.start * n) : round(args.stop * n)])
    if len(intervals) != 1:
        raise InputError(
            f"frame_interval_ps: expected one value over all files, got {sorted(intervals)}"
        )
    stats = site_statistics(labels, intervals.pop(), args.lag_ps)
    print(json.dumps(stats, indent=2))
    return 0


def _cmd_energy(args: argparse.Namespace) -> int:
    import pandas as pd

    from gdyn.files import atomic_path, write_csv

    s = parse_settings(args.settings)
    table = energy_path_table(s, args.points)
    write_csv(args.output, pd.DataFrame(table))
    e = site_energies_meV(s)
    print(
        f"A = {s.prefactor_eV:.4g} eV, rho = {s.rho_A:g} A: tet {e['tet']:.2f} meV, "
        f"barrier {e['barrier']:.2f} meV (relative to oct)"
    )
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
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
        with atomic_path(args.png) as tmp:
            fig.savefig(tmp, dpi=150)
        plt.close(fig)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate-toy``, ``toy-cell`` and ``toy-energy`` to the ``gdyn`` CLI."""
    from gdyn.cli import json_arg

    p = subparsers.add_parser(
        "simulate-toy",
        help="OpenMM: a batch of independent Li in the frozen FCC S lattice (toy system)",
        description="Simulate Li in the paper's toy system; writes li_coords and site_label.",
    )
    p.add_argument("output", type=Path, help="job file (.npz)")
    p.add_argument("--li", type=_parse_li, required=True, help="Li indices of this job, e.g. 0,1,2")
    p.add_argument(
        "--settings", type=json_arg, default={}, help="the config's simulate block (JSON)"
    )
    p.add_argument("--frame-interval-ps", type=float, default=0.1, help="sampling interval (ps)")
    p.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    p.set_defaults(func=_cmd_simulate)

    c = subparsers.add_parser(
        "toy-cell",
        help="one simulated Li as its own 5-atom (1 Li + 4 S) raw trajectory",
    )
    c.add_argument("job", type=Path, help="simulate-toy job file (.npz)")
    c.add_argument("output", type=Path, help="raw trajectory (.npz)")
    c.add_argument("--li", type=int, required=True, help="Li index")
    c.set_defaults(func=_cmd_cell)

    m = subparsers.add_parser(
        "toy-sites",
        help="ground truth of toy trajectories: transitions and two-state MSM of site_label",
    )
    m.add_argument("files", type=Path, nargs="+", help="raw or split .npz with site_label")
    m.add_argument("--lag-ps", type=float, default=10.0, help="MSM lag time (ps)")
    m.add_argument("--start", type=float, default=0.0, help="first fraction of each file used")
    m.add_argument("--stop", type=float, default=1.0, help="last fraction of each file used")
    m.set_defaults(func=_cmd_sites)

    e = subparsers.add_parser(
        "toy-energy", help="energy along the tet-oct-tet path of the toy potential (Fig. 2a)"
    )
    e.add_argument("output", type=Path, help="CSV: path_coordinate_A, energy_meV, site, polyhedron")
    e.add_argument("--png", type=Path, default=None, help="quick-look plot")
    e.add_argument(
        "--settings", type=json_arg, default={}, help="the config's simulate block (JSON)"
    )
    e.add_argument(
        "--points",
        type=int,
        default=601,
        help="points on the path (601 puts the saddles on the grid)",
    )
    e.set_defaults(func=_cmd_energy)
