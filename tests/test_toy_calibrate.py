"""The toy's calibration (issue 13): quadrature, bootstrap errors and the calibration tool.

Ground truths: effusion through the S faces with the potential switched off (closed form),
Boltzmann quadrature, the pooled two-state MSM of :func:`gdyn.toy.site_statistics`, the
spread of independent Markov-chain ensembles, and the measured table in docs/toy.md.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import constants

from gdyn import toy
from gdyn.errors import InputError
from gdyn.toy import calibrate
from gdyn.toy.potential import (
    LI_MASS_AMU,
    boltzmann_tet_population,
    born_mayer_energy_eV,
    minimum_image_energy_eV,
)

ROOT = Path(__file__).resolve().parents[1]
S = toy.ToySettings()
A = S.lattice_A

# docs/toy.md, "Calibration": quadrature at the calibrated point, and its converged MD
# measurement (`--friction 140 --li 64 --ns 8 --seed 4`: 1 fs, 512 Li-ns; value and
# bootstrap standard error).
DOC_QUADRATURE = {"wall_r_A": 2.343, "tet_meV": 0.32, "barrier_meV": 6.01,
                  "boltzmann_tet_percent": 9.10, "tst_relaxation_ps": 3.44}  # fmt: skip
DOC_MD = {"tet_percent": (8.93, 0.39), "relaxation_ps_lag10": (42.8, 1.2)}


def _load_tool():
    spec = importlib.util.spec_from_file_location("calibrate_toy", ROOT / "scripts/calibrate_toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ quadrature


def test_minimum_image_energy_is_the_lattice_sum() -> None:
    rng = np.random.default_rng(5)
    pts = rng.uniform(-A, 2 * A, size=(5000, 3))  # unwrapped positions too
    brute = born_mayer_energy_eV(pts, S)
    np.testing.assert_allclose(minimum_image_energy_eV(pts, S), brute, rtol=1e-12, atol=0)
    assert brute.max() > 1.0  # the points probe the wall


def test_tst_without_a_potential_is_effusion_through_the_faces() -> None:
    # No wall: the Boltzmann weight is 1, so Z_face is the S triangle's area, Z_tet the
    # tetrahedron's volume a^3/24, the tet population 1/3 and the TST rate pure effusion.
    free = dataclasses.replace(S, wall_energy_eV=1e-30)
    tst = calibrate.transition_state_theory(free, n_grid=60)
    assert tst["z_face_A2"] == pytest.approx(math.sqrt(3) / 8 * A**2, rel=1e-9)
    assert tst["z_tet_A3"] == pytest.approx(A**3 / 24, rel=0.01)
    assert tst["tet_population"] == pytest.approx(1 / 3, rel=0.01)
    kt = constants.k * S.temperature_K
    mass = LI_MASS_AMU * constants.atomic_mass
    v_A_per_ps = math.sqrt(kt / (2 * math.pi * mass)) * 1e10 / 1e12
    k_to = v_A_per_ps * 4 * (math.sqrt(3) / 8 * A**2) / (A**3 / 24)
    assert tst["k_tet_to_oct_per_ps"] == pytest.approx(k_to, rel=0.01)
    assert tst["relaxation_ps"] == pytest.approx((2 / 3) / k_to, rel=0.01)


def test_quadrature_agrees_with_boltzmann_population_and_converges() -> None:
    tst = calibrate.transition_state_theory(S)
    assert tst["tet_population"] == pytest.approx(boltzmann_tet_population(S), rel=1e-12)
    fine = calibrate.transition_state_theory(S, n_grid=60, n_face=800)
    assert fine["relaxation_ps"] == pytest.approx(tst["relaxation_ps"], rel=1e-3)


def test_wall_r_for_population_solves_the_quadrature() -> None:
    wall = calibrate.wall_r_for_population(S, 0.0911)
    solved = dataclasses.replace(S, wall_r_A=wall)
    assert boltzmann_tet_population(solved) == pytest.approx(0.0911, abs=1e-5)
    assert wall == pytest.approx(DOC_QUADRATURE["wall_r_A"], abs=1e-3)  # the default's anchor
    # a stronger wall (larger wall_r_A) squeezes the small tetrahedra more
    assert calibrate.wall_r_for_population(S, 0.04) > wall
    with pytest.raises(InputError, match=r"wall_r_A bracket \[2.5, 2.6\] A: expected tet"):
        calibrate.wall_r_for_population(S, 0.0911, bracket=(2.5, 2.6))
    with pytest.raises(InputError, match=r"expected in \(0, 1/3\), got 0.5"):
        calibrate.wall_r_for_population(S, 0.5)


def test_paper_targets() -> None:
    assert calibrate.PAPER_TET_POPULATION == pytest.approx(0.0911, abs=5e-5)
    assert calibrate.PAPER_RELAXATION_PS == 42.3 and calibrate.PAPER_LAG_PS == 10.0


# ------------------------------------------------------------------ bootstrap errors


def _chains(t: np.ndarray, n_chains: int, n_frames: int, seed: int) -> np.ndarray:
    """(n_frames, n_chains) two-state Markov chains started from the stationary law."""
    rng = np.random.default_rng(seed)
    pi1 = t[0, 1] / (t[0, 1] + t[1, 0])
    x = np.empty((n_frames, n_chains), dtype=np.int8)
    x[0] = rng.random(n_chains) < pi1
    u = rng.random((n_frames, n_chains))
    for k in range(1, n_frames):
        x[k] = u[k] < t[x[k - 1], 1]
    return x


def test_bootstrap_estimates_are_the_pooled_msm_and_errors_match_replicates() -> None:
    t = np.array([[0.98, 0.02], [0.10, 0.90]])  # tet population 1/6, t2 = -1/ln 0.88 steps
    n_rep, n_li, n_frames, lag_ps = 40, 20, 1500, 0.3
    chains = _chains(t, n_rep * n_li, n_frames, seed=3).reshape(n_frames, n_rep, n_li)
    estimates, errors = [], []
    for r in range(n_rep):
        labels = chains[:, r]
        stats = calibrate.bootstrap_site_statistics(labels, 0.1, lag_ps, n_boot=300, seed=r)
        pooled = toy.site_statistics(labels, 0.1, lag_ps)
        assert stats["relaxation_ps"] == pytest.approx(pooled["relaxation_ps"], rel=1e-12)
        assert stats["tet_fraction"] == pytest.approx(pooled["tet_fraction"], rel=1e-12)
        assert stats["transitions"] == pooled["transitions"]
        estimates.append([stats["tet_fraction"], stats["relaxation_ps"]])
        errors.append([stats["tet_fraction_se"], stats["relaxation_se_ps"]])
    estimates, errors = np.array(estimates), np.array(errors)
    # the truth, within the spread of the replicates
    truth = [1 / 6, -0.1 / math.log(0.88)]
    spread = estimates.std(axis=0, ddof=1)
    np.testing.assert_array_less(np.abs(estimates.mean(axis=0) - truth), 4 * spread / math.sqrt(n_rep))
    # the bootstrap standard error of one ensemble is the spread between ensembles
    # (40 replicates estimate a standard deviation to ~11 %)
    np.testing.assert_allclose(errors.mean(axis=0), spread, rtol=0.35)
    # one long trajectory cut into blocks gives the same error as as many trajectories
    one = chains[:, :, 0].T.reshape(-1)
    blocked = calibrate.bootstrap_site_statistics(one, 0.1, lag_ps, n_boot=300, blocks=n_rep)
    many = calibrate.bootstrap_site_statistics(chains[:, :, 0], 0.1, lag_ps, n_boot=300)
    assert blocked["relaxation_se_ps"] == pytest.approx(many["relaxation_se_ps"], rel=0.35)
    assert blocked["relaxation_ps"] == pytest.approx(
        toy.site_statistics(one, 0.1, lag_ps)["relaxation_ps"], rel=1e-12
    )
    with pytest.raises(InputError, match="blocks, n_boot"):
        calibrate.bootstrap_site_statistics(one, 0.1, lag_ps, blocks=0)


# ------------------------------------------------------------------ the calibration tool


def test_tool_reproduces_the_documented_quadrature(tmp_path: Path) -> None:
    tool = _load_tool()
    csv = tmp_path / "q.csv"
    assert tool.main(["--quadrature-only", "--target-tet", "--csv", str(csv)]) == 0
    row = pd.read_csv(csv).iloc[0]
    assert row["rho_A"] == S.rho_A and row["cutoff_A"] == S.cutoff_A
    assert row["wall_r_A"] == pytest.approx(DOC_QUADRATURE["wall_r_A"], abs=5e-4)
    for key in ("tet_meV", "barrier_meV", "boltzmann_tet_percent", "tst_relaxation_ps"):
        assert row[key] == pytest.approx(DOC_QUADRATURE[key], abs=0.01), key
    # and at the documented wall (the default) exactly the rounded numbers of docs/toy.md
    assert tool.main(["--quadrature-only", "--csv", str(csv)]) == 0
    row = pd.read_csv(csv).iloc[0]
    assert row["wall_r_A"] == S.wall_r_A
    assert round(row["boltzmann_tet_percent"], 2) == DOC_QUADRATURE["boltzmann_tet_percent"]
    assert round(row["tst_relaxation_ps"], 2) == DOC_QUADRATURE["tst_relaxation_ps"]


@pytest.mark.slow
def test_tool_reproduces_the_measured_observables(tmp_path: Path) -> None:
    # A short run of the tool at the default (calibrated) settings, 1 fs like the documented
    # run: 24 Li x 2 ns. Tolerance: 3 combined standard errors (this run's and the docs').
    tool = _load_tool()
    csv = tmp_path / "md.csv"
    args = ["--li", "24", "--ns", "2", "--seed", "7", "--lags", "10",
            "--equilibration-ps", "100", "--csv", str(csv)]  # fmt: skip
    assert tool.main(args) == 0
    row = pd.read_csv(csv).iloc[0]
    assert row["li_ns"] == pytest.approx(48.0)
    for key, se_key in (("tet_percent", "tet_se_percent"),
                        ("relaxation_ps_lag10", "relaxation_se_ps_lag10")):  # fmt: skip
        documented, doc_se = DOC_MD[key]
        tol = 3 * math.hypot(row[se_key], doc_se)
        assert abs(row[key] - documented) < tol, (key, row[key], row[se_key])
    # TST bounds the rate: the simulated relaxation is slower than the TST time
    assert row["relaxation_ps_lag10"] > row["tst_relaxation_ps"]
