"""A PEO-like system with a nearly empty state, end to end (issue 15 "Done when").

Five trajectories in the paper's file format (Materials Cloud npz: many species, 10 Li
targets; the first for training, four for testing, as in the paper), whose Li follow a
4-state chain with state 3 at ~0.2 % population, and a 4-state model's outputs at three
lags. ``gdyn koopman`` must flag state 3 and give a CK verdict; ``gdyn rdf``, ``charge`` and
``conduction`` must read the same selection; Fig. 4 must have no runaway panel. Without the
selection the same data give eigenvector CIs of +-38 and CK CIs of +-50 (the issue's
symptom), which the last test shows so that the figure checks can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import simulate, softmax

from gdyn import koopman as kp
from gdyn.analysis import load_analysis
from gdyn.cli import main

FI = 10.0  # ps per frame
LAGS = (2, 4, 8)  # frames: 20, 40, 80 ps
N_TRAJ, N_FRAMES, N_LI = 5, 400, 10
L = 16.0  # cubic cell (A)
SPECIES = {"C": 6, "H": 1, "O": 8, "S": 16, "F": 9}  # besides Li and its N
D_N = np.array([2.1, 2.6, 3.4, 2.0])  # Li-N distance of each hidden state (A)
T = np.zeros((4, 4))
T[:3, :3] = [[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.01, 0.04, 0.95]]
T[0, 0] -= 4e-4
T[0, 3] = 4e-4  # state 3: entered rarely, left after ~10 frames (0.17 % population)
T[3, 3], T[3, 0] = 0.9, 0.1


@pytest.fixture(scope="module")
def peo(tmp_path_factory) -> dict:
    """Raw trajectories, test split pieces, probs at every lag, and the Koopman outputs."""
    tmp = tmp_path_factory.mktemp("peo")
    rng = np.random.default_rng(0)
    burn = 200
    hidden = simulate(T, N_TRAJ * N_LI, N_FRAMES + burn, seed=1, start=0)[:, burn:]
    hidden = hidden.reshape(N_TRAJ, N_LI, N_FRAMES).transpose(0, 2, 1)  # (traj, F, Li)
    grid = np.array([[x, y, z] for x in (2, 10) for y in (2, 10) for z in (2, 7, 12)])[:N_LI]
    direction = rng.normal(size=(N_LI, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    others = [z for z, n in zip(SPECIES.values(), (12, 24, 16, 8, 20), strict=True)
              for _ in range(n)]  # fmt: skip
    types = np.array([3] * N_LI + [7] * N_LI + others)
    pieces, sources = [], []
    for k in range(N_TRAJ):
        li = grid[None] + rng.normal(scale=0.05, size=(N_FRAMES, N_LI, 3))
        n = li + D_N[hidden[k]][..., None] * direction[None]
        rest = rng.uniform(0, L, size=(N_FRAMES, len(others), 3))
        coords = np.concatenate([li, n, rest], axis=1).astype(np.float32)
        lattices = np.repeat(np.eye(3)[None] * L, N_FRAMES, 0)
        source = f"peo-traj-{'abcde'[k]}"
        raw = dict(traj_coords=coords, lattices=lattices, atom_types=types,
                   target_index=np.arange(N_LI))  # fmt: skip
        np.savez(tmp / f"{source}.npz", **raw)  # the Materials Cloud format
        if k > 0:  # trajectory a trains, b..e test (as the paper's PEO model)
            path = tmp / f"test-{source}.npz"
            np.savez(path, **raw, frame_interval_ps=np.float64(FI), frame_offset=np.int64(0),
                     source=np.str_(source))  # fmt: skip
            pieces.append(str(path))
            sources.append(source)
    probs = {}
    for lag in LAGS:
        noise = np.random.default_rng(10 + lag).standard_normal((*hidden.shape, 4))
        p = softmax(8.0 * np.eye(4)[hidden] + 0.5 * noise)[1:]  # the test trajectories
        path = tmp / f"gdynet-s4-lag{lag * FI:g}ps-probs_test.npz"
        np.savez(path, probs=p.reshape(-1, N_LI, 4).astype(np.float32),
                 traj=np.repeat(np.arange(N_TRAJ - 1), N_FRAMES),
                 frame=np.tile(np.arange(N_FRAMES), N_TRAJ - 1), sources=np.array(sources),
                 lag_ps=np.float64(lag * FI), frame_interval_ps=np.float64(FI))  # fmt: skip
        probs[lag] = str(path)
    out = tmp / "koopman" / "gdynet-s4"
    settings = {"model": "gdynet", "n_states": 4, "tau_star_ps": 40, "ck_steps": 3,
                "ci": {"method": "trajectories", "n": 4}}  # fmt: skip
    argv = ["koopman", str(out), "--probs", *probs.values(), "--model", "gdynet",
            "--settings", json.dumps(settings)]  # fmt: skip
    assert main(argv) == 0
    # The structure analyses of the analysed model, as the workflow runs them.
    args = ["--test", *pieces, "--probs", *probs.values(), "--summary", str(out / "summary.json")]
    structure = {"rdf": {"elements": ["N", "O"], "r_max_A": 6.0, "n_bins": 60},
                 "charge": {"center": "N", "charges": {"Li": 1, "N": -1}}}  # fmt: skip
    rdf_csv, charge_csv = tmp / "rdf.csv", tmp / "charge.csv"
    assert main(["rdf", str(rdf_csv), *args, "--settings", json.dumps(structure)]) == 0
    assert main(["charge", str(rdf_csv), str(charge_csv), "--settings", json.dumps(structure)]) == 0
    # The picture inputs of Fig. 4 (panels a and b).
    snapshot, representative = tmp / "snapshot.extxyz", tmp / "representative.extxyz"
    assert main(["snapshot", str(snapshot), "--png", str(tmp / "snapshot.png"), *args,
                 "--settings", json.dumps({"snapshot_frame": 0})]) == 0  # fmt: skip
    assert main(["representative", str(representative), "--charge", str(charge_csv), *args,
                 "--settings", json.dumps(structure)]) == 0  # fmt: skip
    occupancy = np.bincount(hidden[1:].ravel(), minlength=4) / hidden[1:].size
    return {"tmp": tmp, "pieces": pieces, "probs": probs, "out": out, "settings": settings,
            "occupancy": occupancy, "argv": argv, "args": args, "rdf": rdf_csv,
            "charge": charge_csv, "snapshot": snapshot,
            "representative": representative}  # fmt: skip


def test_koopman_flags_the_rare_state_and_gives_a_verdict(peo) -> None:
    assert 0.0005 < peo["occupancy"][3] < 0.003
    s = json.loads((peo["out"] / "summary.json").read_text())
    assert s["near_empty_states"] == [3] and s["n_surviving_states"] == 3
    assert s["state_order"][3] == 3 and not s["collapsed"]
    assert isinstance(s["ck_pass"], bool) and s["ck_pass"]
    assert "State 3 (population 0.0017" in s["state_selection"]
    assert [e["near_empty_states"] for e in s["ck_by_lag"]] == [[3], [3], [3]]
    assert s["populations"][3] is None and s["timescales_ps"][2] is None
    ck = pd.read_csv(peo["out"] / "ck.csv")
    kept = ck[~ck["near_empty"]]
    assert (kept["predicted"] - kept["estimated"]).abs().max() < 0.05  # "Done when": < 0.5
    assert ck[ck["near_empty"]][["predicted", "estimated"]].isna().all().all()
    pop = pd.read_csv(peo["out"] / "populations.csv")
    assert pop["near_empty"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(pop["mean_probability"].iloc[3], 0.0017, atol=5e-4)


def test_every_analysis_reads_the_same_selection(peo) -> None:
    tmp, out, args = peo["tmp"], peo["out"], peo["args"]
    summary = json.loads((out / "summary.json").read_text())
    analysis = load_analysis(peo["pieces"], list(peo["probs"].values()), out / "summary.json")
    assert analysis.near_empty_states == [3]
    w = np.concatenate([pc.probs for pc in analysis.pieces])
    unscored = ~np.isfinite(w).all(axis=-1)
    assert (w[~unscored][..., 3] == 0).all()
    np.testing.assert_allclose(w[~unscored].sum(axis=-1), 1.0, rtol=1e-6)
    assert f"{int(unscored.sum())} of {unscored.size} (frame, target set) rows" in summary[
        "state_selection"]
    rdf_csv, charge_csv = peo["rdf"], peo["charge"]
    rdf = pd.read_csv(rdf_csv)
    assert (rdf["near_empty"] == (rdf["state"] == 3)).all()
    assert rdf[rdf["state"] == 3]["g"].isna().all()
    # The surviving states' N shells sit where their Li-N distance is (0.1 A bins).
    order = summary["state_order"]
    for state in range(3):
        g = rdf[(rdf["state"] == state) & (rdf["element"] == "N")]
        peak = float(g["r_A"].iloc[int(np.nanargmax(g["g"].to_numpy()))])
        assert abs(peak - D_N[order[state]]) <= 0.1, (state, peak)
    charge = pd.read_csv(charge_csv)
    assert (charge["near_empty"] == (charge["state"] == 3)).all()
    dif, con = tmp / "diffusion.csv", tmp / "conduction.csv"
    assert main(["conduction", str(dif), str(con), *args, "--charge", str(charge_csv),
                 "--settings", json.dumps({"temperature_K": 363.0}),
                 "--koopman-settings", json.dumps(peo["settings"])]) == 0  # fmt: skip
    cond = pd.read_csv(con)
    touches = (cond["from_state"] == 3) | (cond["to_state"] == 3)
    assert (cond["near_empty"] == touches).all()
    assert (cond[cond["from_state"] == 3]["population_from"] == 0).all()
    # Conduction's K on the surviving states is the Koopman stage's K(tau*) (same rows).
    km_k = np.array(pd.read_csv(out / "eigen.csv").query("process == 0")["component"])
    np.testing.assert_allclose(cond.groupby("from_state")["population_from"].first()[:3],
                               km_k[:3], atol=1e-6)  # fmt: skip
    assert cond["percent"].sum() == pytest.approx(100.0)


def _fig4(peo: dict, out: Path) -> tuple:
    import matplotlib

    matplotlib.use("Agg")
    from gdyn.plots import style
    from gdyn.plots.figures import figure_fig4

    inputs = {"charge": str(peo["charge"]), "snapshot": str(peo["snapshot"]),
              "representative": str(peo["representative"]),
              **{k: str(out / f"{k}.csv") for k in ("timescales", "eigen", "ck")},
              "summary": str(out / "summary.json")}
    with style.paper_style():
        fig = figure_fig4(inputs, renderer="matplotlib")
    return fig, inputs


def _ck_axes(fig) -> list:
    return [ax for ax in fig.axes if "→" in ax.get_title()]


def test_fig4_has_no_runaway_panel(peo, tmp_path) -> None:
    import matplotlib.pyplot as plt

    fig, inputs = _fig4(peo, peo["out"])
    try:
        ck_axes = _ck_axes(fig)
        assert len(ck_axes) == 9  # the three surviving states
        for ax in ck_axes:
            assert ax.get_ylim() == (-0.05, 1.05)
            for line in ax.get_lines():
                y = np.asarray(line.get_ydata(), dtype=float)
                assert np.all((y > -0.1) & (y < 1.1)), ax.get_title()
        texts = " ".join(t.get_text() for t in fig.texts)
        assert "PASS" in texts and "near-empty state 3 excluded" in texts
        eigen_axes = [ax for ax in fig.axes if ax.get_title().startswith("process")]
        assert len(eigen_axes) == 2
        assert max(abs(v) for v in eigen_axes[0].get_ylim()) < 5
    finally:
        plt.close("all")
    # ... and the workflow's command draws it.
    assert main(["figure", "fig4", str(tmp_path / "fig4.pdf"), "--png", str(tmp_path / "f.png"),
                 "--inputs", json.dumps(inputs)]) == 0  # fmt: skip
    assert (tmp_path / "fig4.pdf").stat().st_size > 0


def test_without_the_selection_the_panels_run_away(peo, tmp_path) -> None:
    import matplotlib.pyplot as plt

    argv = list(peo["argv"])
    out = tmp_path / "gdynet-s4"
    argv[1] = str(out)
    argv[-1] = json.dumps(dict(peo["settings"], min_population=0, min_samples=0))
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["near_empty_states"] == []
    eig = pd.read_csv(out / "eigen.csv")
    assert (eig["ci_high"] - eig["ci_low"]).max() > 20  # the issue's +-30 error bars
    ck = pd.read_csv(out / "ck.csv")
    # Issue 22: CK intervals are percentile intervals clipped to [0, 1] (a transition
    # probability), so the runaway now shows as an element whose interval spans almost
    # all of [0, 1] (before: Student-t intervals beyond +-5).
    assert ck["estimated_ci_high"].max() <= 1.0 and ck["estimated_ci_low"].min() >= 0.0
    assert (ck["estimated_ci_high"] - ck["estimated_ci_low"]).max() > 0.9
    fig, _ = _fig4(peo, out)
    try:
        eigen_axes = [ax for ax in fig.axes if ax.get_title().startswith("process")]
        assert max(abs(v) for v in eigen_axes[0].get_ylim()) > 10
    finally:
        plt.close("all")
    # The same data through the API: the selection is what makes the difference.
    data = kp.load_probs(peo["probs"][4])
    km = kp.KoopmanModel.estimate(data, 40.0, ci={"method": "trajectories", "n": 4})
    assert km.near_empty_states == [3] and np.abs(km.eigenvectors).max() < 5


def test_paper_comparison_names_the_near_empty_state(peo) -> None:
    from gdyn import config as gc
    from gdyn.compare.report import build_comparison

    root = Path(__file__).resolve().parents[1]
    systems = {"peo": gc.load_yaml(root / "config/paper.yaml")["systems"]["peo"]}
    out = peo["out"]
    inputs = {"peo:gdynet-s4:summary.json": str(out / "summary.json"),
              "peo:gdynet-s4:populations.csv": str(out / "populations.csv"),
              "peo:charge.csv": str(peo["charge"])}  # fmt: skip
    table, _ = build_comparison(systems, inputs)
    rows = table.set_index("quantity")
    assert "near-empty" in rows.loc["population of state 3", "status"]
    assert np.isnan(rows.loc["population of state 3", "run_value"])
    pop = pd.read_csv(out / "populations.csv")
    assert rows.loc["population of state 0", "run_value"] == pytest.approx(
        100 * pop["population"][0])
