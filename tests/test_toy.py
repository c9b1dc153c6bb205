"""The OpenMM toy system: potential, site labels, MSM, determinism and the Snakemake rules.

Ground truths: closed-form energies at the FCC sites, numerical gradients, the 2/3 : 1/3
octahedral : tetrahedral volume split of the FCC cell, Boltzmann quadrature of the site
populations, deeptime's MSM estimator and the measured relaxation time in docs/toy.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gdyn import toy
from gdyn.errors import InputError
from gdyn.toy.md import energies_and_forces, make_context
from gdyn.toy.potential import (
    EV_TO_KJ_PER_MOL,
    S_BASIS,
    boltzmann_tet_population,
    born_mayer_energy_eV,
    steps_per_frame,
)
from gdyn.toy.sites import label_sites, site_index, two_state_msm

pytest.importorskip("openmm")

ROOT = Path(__file__).resolve().parents[1]
S = toy.ToySettings()
A = S.lattice_A


def _analytic_energy_meV(distances_A: list[float], s: toy.ToySettings = S) -> float:
    """Closed-form shifted Born-Mayer sum over S atoms at the given distances."""
    shift = math.exp((s.wall_r_A - s.cutoff_A) / s.rho_A)
    return (
        1000.0
        * s.wall_energy_eV
        * sum(math.exp((s.wall_r_A - r) / s.rho_A) - shift for r in distances_A if r < s.cutoff_A)
    )


# ------------------------------------------------------------------ potential


def test_prefactor_follows_from_the_wall() -> None:
    assert S.prefactor_eV == pytest.approx(math.exp(2.343 / 0.05))
    assert S.prefactor_eV * math.exp(-S.wall_r_A / S.rho_A) == pytest.approx(1.0)
    assert 2.2e20 < S.prefactor_eV < 2.3e20  # docs/toy.md: A = 2.24e20 eV (calibrated)


def test_site_energies_match_closed_form() -> None:
    # oct: 6 S at a/2 (beyond the cutoff); tet: 4 S at a sqrt(3)/4; saddle: 3 S at a/sqrt(6).
    e = toy.site_energies_meV(S)
    tet = _analytic_energy_meV([A * math.sqrt(3) / 4] * 4)
    saddle = _analytic_energy_meV([A / math.sqrt(6)] * 3)
    assert born_mayer_energy_eV(np.array([0.5, 0.5, 0.5]) * A, S) == 0.0
    assert e["tet"] == pytest.approx(tet, rel=1e-12)
    assert e["barrier"] == pytest.approx(saddle, rel=1e-12)
    assert e["tet"] == pytest.approx(0.32, abs=0.01)  # documented in docs/toy.md
    assert e["barrier"] == pytest.approx(6.01, abs=0.01)


def test_energy_path_peaks_at_the_face_centres() -> None:
    table = toy.energy_path_table(S)
    x, e = table["path_coordinate_A"], table["energy_meV"]
    mid = len(x) // 2
    assert x[0] == 0.0 and x[-1] == pytest.approx(A * math.sqrt(3) / 2)
    assert list(table["site"][[0, mid, -1]]) == ["tet", "oct", "tet"]
    assert e[mid] == 0.0 and e[0] == pytest.approx(e[-1])
    peaks = np.flatnonzero((e[1:-1] > e[:-2]) & (e[1:-1] > e[2:])) + 1
    # tet (1/4) -> face (1/3) -> oct (1/2) -> face (2/3) -> tet (3/4) along [111]
    expected = [A * math.sqrt(3) / 12, A * math.sqrt(3) * 5 / 12]
    np.testing.assert_allclose(x[peaks], expected, atol=1e-9)
    np.testing.assert_allclose(e[peaks], toy.site_energies_meV(S)["barrier"], rtol=1e-12)
    # the polyhedron label changes exactly at the faces
    changes = np.flatnonzero(table["polyhedron"][1:] != table["polyhedron"][:-1])
    assert len(changes) == 2
    assert all(x[i] <= xp <= x[i + 1] for i, xp in zip(changes, expected, strict=True))


def _sample_points(n: int, max_energy_eV: float, seed: int = 0) -> np.ndarray:
    """Random (also unwrapped) positions where the Li can actually go."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-A, 2 * A, size=(20 * n, 3))
    keep = born_mayer_energy_eV(p, S) < max_energy_eV
    # points close to the walls, where forces are large, are the interesting ones
    e = born_mayer_energy_eV(p[keep], S)
    order = np.argsort(-e)
    return p[keep][order[:n]]


def test_openmm_energy_equals_the_lattice_sum() -> None:
    pts = _sample_points(40, 2.0)
    energy, _ = energies_and_forces(S, pts)
    assert float(energy) == pytest.approx(born_mayer_energy_eV(pts, S).sum(), rel=1e-9)


def test_forces_are_minus_the_numerical_gradient() -> None:
    from openmm import unit

    pts = _sample_points(12, 1.0, seed=1)
    _, forces = energies_and_forces(S, pts)
    assert np.abs(forces).max() > 5.0  # eV/A: the points probe the steep wall
    context, _ = make_context(S, pts)
    h = 1e-5
    numeric = np.zeros_like(forces)
    for i in range(len(pts)):
        for d in range(3):
            energies = []
            for sign in (1, -1):
                moved = pts.copy()
                moved[i, d] += sign * h
                context.setPositions((moved * 0.1).tolist())
                state = context.getState(getEnergy=True)
                energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
            numeric[i, d] = -(energies[0] - energies[1]) / (2 * h) / EV_TO_KJ_PER_MOL
    np.testing.assert_allclose(forces, numeric, rtol=1e-5, atol=1e-6 * np.abs(forces).max())
    # and the independent numpy lattice sum gives the same gradient
    grad = np.zeros_like(forces)
    for d in range(3):
        step = np.zeros(3)
        step[d] = h
        grad[:, d] = (
            born_mayer_energy_eV(pts + step, S) - born_mayer_energy_eV(pts - step, S)
        ) / (2 * h)
    np.testing.assert_allclose(forces, -grad, rtol=1e-5, atol=1e-6 * np.abs(forces).max())


# ------------------------------------------------------------------ labels and MSM


def test_site_labels_of_known_points() -> None:
    lab = label_sites(np.vstack([toy.OCT_SITES, toy.TET_SITES]) * A, A)
    assert lab.tolist() == [0] * 4 + [1] * 8
    # periodic images (unwrapped coordinates) get the same label
    shifted = (np.vstack([toy.OCT_SITES, toy.TET_SITES]) + np.array([3, -2, 1])) * A
    assert label_sites(shifted, A).tolist() == lab.tolist()
    # just either side of the shared face centre (1/3, 1/3, 1/3) a on [111]
    eps = 1e-6
    pts = np.array([[1 / 3 - eps] * 3, [1 / 3 + eps] * 3]) * A
    assert label_sites(pts, A).tolist() == [1, 0]


def test_twelve_site_index_polyhedron_and_nearest() -> None:
    sites = np.vstack([toy.OCT_SITES, toy.TET_SITES])
    for rule in ("polyhedron", "nearest"):
        assert site_index(sites * A, A, rule).tolist() == list(range(12))
        assert site_index((sites + np.array([3, -2, 1])) * A, A, rule).tolist() == list(range(12))
    # On the line from the octahedral centre (1/2, 1/2, 1/2) a to the tetrahedral one
    # (3/4, 3/4, 3/4) a (index 4 + 7), 2.81 A apart: the shared face is a / (2 sqrt 3)
    # = 1.876 A from the oct centre, the nearest-centre boundary sqrt(3) a / 8 = 1.407 A.
    unit = np.ones(3) / math.sqrt(3)
    pts = np.array([0.5, 0.5, 0.5]) * A + np.outer([1.30, 1.50, 1.85, 1.90], unit)
    assert site_index(pts, A, "polyhedron").tolist() == [0, 0, 0, 11]
    assert site_index(pts, A, "nearest").tolist() == [0, 11, 11, 11]
    # The polyhedron rule is label_sites, refined to the site.
    rng = np.random.default_rng(3)
    x = rng.uniform(-A, 2 * A, size=(20_000, 3))
    np.testing.assert_array_equal(site_index(x, A) >= 4, label_sites(x, A) == 1)
    with pytest.raises(InputError, match="rule"):
        site_index(x, A, "closest")


def test_site_labels_split_the_cell_two_thirds_octahedral() -> None:
    # 4 octahedra of volume a^3/6 and 8 tetrahedra of volume a^3/24 fill the cubic cell
    rng = np.random.default_rng(7)
    lab = label_sites(rng.uniform(0, A, size=(400_000, 3)), A)
    assert lab.dtype == np.int8
    assert 1 - lab.mean() == pytest.approx(2 / 3, abs=4 * math.sqrt(2 / 9 / 400_000))


def _markov_chain(t: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    x = np.empty(n, dtype=np.int8)
    x[0] = 0
    for k in range(1, n):
        x[k] = int(u[k] < t[x[k - 1], 1])
    return x


def test_two_state_msm_matches_deeptime_and_the_analytic_chain() -> None:
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    t = np.array([[0.98, 0.02], [0.10, 0.90]])
    trajs = [_markov_chain(t, 40_000, seed) for seed in (1, 2, 3)]
    lag = 3
    ours = two_state_msm(trajs, lag)
    counts = (
        TransitionCountEstimator(lagtime=lag, count_mode="sliding")
        .fit([x.astype(int) for x in trajs])
        .fetch_model()
    )
    msm = MaximumLikelihoodMSM(reversible=False).fit(counts).fetch_model()
    assert ours["relaxation_frames"] == pytest.approx(msm.timescales()[0], rel=1e-10)
    assert ours["tet_population"] == pytest.approx(msm.stationary_distribution[1], rel=1e-10)
    # analytic: lambda2 = 0.88 per step, so t2 = -1/ln(0.88) steps; pi_1 = 0.02 / 0.12
    assert ours["relaxation_frames"] == pytest.approx(-1 / math.log(0.88), rel=0.1)
    assert ours["tet_population"] == pytest.approx(0.02 / 0.12, rel=0.05)


def test_site_statistics_counts_transitions() -> None:
    lab = np.array([0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0], dtype=np.int8)
    stats = toy.site_statistics([lab, lab[:, None]], frame_interval_ps=0.5, lag_ps=0.5)
    assert stats["transitions"] == 8 and stats["tet_entries"] == 4
    assert stats["li_ns"] == pytest.approx(24 * 0.5 / 1000)
    assert stats["tet_fraction"] == pytest.approx(3 / 12)


# ------------------------------------------------------------------ settings and errors


def test_settings_errors_name_the_key() -> None:
    with pytest.raises(InputError, match="unknown key 'temperature'"):
        toy.parse_settings({"temperature": 64})
    with pytest.raises(InputError, match="'rho_A': expected > 0"):
        toy.parse_settings({"rho_A": 0})
    with pytest.raises(InputError, match="'cutoff_A': expected <= lattice_A / 2"):
        toy.parse_settings({"cutoff_A": 3.3})
    with pytest.raises(InputError, match="'n_li': expected an integer"):
        toy.parse_settings({"n_li": 2.5})
    with pytest.raises(InputError, match="whole multiple of timestep_fs"):
        steps_per_frame(toy.parse_settings({"timestep_fs": 3.0}), 0.1)


def test_bad_platform_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gdyn.cli import main

    monkeypatch.setattr("gdyn.cli.STAGES", ("toy",))  # independent of other stages
    with pytest.raises(toy.SimulationError, match=r"'NoSuchPlatform' is not available.*Reference"):
        make_context(S, np.zeros((1, 3)), platform="NoSuchPlatform")
    status = main(["simulate-toy", str(tmp_path / "j.npz"), "--li", "0", "--platform", "NoSuch"])
    assert status == 1 and not (tmp_path / "j.npz").exists()


def test_missing_openmm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gdyn.cli import main

    monkeypatch.setattr("gdyn.cli.STAGES", ("toy",))  # independent of other stages
    monkeypatch.setitem(sys.modules, "openmm", None)  # makes `import openmm` fail
    with pytest.raises(toy.SimulationError, match=r"OpenMM is not installed.*pip install openmm"):
        toy.simulate(S, [0], 0.1, progress=False)
    assert main(["simulate-toy", str(tmp_path / "j.npz"), "--li", "0"]) == 1


def test_import_gdyn_toy_does_not_import_openmm() -> None:
    code = (
        "import sys, gdyn.toy, gdyn.cli.toy; "
        "heavy = {'openmm', 'torch', 'matplotlib', 'tqdm'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cli_job_cell_sites_energy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gdyn.cli import main
    from gdyn.trajectory import load_trajectory

    monkeypatch.setattr("gdyn.cli.STAGES", ("toy",))  # independent of other stages
    settings = json.dumps({"n_li": 3, "duration_ps": 2.0, "equilibration_ps": 0.1})
    job = tmp_path / "job.npz"
    assert main(["simulate-toy", str(job), "--li", "0,2", "--settings", settings]) == 0
    data, s = toy.load_job(job)
    assert s.n_li == 3 and data["li_coords"].shape == (20, 2, 3)
    assert data["li_index"].tolist() == [0, 2]

    cell = tmp_path / "li002.npz"
    assert main(["toy-cell", str(job), str(cell), "--li", "2"]) == 0
    raw = load_trajectory(cell)
    assert raw.atom_types.tolist() == [3, 16, 16, 16, 16] and raw.frame_interval_ps == 0.1
    np.testing.assert_array_equal(raw.traj_coords[:, 0], data["li_coords"][:, 1])
    assert main(["toy-cell", str(job), str(tmp_path / "x.npz"), "--li", "1"]) == 2
    assert "expected to contain Li 1" in capsys.readouterr().err

    assert main(["toy-sites", str(cell), str(cell), "--lag-ps", "0.1", "--stop", "0.5"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["n_trajectories"] == 2 and stats["li_ns"] == pytest.approx(2 * 10 * 0.1 / 1000)
    assert stats["n_units"] == 2 and stats["tet_fraction_se"] >= 0.0  # bootstrap over the Li
    assert main(["toy-sites", str(cell), "--start", "0.5", "--stop", "0.5"]) == 2

    csv, png = tmp_path / "energy.csv", tmp_path / "energy.png"
    assert main(["toy-energy", str(csv), "--png", str(png), "--points", "31"]) == 0
    assert "tet 0.32 meV" in capsys.readouterr().out
    lines = csv.read_text().splitlines()
    assert lines[0] == "path_coordinate_A,energy_meV,site,polyhedron" and len(lines) == 32
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ dynamics


def test_simulation_is_deterministic_given_the_seed() -> None:
    s = dataclasses.replace(S, n_li=3, duration_ps=5.0, equilibration_ps=1.0)
    a = toy.simulate(s, [0, 2], 0.1, progress=False)
    b = toy.simulate(s, [0, 2], 0.1, progress=False)
    c = toy.simulate(dataclasses.replace(s, seed=s.seed + 1), [0, 2], 0.1, progress=False)
    assert a["li_coords"].shape == (50, 2, 3)
    np.testing.assert_array_equal(a["li_coords"], b["li_coords"])
    assert not np.array_equal(a["li_coords"], c["li_coords"])
    # the two Li start on different octahedral sites and feel independent noise
    assert not np.allclose(
        a["li_coords"][:, 0] - a["li_coords"][0, 0], a["li_coords"][:, 1] - a["li_coords"][0, 1]
    )


@pytest.fixture(scope="module")
def short_run() -> dict[str, np.ndarray]:
    """24 Li x 2 ns: enough hops for the MSM check (2 fs steps: the 1 fs statistics within
    1.6 standard errors, docs/toy.md)."""
    s = dataclasses.replace(
        S, n_li=24, duration_ps=2000.0, equilibration_ps=50.0, timestep_fs=2.0, seed=7
    )
    return toy.simulate(s, list(range(24)), 0.1, progress=False)


@pytest.mark.slow
def test_li_explores_both_site_types(short_run: dict[str, np.ndarray]) -> None:
    lab = short_run["site_label"]
    np.testing.assert_array_equal(lab, label_sites(short_run["li_coords"], A))
    assert set(np.unique(lab)) == {0, 1}
    stats = toy.site_statistics(lab, 0.1)
    assert stats["tet_entries"] > 20
    # Boltzmann: the sampled tet population is the equilibrium one (9.1 % at 64 K, sd ~1 %)
    assert stats["tet_fraction"] == pytest.approx(boltzmann_tet_population(S), abs=0.025)
    # the Li also hop between octahedral sites (via tet), i.e. they diffuse
    start = toy.OCT_SITES[np.arange(24) % 4] * A
    moved = np.linalg.norm(short_run["li_coords"][-1] - start, axis=1)
    assert (moved > A / 2).sum() >= 5


@pytest.mark.slow
def test_two_state_msm_relaxation_in_documented_range(short_run: dict[str, np.ndarray]) -> None:
    # docs/toy.md: 42.3 ps at a 10 ps lag (the paper's) from 512 Li-ns; this run's own
    # bootstrap error sets the tolerance (48 Li-ns: ~3 ps)
    stats = toy.bootstrap_site_statistics(short_run["site_label"], 0.1, lag_ps=10.0)
    assert 1.5 < stats["relaxation_se_ps"] < 6.0
    assert abs(stats["relaxation_ps"] - 42.3) < 4 * stats["relaxation_se_ps"]


# ------------------------------------------------------------------ the Snakemake rules


@pytest.mark.e2e
def test_simulate_toy_rules_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if shutil.which("gdyn", path=env["PATH"]) is None:
        pytest.skip("the gdyn console script is not installed")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "2",
            "--configfile",
            str(ROOT / "tests" / "e2e" / "tiny.yaml"),
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(work),
            "results/raw/toy/li000.npz",
            "results/raw/toy/li003.npz",
            "results/toy/toy/energy_path.csv",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for li in ("li000", "li003"):
        with np.load(work / "results" / "raw" / "toy" / f"{li}.npz") as data:
            raw = {k: data[k] for k in data.files}
        n_frames = 600  # tiny.yaml: 60 ps at 0.1 ps
        assert raw["traj_coords"].shape == (n_frames, 5, 3)
        assert raw["atom_types"].tolist() == [3, 16, 16, 16, 16]
        assert raw["target_index"].tolist() == [0]
        assert float(raw["frame_interval_ps"]) == pytest.approx(0.1)
        np.testing.assert_array_equal(
            raw["lattices"], np.broadcast_to(np.eye(3) * A, (n_frames, 3, 3))
        )
        # the S never move: every frame holds the exact FCC basis
        np.testing.assert_array_equal(
            raw["traj_coords"][:, 1:], np.broadcast_to(S_BASIS * A, (n_frames, 4, 3))
        )
        assert raw["site_label"].shape == (n_frames, 1) and raw["site_label"].dtype == np.int8
        np.testing.assert_array_equal(
            raw["site_label"], label_sites(raw["traj_coords"][:, :1], A)
        )
        # the Li moves and starts (after a 5 ps equilibration) near its octahedral site
        assert np.ptp(raw["traj_coords"][:, 0], axis=0).min() > 0.05
    assert (work / "results" / "simulated" / "toy" / "job1.npz").exists()
    assert (work / "results" / "logs" / "simulate_toy" / "toy" / "job0.log").exists()
    energy = (work / "results" / "toy" / "toy" / "energy_path.csv").read_text().splitlines()
    assert energy[0] == "path_coordinate_A,energy_meV,site,polyhedron"
