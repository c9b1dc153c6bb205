"""State-weighted structure: RDF (Eq. 12), charge integral (Supp. Note 3), q3, profiles.

Ground truths: an ideal gas (g = 1), exact FCC coordination shells, tetrahedral (4 S) and
octahedral (6 S) interstitials of an FCC lattice, an analytic Gaussian charge integral, an
independent spherical-harmonics q3 and the tetrahedral / centrosymmetric q3 values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf, sph_harm_y

from gdyn import analysis as st
from gdyn.analysis.inputs import Piece
from gdyn.analysis.profile import state_profile
from gdyn.analysis.q3 import steinhardt_q3
from gdyn.analysis.rdf import first_shell, rdf_counts, rdf_from_counts
from gdyn.cli import main
from gdyn.errors import InputError

FCC_BASIS = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
TET_SITE = np.array([0.25, 0.25, 0.25])
OCT_SITE = np.array([0.5, 0.5, 0.5])


def _triclinic() -> np.ndarray:
    return np.array([[10.0, 0.0, 0.0], [3.0, 9.0, 0.0], [2.0, -2.0, 8.0]])


# --------------------------------------------------------------------------------------
# RDF


@pytest.mark.parametrize("r_max", [3.5, 7.0])  # below and above half the plane spacing
def test_ideal_gas_gives_g_one_in_triclinic_cell(r_max: float) -> None:
    rng = np.random.default_rng(0)
    lat = _triclinic()
    n_frames, n_atoms, n_ref = 6, 1500, 60
    coords = rng.random((n_frames, n_atoms, 3)) @ lat
    types = np.full(n_atoms, 8)
    types[:n_ref] = 3
    sets = np.arange(n_ref)[:, None]
    probs = rng.dirichlet([1.0, 1.0], size=(n_frames, n_ref))
    lats = np.repeat(lat[None], n_frames, 0)
    for element in (8, 3):  # other species, and the reference species itself (self excluded)
        counts = rdf_counts(coords, lats, sets, types, probs, element, r_max, 20)
        r, g, n = rdf_from_counts(counts, r_max)
        # Poisson error of each bin from its expected count.
        shell = 4 / 3 * np.pi * np.diff(np.linspace(0, r_max, 21) ** 3)
        expected = counts.weight_rho[:, None] * shell[None]
        sel = expected > 50
        assert sel.sum() > 20
        z = (g - 1.0)[sel] / (1.0 / np.sqrt(expected[sel]))
        assert np.abs(z).max() < 5.0
        # Pooled over bins; x2 variance: every Li-Li pair is seen from both ends.
        tol = 4.0 * math.sqrt(2.0 / expected[sel].sum())
        assert abs(np.average(g[sel], weights=expected[sel]) - 1.0) < tol
        # n(r) is the mean neighbour count: rho (4/3) pi r^3 for an ideal gas.
        rho = (types == element).sum() - (element == 3)
        rho /= abs(np.linalg.det(lat))
        far = r > 0.7 * r_max
        ideal = np.broadcast_to(rho * 4 / 3 * np.pi * r[far] ** 3, n[:, far].shape)
        np.testing.assert_allclose(n[:, far], ideal, rtol=0.05)


def test_fcc_primitive_cell_gives_exact_shells() -> None:
    # One atom in the triclinic primitive FCC cell (a = 1): every shell comes from images.
    lat = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])[None]
    counts = rdf_counts(np.zeros((1, 1, 3)), lat, np.array([[0]]), np.array([16]),
                           np.ones((1, 1, 1)), 16, 1.7, 1700)
    r, _, n = rdf_from_counts(counts, 1.7)
    shells = {1 / math.sqrt(2): 12, 1.0: 6, math.sqrt(1.5): 24, math.sqrt(2): 12,
              math.sqrt(2.5): 24}
    cumulative = 0
    for radius, count in sorted(shells.items()):
        before = n[0][np.searchsorted(r, radius - 0.02)]
        cumulative += count
        after = n[0][np.searchsorted(r, radius + 0.02)]
        assert before == cumulative - count
        assert after == cumulative
    assert n[0][np.searchsorted(r, 0.6)] == 0  # no self count


def test_fcc_conventional_cell_two_states_and_density_normalisation() -> None:
    a = 4.0
    lat = np.eye(3)[None] * a
    coords = (FCC_BASIS * a)[None]
    sets = np.arange(4)[:, None]
    probs = np.array([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.25, 0.75]]])
    counts = rdf_counts(coords, lat, sets, np.full(4, 29), probs, 29, 6.0, 600)
    r, g, n = rdf_from_counts(counts, 6.0)
    for i in range(2):
        assert np.all(n[i][r < 2.0] == 0)  # the reference never counts itself
        assert n[i][np.searchsorted(r, a / math.sqrt(2) + 0.05)] == pytest.approx(12)
        assert n[i][np.searchsorted(r, a + 0.05)] == pytest.approx(18)
        # rho int g 4 pi r^2 dr reproduces the count (density is (N - 1) / V).
        rho = 3 / a**3
        dv = 4 / 3 * np.pi * np.diff(np.linspace(0, 6.0, 601) ** 3)
        assert rho * np.sum(g[i] * dv) == pytest.approx(counts.hist[i].sum() / counts.weight[i])


def _interstitial_frames(n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A Li jittering in an FCC S lattice (a = 6.5 A): octahedral site in even frames,
    tetrahedral in odd ones, each in its own 5-atom cell like the toy system."""
    a = 6.5
    site = np.where(np.arange(n_frames) % 2 == 0, 0, 1)
    li = np.where(site[:, None] == 0, OCT_SITE, TET_SITE) * a
    li = li + rng.normal(scale=0.05, size=li.shape)
    coords = np.concatenate([li[:, None], np.repeat((FCC_BASIS * a)[None], n_frames, 0)], 1)
    return coords, site


def test_interstitial_sites_give_4_and_6_sulfur_neighbours() -> None:
    rng = np.random.default_rng(1)
    coords, site = _interstitial_frames(40, rng)
    probs = np.eye(2)[site][:, None, :]  # state 0 = octahedral
    lats = np.repeat(np.eye(3)[None] * 6.5, 40, 0)
    counts = rdf_counts(coords, lats, np.array([[0]]), np.array([3, 16, 16, 16, 16]),
                           probs, 16, 4.5, 180)
    r, g, n = rdf_from_counts(counts, 4.5)
    r_oct, n_oct = first_shell(r, g[0], n[0])
    r_tet, n_tet = first_shell(r, g[1], n[1])
    assert n_oct == pytest.approx(6.0)
    assert n_tet == pytest.approx(4.0)
    assert 3.25 < r_oct < 4.0
    assert 2.81 < r_tet < 3.25


def test_first_shell_edge_of_broad_noisy_shell_and_of_liquid_like_rdf() -> None:
    # The toy's octahedral Li rattles: 6 S spread over 2.6-4.2 A in one broad, noisy shell
    # (what the OpenMM toy gives); the edge is where the shell ends, not a noise dip.
    rng = np.random.default_rng(7)
    r = np.arange(0.0125, 4.5, 0.025)
    shape = np.clip((r - 2.6) / 0.15, 0, 1) * np.clip((4.2 - r) / 0.15, 0, 1)
    g = shape * (3.6 - 0.9 * (r - 2.6)) * (1 + 0.05 * rng.standard_normal(r.size))
    g = np.clip(g, 0, None)
    n = np.cumsum(g * r**2)
    n *= 6.0 / n[-1]
    r_min, n_min = first_shell(r, g, n)
    assert 4.2 <= r_min < 4.4 and n_min == pytest.approx(6.0)
    # A liquid-like g: first peak, a real minimum, second shell, g -> 1.
    g = (1 + 2.0 * np.exp(-0.5 * ((r - 2.5) / 0.2) ** 2) - 0.6 * np.exp(-0.5 * ((r - 3.2) / 0.25) ** 2)
         + 0.3 * np.exp(-0.5 * ((r - 4.0) / 0.3) ** 2)) * (r > 2.0)
    r_min, _ = first_shell(r, g, np.cumsum(g))
    assert r_min == pytest.approx(r[np.argmin(np.where((r > 2.6) & (r < 3.8), g, 9))], abs=0.05)


# --------------------------------------------------------------------------------------
# Charge integral


def _gauss_r2_integral(r: np.ndarray, mu: float, sd: float) -> np.ndarray:
    """int_0^r x^2 exp(-(x - mu)^2 / (2 sd^2)) dx in closed form."""

    def prim(u: np.ndarray) -> np.ndarray:
        e = np.exp(-(u**2) / (2 * sd**2))
        erf_term = sd * math.sqrt(math.pi / 2) * erf(u / (sd * math.sqrt(2)))
        return sd**2 * (erf_term - u * e) - 2 * mu * sd**2 * e + mu**2 * erf_term

    return prim(r - mu) - prim(np.asarray(-mu))


def test_charge_integral_of_gaussian_peaks_is_analytic(tmp_path: Path) -> None:
    r = np.linspace(0.005, 9.995, 1000)
    rows = []
    truth = {}
    for state, (mu_n, sd_n, a_n, a_li) in enumerate([(3.5, 0.25, 8.0, 1.0), (4.2, 0.4, 3.0, 4.0)]):
        rho_n, rho_li = 0.004, 0.002
        # N: a Gaussian first shell plus a smooth rise to 1 far beyond it; Li: one peak.
        plateau = 1.0 / (1.0 + np.exp(-(r - 7.5) / 0.2))
        g_n = a_n * np.exp(-0.5 * ((r - mu_n) / sd_n) ** 2) + plateau
        g_li = a_li * np.exp(-0.5 * ((r - 3.0) / 0.3) ** 2)
        n_n = rho_n * 4 * np.pi * a_n * _gauss_r2_integral(r, mu_n, sd_n)
        n_li = rho_li * 4 * np.pi * a_li * _gauss_r2_integral(r, 3.0, 0.3)
        # The plateau adds to n_N only far beyond the shell edge (< 1e-6 there).
        n_n = n_n + rho_n * 4 * np.pi * np.cumsum(plateau * r**2) * (r[1] - r[0])
        rows.append(pd.DataFrame({"state": state, "element": "N", "r_A": r, "g": g_n,
                                  "n_coord": n_n}))
        rows.append(pd.DataFrame({"state": state, "element": "Li", "r_A": r, "g": g_li,
                                  "n_coord": n_li}))
        r_star = mu_n + 3 * sd_n
        q = (1.0 - rho_n * 4 * np.pi * a_n * _gauss_r2_integral(np.array(r_star), mu_n, sd_n)
             + rho_li * 4 * np.pi * a_li * _gauss_r2_integral(np.array(r_star), 3.0, 0.3))
        truth[state] = (r_star, float(q))
    pd.concat(rows).to_csv(tmp_path / "rdf.csv", index=False)
    settings = json.dumps({"charge": {"center": "N", "charges": {"Li": 1, "N": -1}}})
    assert main(["charge", str(tmp_path / "rdf.csv"), str(tmp_path / "charge.csv"),
                 "--settings", settings]) == 0
    table = pd.read_csv(tmp_path / "charge.csv")
    assert list(table.columns) == ["state", "r_A", "charge", "r_star_A", "charge_at_r_star"]
    for state, (r_star, q) in truth.items():
        got = table[table.state == state].iloc[0]
        assert got.r_star_A == pytest.approx(r_star, abs=0.01)
        assert got.charge_at_r_star == pytest.approx(q, abs=0.01)
    assert truth[0][1] < 0.5 and truth[1][1] > truth[0][1]  # the two states really differ


def test_charge_needs_centre_rdf() -> None:
    df = pd.DataFrame({"state": 0, "element": "O", "r_A": [1.0, 2.0], "g": [0.0, 1.0],
                       "n_coord": [0.0, 1.0]})
    with pytest.raises(InputError, match="RDF of N"):
        st.charge_table(df, {"center": "N", "charges": {"Li": 1, "N": -1}}, "rdf.csv")


# --------------------------------------------------------------------------------------
# q3


def _q3_bruteforce(pos: np.ndarray, lat: np.ndarray, k: int) -> np.ndarray:
    """Independent q3: k nearest periodic neighbours by brute force, scipy harmonics."""
    shifts = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    out = []
    for i in range(len(pos)):
        d = (pos[None, :, :] + (shifts @ lat)[:, None, :] - pos[i]).reshape(-1, 3)
        dist = np.linalg.norm(d, axis=1)
        d = d[dist > 1e-9]
        d = d[np.argsort(np.linalg.norm(d, axis=1), kind="stable")[:k]]
        theta = np.arccos(d[:, 2] / np.linalg.norm(d, axis=1))
        phi = np.arctan2(d[:, 1], d[:, 0])
        qlm = [sph_harm_y(3, m, theta, phi).mean() for m in range(-3, 4)]
        out.append(math.sqrt(4 * math.pi / 7 * sum(abs(q) ** 2 for q in qlm)))
    return np.array(out)


def test_q3_diamond_and_simple_cubic() -> None:
    a = 5.43
    diamond = np.concatenate([FCC_BASIS, FCC_BASIS + 0.25]) * a
    q_dia = steinhardt_q3(diamond, np.eye(3) * a, 4)
    q_ref = _q3_bruteforce(diamond, np.eye(3) * a, 4)
    np.testing.assert_allclose(q_dia, q_ref, atol=1e-4)
    np.testing.assert_allclose(q_dia, 0.7454, atol=1e-3)  # perfect tetrahedron
    sc = (np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) * 2.5)
    # freud works in float32: centrosymmetric q3 = 0 to ~1e-4.
    np.testing.assert_allclose(steinhardt_q3(sc, np.eye(3) * 7.5, 6), 0.0, atol=1e-3)


def test_q3_matches_independent_implementation_in_triclinic_cell() -> None:
    rng = np.random.default_rng(3)
    lat = _triclinic()
    pos = rng.random((40, 3)) @ lat
    np.testing.assert_allclose(steinhardt_q3(pos, lat, 4), _q3_bruteforce(pos, lat, 4),
                               atol=1e-4)


# --------------------------------------------------------------------------------------
# Synthetic split pieces, probabilities and Koopman summary for the CLI


def _write_inputs(tmp: Path, coords: np.ndarray, lat: np.ndarray, types: np.ndarray,
                  targets: np.ndarray, probs_raw: np.ndarray, *, fi: float = 0.1,
                  tau_frames: int = 2, offset: int = 7, state_order: list[int] | None = None,
                  ) -> list[str]:
    """One test piece + probs at lags 1 and ``tau_frames`` frames + summary; CLI args."""
    n_frames = coords.shape[0]
    piece = tmp / "split" / "test" / "run0.npz"
    piece.parent.mkdir(parents=True)
    np.savez(piece, traj_coords=coords, lattices=np.repeat(lat[None], n_frames, 0),
             atom_types=types, target_index=targets, frame_interval_ps=np.float64(fi),
             frame_offset=np.int64(offset), source=np.str_("run0"))
    paths = []
    for lag, p in [(1, np.roll(probs_raw, 1, axis=2)), (tau_frames, probs_raw)]:
        path = tmp / f"lag{lag}" / "probs_test.npz"
        path.parent.mkdir()
        # Rows shuffled and one unrelated trajectory mixed in: matching is by name + frame.
        rng = np.random.default_rng(lag)
        order = rng.permutation(n_frames)
        junk = rng.random((5, *p.shape[1:])).astype(np.float32)
        np.savez(path, probs=np.concatenate([p[order].astype(np.float32), junk]),
                 traj=np.r_[np.ones(n_frames, np.int64), np.zeros(5, np.int64)],
                 sources=np.array(["other", "run0"]),
                 frame=np.r_[order + offset, np.arange(5)].astype(np.int64),
                 lag_ps=np.float64(lag * fi), frame_interval_ps=np.float64(fi))
        paths.append(str(path))
    summary = {"tau_star_ps": tau_frames * fi, "probs_test": paths[1]}
    if state_order is not None:
        summary["state_order"] = state_order
    (tmp / "summary.json").write_text(json.dumps(summary))
    return ["--test", str(piece), "--probs", *paths, "--summary", str(tmp / "summary.json")]


def _toy_inputs(tmp: Path, n_frames: int = 60) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(2)
    coords, site = _interstitial_frames(n_frames, rng)
    # Octahedral frames are 3 of 4 here so the model's raw state 1 (= oct) is the most
    # populated: the CLI must reorder it to state 0.
    site = np.where(np.arange(n_frames) % 4 == 1, 1, 0)
    a = 6.5
    li = np.where(site[:, None] == 0, OCT_SITE, TET_SITE) * a + rng.normal(0, 0.05, (n_frames, 3))
    coords[:, 0] = li
    raw = np.eye(2)[1 - site][:, None, :] * 0.9 + 0.05  # raw state 1 = octahedral
    args = _write_inputs(tmp, coords, np.eye(3) * a, np.array([3, 16, 16, 16, 16]),
                         np.array([0]), raw)
    return args, site


def test_rdf_cli_reorders_states_and_reports_first_shell(tmp_path: Path) -> None:
    args, _ = _toy_inputs(tmp_path)
    out = tmp_path / "rdf.csv"
    settings = json.dumps({"rdf": {"elements": ["S"], "r_max_A": 4.5, "n_bins": 180}})
    assert main(["rdf", str(out), *args, "--settings", settings]) == 0
    rdf = pd.read_csv(out)
    assert list(rdf.columns[:5]) == ["state", "element", "r_A", "g", "n_coord"]
    shell = rdf.groupby("state")[["r_first_min_A", "n_first_shell"]].first()
    # Soft probabilities (0.95 / 0.05) mix the shells a little. State 0 mixes 3 oct frames at p = 0.95 with 1 tet frame at p = 0.05.
    w_oct = 3 * 0.95 / (3 * 0.95 + 0.05)
    assert shell.loc[0, "n_first_shell"] == pytest.approx(6 * w_oct + 4 * (1 - w_oct), abs=0.01)
    w_tet = 0.95 / (0.95 + 3 * 0.05)
    # State 1's first shell is the tetrahedral one; oct neighbours lie beyond its minimum.
    assert shell.loc[1, "n_first_shell"] == pytest.approx(4 * w_tet, abs=0.01)
    assert 2.81 < shell.loc[1, "r_first_min_A"] < 3.2 < shell.loc[0, "r_first_min_A"]


def test_summary_state_order_wins(tmp_path: Path) -> None:
    args, site = _toy_inputs(tmp_path)
    summary = json.loads(Path(args[-1]).read_text())
    summary["state_order"] = [0, 1]  # keep raw order: state 0 = tetrahedral
    Path(args[-1]).write_text(json.dumps(summary))
    an = st.load_analysis([args[1]], args[3:5], args[-1])
    assert an.state_order == [0, 1]
    np.testing.assert_allclose(an.pieces[0].probs[:, 0, 0], np.where(site == 1, 0.95, 0.05),
                               rtol=1e-6)
    summary["state_order"] = [0, 0]
    Path(args[-1]).write_text(json.dumps(summary))
    with pytest.raises(InputError, match="state_order"):
        st.load_analysis([args[1]], args[3:5], args[-1])


def test_snapshot_positions_profile_cli(tmp_path: Path) -> None:
    import ase.io

    args, site = _toy_inputs(tmp_path, n_frames=40)
    settings = json.dumps({"snapshot_frame": -1, "profile": {"axis": "z", "n_bins": 13}})
    xyz, png = tmp_path / "snap.extxyz", tmp_path / "snap.png"
    assert main(["snapshot", str(xyz), "--png", str(png), *args, "--settings", settings]) == 0
    atoms = ase.io.read(xyz)
    assert atoms.arrays["state"].tolist() == [int(site[-1] == 1), -1, -1, -1, -1]
    assert np.isnan(atoms.arrays["state_prob_0"][1:]).all()
    assert atoms.arrays["state_prob_0"][0] == pytest.approx(0.95 if site[-1] == 0 else 0.05)
    assert png.stat().st_size > 0

    pos = tmp_path / "positions.csv"
    assert main(["positions", str(pos), *args, "--max-rows", "15"]) == 0
    table = pd.read_csv(pos)
    assert len(table) == 15
    assert table[["x_frac", "y_frac", "z_frac"]].to_numpy().min() >= 0
    assert table[["x_frac", "y_frac", "z_frac"]].to_numpy().max() < 1
    expect = np.where(site[table.frame - 7] == 0, 0.95, 0.05)
    np.testing.assert_allclose(table.p0, expect, rtol=1e-6)
    assert set(table.frame) <= set(range(7, 47))

    prof = tmp_path / "profile.csv"
    assert main(["profile", str(prof), *args, "--settings", settings]) == 0
    p = pd.read_csv(prof)
    dz = 6.5 / 13
    total = p.groupby("state")["density"].sum() * dz
    # Integrates to the mean number of targets in each state.
    np.testing.assert_allclose(total.to_numpy(), [(0.95 * 30 + 0.05 * 10) / 40,
                                                  (0.05 * 30 + 0.95 * 10) / 40], rtol=1e-6)


def test_state_profile_separates_halves() -> None:
    rng = np.random.default_rng(4)
    n_frames, n = 20, 200
    lat = np.diag([5.0, 5.0, 20.0])
    coords = rng.random((n_frames, n, 3)) @ lat
    upper = coords[..., 2] >= 10.0
    probs = np.stack([upper, ~upper], -1).astype(float)
    piece = Piece("p", Path("p"), coords, np.repeat(lat[None], n_frames, 0), np.ones(n, int),
                     np.arange(n)[:, None], probs, 1.0, 0)
    z, dens = state_profile([piece], "z", 20)
    assert np.all(dens[0][z < 10] == 0) and np.all(dens[1][z > 10] == 0)
    assert dens.sum() * 1.0 == pytest.approx(n)  # bins are 1 A wide


def test_wrong_probs_shape_is_named(tmp_path: Path) -> None:
    args, _ = _toy_inputs(tmp_path)
    bad = tmp_path / "bad.npz"
    np.savez(bad, probs=np.zeros((3, 2, 2)), traj=np.zeros(3, int), sources=np.array(["run0"]),
             frame=np.arange(3), lag_ps=np.float64(0.2), frame_interval_ps=np.float64(0.1))
    summary = json.loads(Path(args[-1]).read_text())
    summary["probs_test"] = str(bad)
    Path(args[-1]).write_text(json.dumps(summary))
    with pytest.raises(InputError, match="expected 1 target sets"):
        st.load_analysis([args[1]], [str(bad)], args[-1])


def test_q3_cli_separates_crystal_and_disordered_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a, n_frames = 5.43, 12
    cells = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    diamond = ((np.concatenate([FCC_BASIS, FCC_BASIS + 0.25])[None] + cells).reshape(-1, 3)) * a
    lat = np.eye(3) * 2 * a
    crystal = np.arange(n_frames) % 2 == 0
    coords = np.where(crystal[:, None, None],
                      diamond + rng.normal(0, 0.05, (n_frames, *diamond.shape)),
                      rng.random((n_frames, *diamond.shape)) @ lat)
    n = diamond.shape[0]
    raw = np.where(crystal[:, None, None], [0.9, 0.1], [0.1, 0.9]) * np.ones((1, n, 1))
    raw[~crystal] = np.where(np.arange(n)[:, None] < n // 2, [0.2, 0.8], [0.1, 0.9])
    args = _write_inputs(tmp_path, coords, lat, np.full(n, 14), np.arange(n), raw)
    out = tmp_path / "q3.csv"
    settings = json.dumps({"q3": {"element": "Si", "n_neighbors": 4, "n_bins": 40}})
    assert main(["q3", str(out), *args, "--settings", settings]) == 0
    q3 = pd.read_csv(out)
    area = q3.groupby("state").density.sum() / 40
    np.testing.assert_allclose(area, 1.0)  # unit area per state
    mean = q3.assign(w=q3.q3 * q3.density / 40).groupby("state").w.sum()
    assert mean[0] > 0.65 > mean[1]  # state 0 = the crystal-weighted state
