"""Paper figures, supplementary tables and the paper comparison from synthetic CSVs.

The synthetic inputs follow docs/contracts.md and come from a known reversible Markov
model (K(tau) = expm(Q tau)), so the tables and the comparison can be checked against the
numbers they were built from.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import _synthetic_systems as synth
import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import check_png, pdf_pages, pdf_subject
from scipy.linalg import expm

from gdyn import cli, compare, layout, plots
from gdyn import config as gc
from gdyn.analysis import representative_configurations
from gdyn.cli import figures as figures_cli
from gdyn.compare.headlines import global_timescale_from_local, local_koopman_matrix
from gdyn.compare.report import build_comparison
from gdyn.compare.roles import NOT_RUN, system_roles
from gdyn.errors import InputError
from gdyn.plots.figures import FIGURE_BUILDERS
from gdyn.plots.registry import FIGURE_INPUTS, TABLE_INPUTS
from gdyn.plots.tables import TABLE_BUILDERS
from gdyn.trajectory import Trajectory

ROOT = Path(__file__).resolve().parents[1]
# The library selects no backend (gdyn.cli.main sets MPLBACKEND); tests that draw do.
matplotlib.use("Agg")


# ----------------------------------------------------------------------------- synthetic data


def reversible_generator(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reversible rate matrix Q (1/ps) and its stationary distribution, states by population."""
    rng = np.random.default_rng(seed)
    pi = np.sort(rng.dirichlet(np.full(n, 3.0)))[::-1]
    flux = rng.uniform(0.002, 0.02, (n, n))
    flux = 0.5 * (flux + flux.T)
    np.fill_diagonal(flux, 0.0)
    q = flux / pi[:, None]
    np.fill_diagonal(q, -q.sum(axis=1))
    return q, pi


def write_koopman(
    d: Path, model: str, n: int, lags: list[float], tau: float, steps: int, seed: int = 0
) -> dict:
    """timescales/ck/eigen/populations CSVs and summary.json of a known Markov model."""
    d.mkdir(parents=True, exist_ok=True)
    q, pi = reversible_generator(n, seed)
    q = q * (10.0 / tau)  # slowest processes a few tau* long, whatever the time unit
    rows = []
    for lag in lags:
        lam = np.sort(np.abs(np.linalg.eigvals(expm(q * lag))))[::-1]
        for p in range(1, n):
            t = -lag / math.log(lam[p])
            rows.append(dict(model=model, n_states=n, lag_ps=lag, process=p, eigenvalue=lam[p],
                             timescale_ps=t, ci_low_ps=0.9 * t, ci_high_ps=1.1 * t))  # fmt: skip
    ts = pd.DataFrame(rows)
    ts.to_csv(d / "timescales.csv", index=False)
    k = expm(q * tau)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for step in range(1, steps + 1):
        pred = np.linalg.matrix_power(k, step)
        est = np.clip(expm(q * tau * step) + rng.normal(0, 0.01, (n, n)), 0, 1)
        for i in range(n):
            for j in range(n):
                rows.append(dict(model=model, n_states=n, tau_ps=tau, step=step, lag_ps=step * tau,
                                 from_state=i, to_state=j, predicted=pred[i, j],
                                 predicted_ci_low=pred[i, j] - 0.02, predicted_ci_high=pred[i, j] + 0.02,
                                 estimated=est[i, j], estimated_ci_low=est[i, j] - 0.03,
                                 estimated_ci_high=est[i, j] + 0.03))  # fmt: skip
    pd.DataFrame(rows).to_csv(d / "ck.csv", index=False)
    w, v = np.linalg.eig(k)
    order = np.argsort(-np.abs(w))
    w, v = w[order].real, v[:, order].real
    rows = []
    for p in range(n):
        vec = pi if p == 0 else v[:, p] / np.abs(v[:, p]).max()
        t = math.inf if p == 0 else -tau / math.log(abs(w[p]))
        for s in range(n):
            rows.append(dict(model=model, n_states=n, tau_ps=tau, process=p, eigenvalue=w[p],
                             timescale_ps=t, state=s, component=vec[s], ci_low=vec[s] - 0.05,
                             ci_high=vec[s] + 0.05))  # fmt: skip
    pd.DataFrame(rows).to_csv(d / "eigen.csv", index=False)
    pops = pd.DataFrame(dict(model=model, n_states=n, tau_ps=tau, state=range(n), population=pi,
                             ci_low=pi - 0.01, ci_high=pi + 0.01))  # fmt: skip
    pops.to_csv(d / "populations.csv", index=False)
    # K(tau*) on 5 CI groups (the stage's replicates.csv; ci_method chunks below)
    rows = [dict(model=model, n_states=n, tau_ps=tau, replicate=r, from_state=i, to_state=j,
                 value=kr[i, j])
            for r, kr in enumerate(expm(q * tau * f) for f in (0.9, 0.95, 1.0, 1.05, 1.1))
            for i in range(n) for j in range(n)]  # fmt: skip
    pd.DataFrame(rows).to_csv(d / "replicates.csv", index=False)
    at_tau = ts[np.isclose(ts["lag_ps"], tau)].sort_values("process")
    summary = dict(model=model, n_states=n, tau_star_ps=tau, tau_star_source="config",
                   tau_star_reason="config", tau_star_auto_ps=tau, lags_ps=lags,
                   probs_test="x", timescales_ps=at_tau["timescale_ps"].tolist(),
                   populations=pi.tolist(), ci_method="chunks", ci_n=5)  # fmt: skip
    (d / "summary.json").write_text(json.dumps(summary))
    return summary


def write_energy(path: Path) -> None:
    x = np.linspace(0.0, 2 * 2.81, 61)
    e = 40.0 * np.sin(np.pi * x / x[-1] * 2) ** 2 - 25.0 * np.exp(-((x - x[-1] / 2) ** 2) / 0.3)
    site = np.full(x.size, "", dtype=object)
    site[0], site[30], site[-1] = "tet", "oct", "tet"
    pd.DataFrame(dict(path_coordinate_A=x, energy_meV=e, site=site)).to_csv(path, index=False)


def write_positions(path: Path, n: int = 3000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tet = np.array([[a, b, c] for a in (0.25, 0.75) for b in (0.25, 0.75) for c in (0.25, 0.75)])
    octa = np.array([[0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    is_tet = rng.random(n) < 0.6
    centres = np.where(is_tet[:, None], tet[rng.integers(0, 8, n)], octa[rng.integers(0, 4, n)])
    frac = (centres + rng.normal(0, 0.04, (n, 3))) % 1.0
    p0 = np.clip(np.where(is_tet, 0.9, 0.1) + rng.normal(0, 0.05, n), 0, 1)
    pd.DataFrame(dict(traj=0, frame=np.arange(n), x_frac=frac[:, 0], y_frac=frac[:, 1],
                      z_frac=frac[:, 2], p0=p0, p1=1 - p0)).to_csv(path, index=False)  # fmt: skip


def write_structure(d: Path, n: int = 4, seed: int = 0) -> None:
    """profile, charge, rdf, q3, diffusion and conduction CSVs plus a snapshot extxyz."""
    from ase import Atoms
    from ase.io import write

    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    z = np.linspace(0, 60, 61)
    pd.concat([pd.DataFrame(dict(state=s, axis="z", position_A=z,
                                 density=np.exp(-((z - 10 - 12 * s) ** 2) / 20) / 8))
               for s in range(n)]).to_csv(d / "profile.csv", index=False)  # fmt: skip
    r = np.linspace(0.05, 8, 80)
    charges = [0.040, 0.262, -0.637, 0.889][:n]
    rows = []
    for s in range(n):
        r_star = 4.0 + 0.2 * s
        curve = 1.0 + (charges[s] - 1.0) / (1 + np.exp(-(r - 3.0) * 4))
        q_star = float(np.interp(r_star, r, curve))
        rows.append(pd.DataFrame(dict(state=s, r_A=r, charge=curve, r_star_A=r_star,
                                      charge_at_r_star=q_star)))  # fmt: skip
    pd.concat(rows).to_csv(d / "charge.csv", index=False)
    rdf = []
    for el in ["O", "H", "N", "Li"]:
        for s in range(n):
            g = 3 * np.exp(-((r - 2.0 - 0.3 * s) ** 2) / 0.05) + (r > 2.5)
            rdf.append(pd.DataFrame(dict(state=s, element=el, r_A=r, g=g,
                                         n_coord=np.cumsum(g * r**2) * 0.01)))  # fmt: skip
    pd.concat(rdf).to_csv(d / "rdf.csv", index=False)
    q = np.linspace(0, 1, 50)
    pd.concat([pd.DataFrame(dict(state=s, q3=q, density=np.exp(-((q - 0.2 * s - 0.1) ** 2) / 0.01)))
               for s in range(n)]).to_csv(d / "q3.csv", index=False)  # fmt: skip
    rows, crow = [], []
    pct = rng.dirichlet(np.ones(n * n)) * 100
    for i in range(n):
        for j in range(n):
            dval = (3.0 + i + 0.1 * j) * 1e-7
            rows.append(dict(from_state=i, to_state=j, tau_ps=800.0, D_cm2_per_s=dval,
                             ci_low_cm2_per_s=dval - 0.2e-7, ci_high_cm2_per_s=dval + 0.4e-7))  # fmt: skip
            p = pct[i * n + j]
            crow.append(dict(from_state=i, to_state=j, tau_ps=800.0, population_from=0.25, K=0.5,
                             z=0.5, D_cm2_per_s=dval, sigma_S_per_m=1e-3, percent=p,
                             ci_low_percent=p - 1.0, ci_high_percent=p + 2.0))  # fmt: skip
    pd.DataFrame(rows).to_csv(d / "diffusion.csv", index=False)
    pd.DataFrame(crow).to_csv(d / "conduction.csv", index=False)
    m = 300
    pos = rng.uniform(0, 1, (m, 3)) * [20.0, 20.0, 60.0]
    numbers = np.where(rng.random(m) < 0.7, 14, 79)
    atoms = Atoms(numbers=numbers, positions=pos, cell=[20.0, 20.0, 60.0], pbc=True)
    probs = rng.dirichlet(np.ones(n), m)
    target = (numbers == 14) & (pos[:, 2] > 10)
    probs[~target] = np.nan
    for s in range(n):
        atoms.new_array(f"state_prob_{s}", probs[:, s])
    atoms.new_array("state", np.where(target, np.nan_to_num(probs).argmax(axis=1), -1))
    write(str(d / "snapshot.extxyz"), atoms, format="extxyz")


def write_toy_snapshot(path: Path) -> None:
    """The toy's 5-atom cell (Li + 4 S of the FCC lattice) with the Li's state probabilities."""
    from ase import Atoms
    from ase.io import write

    a = 6.5
    pos = np.array([[0.25, 0.25, 0.75], [0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    atoms = Atoms(numbers=[3, 16, 16, 16, 16], positions=pos * a, cell=np.eye(3) * a, pbc=True)
    atoms.new_array("state_prob_0", np.r_[0.1, np.full(4, np.nan)])
    atoms.new_array("state_prob_1", np.r_[0.9, np.full(4, np.nan)])
    atoms.new_array("state", np.r_[1, np.full(4, -1)])
    write(str(path), atoms, format="extxyz")


def write_representative(path: Path, n_states: int = 4) -> None:
    """representative.extxyz of a PEO/LiTFSI-like trajectory (C/H/O/Li/N/S/F), one frame per
    state, from the API (each Li in its own state in every frame)."""
    from ase.io import write

    raw = synth.peo_frames(n_frames=4)
    traj = Trajectory(raw["traj_coords"], raw["lattices"], raw["atom_types"], raw["target_index"])
    probs = synth.crisp_probs(np.tile(np.arange(n_states), (4, 1)), n_states)
    write(str(path), representative_configurations(traj, probs, 4.0), format="extxyz")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    toy_lags = [1.0, 2.0, 5.0, 10.0, 20.0, 40.0]
    write_koopman(root / "koopman/toy/gdynet-s2", "gdynet", 2, toy_lags, 10.0, 6, seed=1)
    write_koopman(root / "koopman/toy/vampnet-s2", "vampnet", 2, toy_lags, 10.0, 6, seed=2)
    write_koopman(root / "koopman/toy/vampnet-s8", "vampnet", 8, toy_lags, 10.0, 6, seed=3)
    write_koopman(
        root / "koopman/siau/gdynet-s4", "gdynet", 4, [200.0, 1000.0, 3000.0], 3000.0, 4, seed=4
    )
    write_koopman(
        root / "koopman/peo/gdynet-s4", "gdynet", 4, [100.0, 400.0, 800.0], 800.0, 5, seed=5
    )
    (root / "toy/toy").mkdir(parents=True)
    write_energy(root / "toy/toy/energy_path.csv")
    (root / "structure/toy").mkdir(parents=True)
    write_positions(root / "structure/toy/positions-gdynet-s2.csv", seed=1)
    write_positions(root / "structure/toy/positions-vampnet-s2.csv", seed=2)
    write_toy_snapshot(root / "structure/toy/snapshot.extxyz")
    write_structure(root / "structure/siau")
    write_structure(root / "structure/peo")
    write_representative(root / "structure/peo/representative.extxyz")
    return root


def paper_systems() -> dict:
    """The default toy (with the paper's 2- and 8-state VAMPnets) plus the paper's Si-Au and PEO."""
    toy = gc.load_yaml(ROOT / "config/config.yaml")["systems"]["toy"]
    toy["train"]["models"] = {"gdynet": [2], "vampnet": [2, 8]}
    paper = gc.load_yaml(ROOT / "config/paper.yaml")["systems"]
    return {"toy": toy, "siau": paper["siau"], "peo": paper["peo"]}


def figure_inputs(root: Path, name: str) -> dict[str, str]:
    """The --inputs of each figure, exactly as workflow/rules/figures.smk requests them."""
    return plots.figure_input_paths(name, paper_systems(), results=str(root))


def test_wiring_requests_what_each_figure_draws() -> None:
    systems = paper_systems()
    for name, keys in (FIGURE_INPUTS | TABLE_INPUTS).items():
        assert set(plots.figure_input_paths(name, systems)) == set(keys), name
    assert plots.figure_input_paths("supp_fig1", systems) == {
        "timescales": "results/koopman/toy/vampnet-s8/timescales.csv",
        "summary": "results/koopman/toy/vampnet-s8/summary.json",
    }
    fig2 = plots.figure_input_paths("fig2", systems)
    assert fig2["vampnet_positions"] == "results/structure/toy/positions-vampnet-s2.csv"
    del systems["siau"]
    with pytest.raises(InputError, match="fig3: no system"):
        plots.figure_input_paths("fig3", systems)


def test_cli_choices_match_the_builders() -> None:
    # gdyn.cli.figures builds its parser from gdyn.layout without importing gdyn.plots.
    assert sorted(layout.FIGURES) == sorted(FIGURE_BUILDERS)
    assert sorted(layout.TABLES) == sorted(TABLE_BUILDERS)
    assert figures_cli.PNG_DPI == plots.style.PNG_DPI


# ----------------------------------------------------------------------------- figures


@pytest.mark.parametrize("name", sorted(FIGURE_BUILDERS))
def test_figure_renders_valid_pdf_and_png(data: Path, tmp_path: Path, name: str) -> None:
    pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
    status = cli.main(["figure", name, str(pdf), "--png", str(png), "--dpi", "150",
                       "--inputs", json.dumps(figure_inputs(data, name)),
                       "--data-label", "synthetic test data (a, b)"])  # fmt: skip
    assert status == 0
    assert pdf_pages(pdf) == 1
    check_png(png)
    # The data source travels with both files, so a toy is never mistaken for the paper.
    assert pdf_subject(pdf) == "Data: synthetic test data (a, b)"
    from PIL import Image

    with Image.open(png) as im:
        assert im.info.get("Description") == "Data: synthetic test data (a, b)"
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_every_contract_column_missing_is_named(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "conduction.csv"
    pd.read_csv(data / "structure/peo/conduction.csv").drop(columns=["percent"]).to_csv(
        bad, index=False
    )
    status = cli.main(
        [
            "figure",
            "fig5",
            str(tmp_path / "f.pdf"),
            "--inputs",
            json.dumps({"conduction": str(bad)}),
        ]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "conduction.csv" in err and "percent" in err
    assert not (tmp_path / "f.pdf").exists()


def test_missing_input_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["figure", "fig4", str(tmp_path / "f.pdf"), "--inputs", "{}"])
    assert status == 2
    assert "charge" in capsys.readouterr().err


def test_ck_needs_a_single_tau(data: Path, tmp_path: Path) -> None:
    ck = pd.read_csv(data / "koopman/peo/gdynet-s4/ck.csv")
    ck.loc[0, "tau_ps"] = 400.0
    bad = tmp_path / "ck.csv"
    ck.to_csv(bad, index=False)
    ins = figure_inputs(data, "fig4") | {"ck": str(bad)}
    with pytest.raises(InputError, match="tau_ps"):
        plots.render_figure("fig4", ins, tmp_path / "f.pdf")


def test_time_axis_switches_to_ns() -> None:
    from gdyn.plots import style

    assert style.time_unit(40.0) == ("ps", 1.0)
    assert style.time_unit(3000.0) == ("ns", 1e-3)


# ----------------------------------------------------------------------------- tables


def test_supp_table1_matches_charge_csv(data: Path, tmp_path: Path) -> None:
    csv, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    ins = figure_inputs(data, "supp_table1")
    assert cli.main(["table", "supp_table1", str(csv), "--md", str(md), "--inputs", json.dumps(ins),
                     "--data-label", "synthetic"]) == 0  # fmt: skip
    table = pd.read_csv(csv)
    assert list(table.columns) == ["state", "r_star_A", "charge_e"]
    src = pd.read_csv(ins["charge"]).groupby("state").first()
    np.testing.assert_allclose(table["charge_e"], src["charge_at_r_star"].to_numpy())
    np.testing.assert_allclose(table["r_star_A"], src["r_star_A"].to_numpy())
    text = md.read_text()
    for q in src["charge_at_r_star"]:
        assert f"{q:+.3f}" in text
    assert "| State | 0 | 1 | 2 | 3 |" in text and "synthetic" in text


def test_supp_table1_rejects_two_r_star_per_state(data: Path, tmp_path: Path) -> None:
    charge = pd.read_csv(data / "structure/peo/charge.csv")
    charge.loc[1, "r_star_A"] += 1.0
    bad = tmp_path / "charge.csv"
    charge.to_csv(bad, index=False)
    with pytest.raises(InputError, match="r_star_A"):
        plots.render_table("supp_table1", {"charge": str(bad)}, tmp_path / "t.csv", None)


def test_supp_table2_matches_diffusion_csv(data: Path, tmp_path: Path) -> None:
    csv, md = tmp_path / "t2.csv", tmp_path / "t2.md"
    ins = figure_inputs(data, "supp_table2")
    plots.render_table("supp_table2", ins, csv, md)
    table = pd.read_csv(csv)
    src = pd.read_csv(ins["diffusion"]).sort_values(["from_state", "to_state"])
    assert {"from_state", "to_state", "tau_ps", "D_1e-7_cm2_per_s", "pm_1e-7_cm2_per_s"} <= set(
        table
    )
    assert len(table) == 16
    np.testing.assert_allclose(table["D_1e-7_cm2_per_s"], src["D_cm2_per_s"].to_numpy() / 1e-7)
    np.testing.assert_allclose(table["pm_1e-7_cm2_per_s"], 0.3)  # (0.2 + 0.4) / 2
    text = md.read_text()
    # Row i = 2, column j = 3 of the matrix: D = 3 + 2 + 0.3 = 5.3 ± 0.3.
    row2 = next(line for line in text.splitlines() if line.startswith("| i = 2 |"))
    assert row2.split("|")[5].strip() == "5.3 ± 0.3"
    assert "τ = 800 ps" in text


# ----------------------------------------------------------------------------- comparison


def test_global_timescale_from_local_reproduces_supp_note_2() -> None:
    # The paper's numbers: local 42.3 ps and global 531 ps at tau = 10 ps fix p_o and p_t.
    tau = 10.0
    lam, p_slow = math.exp(-tau / 42.3), math.exp(-tau / 531.0)
    k_local = np.array([[p_slow, 1 - p_slow], [1 - (lam + 1 - p_slow), lam + 1 - p_slow]])
    assert global_timescale_from_local(k_local, tau) == pytest.approx(531.0, rel=1e-9)
    # Which state is octahedral does not matter.
    swapped = k_local[::-1, ::-1]
    assert global_timescale_from_local(swapped, tau) == pytest.approx(531.0, rel=1e-9)


def test_local_koopman_matrix_has_the_given_spectrum() -> None:
    k = local_koopman_matrix(42.3, [0.7, 0.3], 10.0)
    np.testing.assert_allclose(k.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.array([0.7, 0.3]) @ k, [0.7, 0.3])
    lam = np.sort(np.linalg.eigvals(k).real)[0]
    assert -10.0 / math.log(lam) == pytest.approx(42.3)


def _systems() -> dict:
    toy = gc.load_yaml(ROOT / "config/config.yaml")["systems"]["toy"]
    toy["train"]["models"] = {"gdynet": [2], "vampnet": [2, 8]}
    peo = gc.load_yaml(ROOT / "config/paper.yaml")["systems"]["peo"]
    return {"toy": toy, "peo": peo}


def test_comparison_has_paper_numbers_and_run_values(data: Path, tmp_path: Path) -> None:
    systems = _systems()
    inputs = compare.comparison_inputs(systems, results=str(data))
    assert all(Path(p).exists() for p in inputs.values()), inputs
    md, csv = tmp_path / "cmp.md", tmp_path / "cmp.csv"
    assert cli.main(["compare", str(md), "--csv", str(csv), "--systems", json.dumps(systems),
                     "--inputs", json.dumps(inputs)]) == 0  # fmt: skip
    table = pd.read_csv(csv)
    by_q = table.set_index("quantity")
    expected_paper = {
        "tetrahedral population (2-state GDyNet)": 100 * 0.0997 / (0.995 + 0.0997),
        "GDyNet relaxation timescale (2 states)": 42.3,
        "global VAMPnet relaxation timescale (2 states)": 236.0,
        "slowest global timescale rebuilt from the local model": 531.0,
        "slowest timescale of the 8-state global VAMPnet": 528.0,
        "relaxation 1: solid-liquid transition": 538.0,
        "relaxation 2: solid Si into/out of the interface": 73.2,
        "relaxation 3: liquid Si into/out of the interface": 2.26,
        "population of state 0": 50.6,
        "population of state 3": 7.0,
        "conduction carried by state 2 (2→2)": 40.0,
        "charge of state 2 at r*": -0.637,
        "charge of state 3 at r*": 0.889,
        "D_23 (transition 2→3)": 4.8,
        "D_33 (transition 3→3)": 2.8,
    }
    for q, v in expected_paper.items():
        assert by_q.loc[q, "paper_value"] == pytest.approx(v), q
    assert by_q.loc["population of state 0", "paper_pm"] == pytest.approx(0.8)
    assert by_q.loc["D_23 (transition 2→3)", "paper_pm"] == pytest.approx(0.7)
    assert len(table) == 5 + 3 + 4 + 1 + 4 + 16

    toy_sum = json.loads((data / "koopman/toy/gdynet-s2/summary.json").read_text())
    vamp_sum = json.loads((data / "koopman/toy/vampnet-s2/summary.json").read_text())
    vamp8 = json.loads((data / "koopman/toy/vampnet-s8/summary.json").read_text())
    assert by_q.loc["GDyNet relaxation timescale (2 states)", "run_value"] == pytest.approx(
        toy_sum["timescales_ps"][0]
    )
    assert by_q.loc["GDyNet relaxation timescale (2 states)", "run_ci_low"] == pytest.approx(
        0.9 * toy_sum["timescales_ps"][0]
    )
    assert by_q.loc["global VAMPnet relaxation timescale (2 states)", "run_value"] == pytest.approx(
        vamp_sum["timescales_ps"][0]
    )
    assert by_q.loc[
        "slowest timescale of the 8-state global VAMPnet", "run_value"
    ] == pytest.approx(vamp8["timescales_ps"][0])
    k_local = local_koopman_matrix(
        toy_sum["timescales_ps"][0], toy_sum["populations"], 10.0
    )
    slow = max(k_local[0, 0], k_local[1, 1], math.exp(-10.0 / toy_sum["timescales_ps"][0]))
    assert by_q.loc[
        "slowest global timescale rebuilt from the local model", "run_value"
    ] == pytest.approx(-10.0 / math.log(slow))

    pops = pd.read_csv(data / "koopman/peo/gdynet-s4/populations.csv")
    assert by_q.loc["population of state 1", "run_value"] == pytest.approx(
        100 * pops["population"][1]
    )
    cond = pd.read_csv(data / "structure/peo/conduction.csv")
    c22 = cond[(cond.from_state == 2) & (cond.to_state == 2)]
    assert by_q.loc["conduction carried by state 2 (2→2)", "run_value"] == pytest.approx(
        c22["percent"].iloc[0]
    )
    assert by_q.loc["charge of state 1 at r*", "run_value"] == pytest.approx(0.262, abs=0.2)
    assert by_q.loc["D_23 (transition 2→3)", "run_value"] == pytest.approx(5.3)

    # Si-Au is not in this config: its rows say so; nothing else does.
    siau = table[table["role"] == "siau"]
    assert (siau["status"] == NOT_RUN).all() and siau["run_value"].isna().all()
    assert (table[table["role"] != "siau"]["status"] == "ok").all()
    # Each section names the data source; the simulated toy is flagged as a different potential.
    text = md.read_text()
    assert systems["toy"]["data_label"] in text and systems["peo"]["data_label"] in text
    assert "different potential parametrisation" in text
    assert "| GDyNet relaxation timescale (2 states) | 42.3 |" in text
    assert "| population of state 0 | 50.6 ± 0.8 |" in text
    assert "| conduction carried by state 2 (2→2) | ~40.0 |" in text
    assert (table.loc[table.role == "toy", "run_data"].str.contains("simulated")).all()


def test_comparison_says_which_models_are_missing(tmp_path: Path) -> None:
    systems = _systems()
    systems["toy"]["train"]["models"] = {"gdynet": [2]}
    del systems["peo"]
    inputs = compare.comparison_inputs(systems, results=str(tmp_path))
    assert set(inputs) == {
        "toy:gdynet-s2:summary.json",
        "toy:gdynet-s2:timescales.csv",
        "toy:gdynet-s2:populations.csv",
        "toy:gdynet-s2:replicates.csv",
    }
    write_koopman(tmp_path / "koopman/toy/gdynet-s2", "gdynet", 2, [5.0, 10.0], 10.0, 3)
    table, text = build_comparison(systems, inputs)
    status = table.set_index("quantity")["status"]
    assert (
        status["global VAMPnet relaxation timescale (2 states)"]
        == "no 2-state VAMPnet in this config"
    )
    assert status["slowest timescale of the 8-state global VAMPnet"].startswith("no VAMPnet")
    assert status["GDyNet relaxation timescale (2 states)"] == "ok"
    assert (table[table.role == "peo"]["status"] == NOT_RUN).all()
    assert "not run in this config" in text


def test_roles_follow_the_figures_list() -> None:
    paper = gc.load_yaml(ROOT / "config/paper.yaml")["systems"]
    assert system_roles(paper) == {"toy": ["li2s"], "siau": ["siau"], "peo": ["peo"]}
    default = gc.load_yaml(ROOT / "config/config.yaml")["systems"]
    assert system_roles(default) == {"toy": ["toy"], "siau": [], "peo": []}


# ----------------------------------------------------------------------------- report captions


def test_every_figure_and_table_has_a_clean_caption() -> None:
    import jinja2
    from docutils.core import publish_parts

    schema = gc.load_yaml(ROOT / "workflow/schemas/config.schema.yaml")
    names = set(re.findall(r"\b(?:fig\d|supp_fig\d|supp_table\d)\b", json.dumps(schema)))
    assert names == set(FIGURE_BUILDERS) | set(TABLE_BUILDERS)

    class Snakemake:  # what Snakemake hands a caption template
        params = type("Params", (), {"data_label": "Materials Cloud peo-traj-{a..e}.npz"})
        config = gc.load_yaml(ROOT / "config/paper.yaml")

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    for name in [*sorted(names), "paper_comparison", "workflow"]:
        source = (ROOT / "workflow/report" / f"{name}.rst").read_text()
        text = env.from_string(source).render(snakemake=Snakemake)
        html = publish_parts(text, writer="html", settings_overrides={"report_level": 1})
        assert "system-message" not in html["html_body"], f"{name}.rst: reST warnings"
        if name != "workflow":
            assert "peo-traj-{a..e}" in text or name == "paper_comparison", name
    assert "li2s" in env.from_string((ROOT / "workflow/report/workflow.rst").read_text()).render(
        snakemake=Snakemake
    )
