"""The analysis API (state_weighted_rdf, charge_integral, conduction) and the registry.

The API on trajectories + probabilities must give exactly the CSVs the CLI writes from the
same data (one code path). Ground truths: a Li exactly at the tetrahedral (4 S at
a sqrt(3)/4) or octahedral (6 S at a/2) site of an FCC S lattice, and targets drifting at
constant speed v, for which E[d^2(t) | i -> j] = v^2 t^2 and D_ij = v^2 tau / 3 exactly.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdyn import analysis as an
from gdyn.cli import main
from gdyn.errors import InputError
from gdyn.trajectory import Trajectory, load_trajectory

A = 6.5  # FCC S lattice constant (A)
FCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
TET_SITE = np.array([0.25, 0.25, 0.25])
OCT_SITE = np.array([0.5, 0.5, 0.5])
FI = 0.1  # ps per frame


def _csv_text(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def _write_case(tmp: Path, pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                probs: list[np.ndarray], tau_frames: int, state_order: list[int]) -> list[str]:
    """Split pieces (coords, lattices, types, targets) + probs at tau* + summary; CLI args."""
    paths, sources = [], []
    for k, (coords, lat, types, targets) in enumerate(pieces):
        path = tmp / f"piece{k}.npz"
        np.savez(path, traj_coords=coords, lattices=lat, atom_types=types, target_index=targets,
                 frame_interval_ps=np.float64(FI), frame_offset=np.int64(3 + k),
                 source=np.str_(f"run{k}"))
        paths.append(str(path))
        sources.append(f"run{k}")
    probs_path = tmp / "probs_test.npz"
    np.savez(probs_path, probs=np.concatenate(probs).astype(np.float32),
             traj=np.concatenate([np.full(len(p), k) for k, p in enumerate(probs)]),
             frame=np.concatenate([np.arange(len(p)) + 3 + k for k, p in enumerate(probs)]),
             sources=np.array(sources), lag_ps=np.float64(tau_frames * FI),
             frame_interval_ps=np.float64(FI))
    (tmp / "summary.json").write_text(json.dumps({
        "tau_star_ps": tau_frames * FI, "probs_test": str(probs_path), "state_order": state_order,
    }))
    return ["--test", *paths, "--probs", str(probs_path), "--summary", str(tmp / "summary.json")]


def _api_inputs(args: list[str], state_order: list[int]) -> tuple[list[Trajectory], list[np.ndarray]]:
    """What a notebook has: the trajectories and their probabilities, states reordered."""
    paths = args[1 : args.index("--probs")]
    trajs = [load_trajectory(p) for p in paths]
    with np.load(args[args.index("--probs") + 1]) as z:
        p, traj = z["probs"].astype(np.float64), z["traj"]
    return trajs, [p[traj == k][..., state_order] for k in range(len(trajs))]


def _site_frames(sites: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """(F, 5, 3): one Li at the oct (0) or tet (1) site of each frame, and the 4 S."""
    li = np.where(sites[:, None] == 0, OCT_SITE, TET_SITE) * A
    li = li + rng.normal(scale=jitter, size=li.shape)
    return np.concatenate([li[:, None], np.repeat((FCC_BASIS * A)[None], len(sites), 0)], 1)


def test_rdf_and_charge_api_equal_cli_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pieces, probs = [], []
    for n_frames in (24, 17):
        sites = (rng.random(n_frames) < 0.3).astype(int)
        coords = _site_frames(sites, rng, 0.05)
        lat = np.repeat(np.eye(3)[None] * A, n_frames, 0)
        pieces.append((coords, lat, np.array([3, 16, 16, 16, 16]), np.array([0])))
        probs.append((np.eye(2)[sites] * 0.9 + 0.05)[:, None, :])
    args = _write_case(tmp_path, pieces, probs, 2, [1, 0])
    rdf_settings = {"elements": ["S", "Li"], "r_max_A": 4.5, "n_bins": 90}
    charge_settings = {"center": "S", "charges": {"Li": 1, "S": -0.5}}
    settings = json.dumps({"rdf": rdf_settings, "charge": charge_settings})
    rdf_csv, charge_csv = tmp_path / "rdf.csv", tmp_path / "charge.csv"
    assert main(["rdf", str(rdf_csv), *args, "--settings", settings]) == 0
    assert main(["charge", str(rdf_csv), str(charge_csv), "--settings", settings]) == 0

    trajs, p = _api_inputs(args, [1, 0])
    rdf = an.state_weighted_rdf(trajs, p, ["S", "Li"], r_max_A=4.5, n_bins=90)
    # The CLI adds the Koopman state selection's flag column (issue 15; nothing excluded).
    assert _csv_text(an.flag_states(rdf, [])) == rdf_csv.read_text()
    charge = an.charge_integral(pd.read_csv(rdf_csv), "S", {"Li": 1, "S": -0.5})
    assert _csv_text(an.flag_states(charge, [])) == charge_csv.read_text()


def test_rdf_of_exact_interstitial_sites() -> None:
    # Frame 0: Li exactly at the tetrahedral site (state 0); frame 1: octahedral (state 1);
    # frame 2: Li between sites but unscored (NaN), so it must not count anywhere.
    coords = _site_frames(np.array([1, 0, 0]), np.random.default_rng(1), 0.0)
    coords[2, 0] = [0.1, 0.2, 0.3]
    lat = np.repeat(np.eye(3)[None] * A, 3, 0)
    traj = Trajectory(coords, lat, np.array([3, 16, 16, 16, 16]), np.array([0]))
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[np.nan, np.nan]]])
    r_max, n_bins = 0.6 * A, 390
    rdf = an.state_weighted_rdf(traj, probs, ["S"], r_max_A=r_max, n_bins=n_bins)
    dr = r_max / n_bins
    rho = 4 / A**3
    shell = 4 / 3 * np.pi * np.diff(np.linspace(0, r_max, n_bins + 1) ** 3)
    for state, (distance, count) in enumerate([(A * math.sqrt(3) / 4, 4), (A / 2, 6)]):
        curve = rdf[rdf.state == state]
        r, n = curve.r_A.to_numpy(), curve.n_coord.to_numpy()
        assert np.all(n[r < distance - dr] == 0)
        assert np.all(n[r > distance + dr] == count)
        # rho int g 4 pi r^2 dr gives the count back (g normalised by the S density).
        assert rho * np.sum(curve.g.to_numpy() * shell) == pytest.approx(count, rel=1e-12)
        assert curve.n_first_shell.iloc[0] == count
        assert distance < curve.r_first_min_A.iloc[0] < r_max


def _drift(n_frames: int, n_sets: int, speed: float, rng: np.random.Generator) -> np.ndarray:
    """(F, n, 3) straight lines at ``speed`` A/frame in random directions."""
    u = rng.normal(size=(n_sets, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    start = rng.random((n_sets, 3)) * 10.0
    return start[None] + np.arange(n_frames)[:, None, None] * speed * u[None]


def test_conduction_of_constant_drift_is_exact() -> None:
    # E[d^2(t)] = v^2 t^2 whatever the states; the least-squares slope over lags symmetric
    # about tau is exactly 2 v^2 tau, so D_ij = v^2 tau / 3 for every i, j and every group.
    rng = np.random.default_rng(2)
    lat = np.array([[10.0, 0.0, 0.0], [2.0, 9.0, 0.0], [1.0, -1.0, 9.5]])
    n_frames, n_sets, speed, tau = 40, 6, 0.3, 10
    x = _drift(n_frames, n_sets, speed, rng)
    frac = x @ np.linalg.inv(lat)
    wrapped = (frac - np.floor(frac)) @ lat  # crosses the cell: unwrapping must undo it
    coords = np.concatenate([wrapped, np.zeros((n_frames, 1, 3))], axis=1)
    traj = Trajectory(coords, np.repeat(lat[None], n_frames, 0), np.r_[np.full(n_sets, 3), 16],
                      np.arange(n_sets))
    probs = rng.dirichlet([1.0, 1.0], size=(n_frames, n_sets))
    probs[7] = np.nan  # an unscored frame
    diffusion, cond = an.conduction(traj, probs, tau * FI, 300.0, ci={"method": "chunks", "n": 2},
                                    frame_interval_ps=FI)
    d_true = (speed / FI) ** 2 * (tau * FI) / 3 * 1e-4  # A^2/ps -> cm^2/s
    np.testing.assert_allclose(diffusion.D_cm2_per_s, d_true, rtol=1e-9)
    np.testing.assert_allclose(diffusion.ci_low_cm2_per_s, d_true, rtol=1e-6)
    np.testing.assert_allclose(diffusion.ci_high_cm2_per_s, d_true, rtol=1e-6)
    assert list(cond.columns) == ["from_state", "to_state", "tau_ps", "population_from", "K", "z",
                                  "D_cm2_per_s", "sigma_S_per_m", "percent", "ci_low_percent",
                                  "ci_high_percent"]
    assert cond.percent.sum() == pytest.approx(100.0)
    with pytest.raises(InputError, match="frame_interval_ps"):
        an.conduction(traj, probs, tau * FI, 300.0)  # no frame interval anywhere


def _diffusing_pieces() -> tuple[list, list[np.ndarray]]:
    """Two pieces (60 and 45 frames) of 5 Li random walkers and one fixed O in a 9 A cube,
    with random 2-state memberships: the conduction tests' data."""
    rng = np.random.default_rng(3)
    lat = np.eye(3) * 9.0
    pieces, probs = [], []
    for n_frames in (60, 45):
        x = np.cumsum(rng.normal(scale=0.2, size=(n_frames, 5, 3)), axis=0)
        frac = x / 9.0
        coords = np.concatenate([(frac - np.floor(frac)) * 9.0, np.zeros((n_frames, 1, 3))], 1)
        pieces.append((coords, np.repeat(lat[None], n_frames, 0), np.r_[np.full(5, 3), 8],
                       np.arange(5)))
        probs.append(rng.dirichlet([2.0, 1.0], size=(n_frames, 5)))
    return pieces, probs


def test_conduction_api_equals_cli_csv(tmp_path: Path) -> None:
    pieces, probs = _diffusing_pieces()
    args = _write_case(tmp_path, pieces, probs, 4, [0, 1])
    charge = tmp_path / "charge.csv"
    pd.DataFrame({"state": [0, 1], "r_A": 1.0, "charge": 0.0, "r_star_A": 3.0,
                  "charge_at_r_star": [0.75, -0.5]}).to_csv(charge, index=False)
    dif, con = tmp_path / "diffusion.csv", tmp_path / "conduction.csv"
    settings = {"temperature_K": 350.0, "msd_window": 0.5, "msd_points": 5}
    ci = {"method": "trajectories", "n": 2}
    assert main(["conduction", str(dif), str(con), *args, "--charge", str(charge),
                 "--settings", json.dumps(settings),
                 "--koopman-settings", json.dumps({"ci": ci})]) == 0

    trajs, p = _api_inputs(args, [0, 1])
    diffusion, cond = an.conduction(trajs, p, 4 * FI, 350.0, charge_frame=pd.read_csv(charge),
                                    msd_window=0.5, msd_points=5, ci=ci)
    pair = ("from_state", "to_state")  # the CLI adds the selection's flag (issue 15)
    assert _csv_text(an.flag_states(diffusion, [], pair)) == dif.read_text()
    assert _csv_text(an.flag_states(cond, [], pair)) == con.read_text()


def test_api_rejects_misaligned_probs() -> None:
    traj = Trajectory(np.zeros((4, 2, 3)), np.repeat(np.eye(3)[None] * 5, 4, 0), np.array([3, 16]),
                      np.array([0]))
    with pytest.raises(InputError, match=r"expected shape \(4, 1, n_states>=2\)"):
        an.state_weighted_rdf(traj, np.full((3, 1, 2), 0.5), ["S"])
    with pytest.raises(InputError, match="probs: expected the state probabilities"):
        an.state_weighted_rdf(traj, None, ["S"])


def test_the_package_and_the_cli_stay_light() -> None:
    # (The registry that listed each analysis' outputs is gone: each analysis is one
    # subcommand in gdyn.cli.analysis and one rule in workflow/rules/structure.smk, which
    # tests/test_rules_e2e.py runs.)
    # The Snakefile and `gdyn --help` import the package: it must stay light.
    code = ("import sys, gdyn.analysis, gdyn.cli; gdyn.cli.build_parser(); heavy = {'pandas', "
            "'matplotlib', 'ase', 'freud', 'scipy', 'torch'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
