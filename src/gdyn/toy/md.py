"""The toy system simulated with OpenMM: independent Li hopping in the frozen S lattice.

Because the S never move and Li-Li is off, the S are not particles at all: each Li feels one
``CustomExternalForce`` that sums the Born-Mayer term over the four S basis positions by
minimum image. With ``cutoff_A <= lattice_A / 2`` at most one image of each S sublattice is
inside the cutoff, so the minimum image is the exact lattice sum. Several non-interacting Li
share one OpenMM system (one Reference-platform context per job); each Li is then stored as
its own 5-atom (1 Li + 4 S) periodic trajectory in the raw format of ``docs/contracts.md``.

OpenMM is imported inside the functions that need it, so ``import gdyn.toy`` works without it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.files import save_npz
from gdyn.toy.potential import (
    EV_TO_KJ_PER_MOL,
    LI,
    LI_MASS_AMU,
    S,
    ToySettings,
    parse_settings,
    s_positions,
    steps_per_frame,
)
from gdyn.toy.sites import OCT_SITES, label_sites

__all__ = [
    "JOB_KEYS",
    "SimulationError",
    "build_system",
    "energies_and_forces",
    "external_force_expression",
    "job_seed",
    "li_cell",
    "load_job",
    "make_context",
    "save_job",
    "simulate",
]

log = logging.getLogger(__name__)

# The members of a job file that li_cell needs (besides the settings).
JOB_KEYS = ("li_coords", "li_index", "site_label", "frame_interval_ps")


class SimulationError(RuntimeError):
    """OpenMM is missing or the requested platform cannot run the toy system."""


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


def save_job(path: str | Path, s: ToySettings, job: Mapping[str, np.ndarray]) -> None:
    """Write a job file (``.npz``, atomically): the arrays of :func:`simulate` and ``settings``.

    ``settings`` is the JSON of ``s`` (sorted keys), which :func:`load_job` reads back.
    """
    save_npz(path, settings=np.array(json.dumps(asdict(s), sort_keys=True)), **job)


def load_job(path: str | Path) -> tuple[dict[str, np.ndarray], ToySettings]:
    """The :data:`JOB_KEYS` arrays and the settings of a job file written by :func:`save_job`."""
    try:
        with np.load(path) as data:
            job = {k: data[k] for k in JOB_KEYS}
            if "temperature_K" in data.files:  # a temperature series' job (gdyn.temperatures)
                job["temperature_K"] = data["temperature_K"]
            s = parse_settings(json.loads(str(data["settings"])), where=f"{path}: settings")
    except FileNotFoundError:
        raise InputError(f"{path}: job file not found") from None
    except KeyError as exc:
        raise InputError(f"{path}: missing key {exc}; not a simulate-toy job file") from None
    return job, s


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
    } | ({"temperature_K": np.float64(job["temperature_K"])} if "temperature_K" in job else {})
