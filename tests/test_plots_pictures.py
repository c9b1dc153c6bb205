"""Figs. 2-4 with their pictures of atoms, from small synthetic trajectories in the paper's
file format (Si-Au-like slab, PEO/LiTFSI-like electrolyte, the toy's FCC cell) run through
the workflow's own commands (``gdyn snapshot``, ``gdyn profile``, ``gdyn representative``,
``gdyn figure``), and the representative-configuration rule on data whose answer is known.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import _synthetic_systems as synth
import matplotlib
import numpy as np
import pytest
import test_plots as tp
from conftest import check_png
from test_render import _ovito_or_skip

from gdyn import cli, layout, plots
from gdyn import config as gc
from gdyn.analysis.inputs import Piece
from gdyn.analysis.representative import (
    DEFAULT_SHELL_RADIUS_A,
    Representative,
    representative_frames,
    shell_members,
    shell_radii,
)
from gdyn.errors import InputError
from gdyn.plots import render as R
from gdyn.plots import style
from gdyn.plots.figures import figure_fig2, figure_fig3, figure_fig4
from gdyn.plots.io import read_snapshot

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["ovito", "matplotlib"])
def renderer(request: pytest.FixtureRequest) -> R.BackendChoice:
    if request.param == "ovito":
        _ovito_or_skip()
    return R.resolve_backend(request.param)


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Inputs of Figs. 2-4 made by the workflow's commands from synthetic trajectories."""
    root = tmp_path_factory.mktemp("pictures")
    out: dict[str, dict[str, str]] = {}

    si = synth.siau_frames(n_frames=12)
    d = root / "siau"
    args = synth.write_analysis_inputs(
        d, {"siau-traj": si}, {"siau-traj": synth.crisp_probs(np.tile(si["region"], (9, 1)), 4,
                                                              0.97)})
    settings = json.dumps({"snapshot_frame": -1, "profile": {"axis": "z", "n_bins": 20}})
    assert cli.main(["snapshot", str(d / "snapshot.extxyz"), "--png", str(d / "snapshot.png"),
                     *args, "--settings", settings]) == 0
    assert cli.main(["profile", str(d / "profile.csv"), *args, "--settings", settings]) == 0
    tp.write_koopman(d / "k", "gdynet", 4, [200.0, 1000.0, 3000.0], 3000.0, 4, seed=4)
    out["fig3"] = {"snapshot": str(d / "snapshot.extxyz"), "profile": str(d / "profile.csv"),
                   **{t: str(d / "k" / f"{t}.csv") for t in ("timescales", "eigen", "ck")},
                   "summary": str(d / "k" / "summary.json")}

    d = root / "peo"
    trajs = {f"peo-traj-{c}": synth.peo_frames(n_frames=8, seed=k) for k, c in enumerate("bc")}
    probs = {name: synth.crisp_probs(np.tile(np.arange(4), (5, 1)), 4, 0.9) for name in trajs}
    probs["peo-traj-c"][2, 1] = [0.01, 0.01, 0.01, 0.97]  # Li 1 is state 3's best
    args = synth.write_analysis_inputs(d, trajs, probs, fi_ps=10.0)
    tp.write_structure(d / "st")  # charge.csv with r* = 4.0, 4.2, 4.4, 4.6 A
    assert cli.main(["snapshot", str(d / "snapshot.extxyz"), "--png", str(d / "snapshot.png"),
                     *args, "--settings", "{}"]) == 0
    assert cli.main(["representative", str(d / "representative.extxyz"), "--charge",
                     str(d / "st" / "charge.csv"), *args, "--settings", "{}"]) == 0
    tp.write_koopman(d / "k", "gdynet", 4, [100.0, 400.0, 800.0], 800.0, 5, seed=5)
    out["fig4"] = {"snapshot": str(d / "snapshot.extxyz"),
                   "representative": str(d / "representative.extxyz"),
                   "charge": str(d / "st" / "charge.csv"),
                   **{t: str(d / "k" / f"{t}.csv") for t in ("timescales", "eigen", "ck")},
                   "summary": str(d / "k" / "summary.json")}
    out["peo_args"] = {"args": json.dumps(args)}

    d = root / "toy"
    a = 6.5
    cell = np.array([[0.3, 0.3, 0.3], [0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    toy = {"traj_coords": np.tile(cell * a, (8, 1, 1)).astype(np.float32),
           "lattices": np.repeat((np.eye(3) * a)[None], 8, 0),
           "atom_types": np.array([3, 16, 16, 16, 16]), "target_index": np.array([0])}
    args = synth.write_analysis_inputs(d, {"li000": toy},
                                       {"li000": synth.crisp_probs(np.zeros((5, 1), int), 2)},
                                       fi_ps=0.1)
    assert cli.main(["snapshot", str(d / "snapshot.extxyz"), "--png", str(d / "snapshot.png"),
                     *args, "--settings", "{}"]) == 0
    for m, seed in (("gdynet", 1), ("vampnet", 2)):
        tp.write_koopman(d / m, m, 2, [1.0, 2.0, 5.0, 10.0, 20.0], 10.0, 6, seed=seed)
        tp.write_positions(d / f"{m}.csv", seed=seed)
    tp.write_energy(d / "energy.csv")
    out["fig2"] = {"energy": str(d / "energy.csv"), "snapshot": str(d / "snapshot.extxyz"),
                   **{f"{m}_{t}": str(d / m / f"{t}.csv") for m in ("gdynet", "vampnet")
                      for t in ("timescales", "ck")},
                   **{f"{m}_summary": str(d / m / "summary.json") for m in ("gdynet", "vampnet")},
                   **{f"{m}_positions": str(d / f"{m}.csv") for m in ("gdynet", "vampnet")}}
    return out


def panels(fig: matplotlib.figure.Figure) -> dict[str, matplotlib.axes.Axes]:
    """Panel letter -> the axes it labels (style.panel_letter's bold one-letter texts)."""
    found = {}
    for ax in fig.axes:
        for t in ax.texts:
            if t.get_fontweight() == "bold" and len(t.get_text()) == 1:
                found[t.get_text()] = ax
    return found


def picture(ax: matplotlib.axes.Axes) -> np.ndarray:
    images = ax.get_images()
    assert len(images) == 1, "expected one rendered picture in the panel"
    return np.asarray(images[0].get_array())


def figure_texts(fig: matplotlib.figure.Figure) -> list[str]:
    return [t.get_text() for t in fig.texts]


# ----------------------------------------------------------------------------- figures


def test_fig2_panel_a_is_the_fcc_cell_next_to_the_energy_profile(
    systems: dict, renderer: R.BackendChoice
) -> None:
    with style.paper_style():
        fig = figure_fig2(systems["fig2"], renderer=renderer)
    p = panels(fig)
    assert set(p) == {"a", "b", "c", "d"}
    img = picture(p["a"])
    assert img.shape[2] == 4 and min(img.shape[:2]) > 200
    assert R.any_pixel_near(img, R.element_colors([16])[0], 40.0)  # S
    assert R.any_pixel_near(img, (0.3, 0.3, 0.3), 30.0)  # tetrahedral sites
    legend = [t.get_text() for t in p["a"].get_legend().get_texts()]
    assert legend == ["S (FCC)", "tetrahedral site", "octahedral site"]
    energy = [ax for ax in fig.axes if ax.get_ylabel() == "energy (meV)"]
    assert len(energy) == 1 and len(energy[0].lines[0].get_xdata()) == 61
    matplotlib.pyplot.close(fig)


def test_fig3_has_all_of_the_papers_panels(systems: dict, renderer: R.BackendChoice) -> None:
    with style.paper_style():
        fig = figure_fig3(systems["fig3"], renderer=renderer)
    p = panels(fig)
    assert set(p) == set("abcdef")
    a, b = picture(p["a"]), picture(p["b"])
    # (a) Si and Au by element.
    for z in (14, 79):
        assert R.any_pixel_near(a, R.element_colors([z])[0], 40.0), z
    # (b) the states present in the slab, in their colours, and no Au.
    atoms = read_snapshot(systems["fig3"]["snapshot"])
    frac_y = atoms.get_scaled_positions(wrap=True)[:, 1]
    in_slab = (np.abs(frac_y - 0.5) <= 0.25) & (atoms.arrays["state"] >= 0)
    present = sorted(set(atoms.arrays["state"][in_slab].tolist()))
    assert len(present) >= 3
    for s in present:
        assert R.any_pixel_near(b, style.state_color(s), 40.0), s
    assert not R.any_pixel_near(b, R.element_colors([79])[0], 25.0)
    assert (renderer.backend == "ovito") != any("fallback" in t for t in figure_texts(fig))
    matplotlib.pyplot.close(fig)


def test_fig4_has_all_of_the_papers_panels(systems: dict, renderer: R.BackendChoice) -> None:
    with style.paper_style():
        fig = figure_fig4(systems["fig4"], renderer=renderer)
    p = panels(fig)
    assert set(p) == set("abcdef")
    a = picture(p["a"])
    for el in ("H", "Li", "C", "N", "O", "F", "S"):
        assert R.any_pixel_near(a, R.element_colors([synth.Z[el]])[0], 45.0), el
    b_axes = [ax for ax in fig.axes if ax.get_title().startswith("state ")]
    assert [ax.get_title() for ax in b_axes] == [f"state {i}" for i in range(4)]
    for i, ax in enumerate(b_axes):
        assert R.any_pixel_near(picture(ax), style.state_color(i), 40.0), i  # the Li
    matplotlib.pyplot.close(fig)


def test_fig4_writes_each_state_configuration_next_to_the_figure(
    systems: dict, tmp_path: Path
) -> None:
    import ase.io

    outs = [tmp_path / f"fig4_state{i}.extxyz" for i in range(4)]
    assert cli.main(["figure", "fig4", str(tmp_path / "fig4.pdf"), "--png",
                     str(tmp_path / "fig4.png"), "--dpi", "100", "--renderer", "matplotlib",
                     "--inputs", json.dumps(systems["fig4"]),
                     "--configurations", *map(str, outs)]) == 0
    check_png(tmp_path / "fig4.png")
    frames = ase.io.read(systems["fig4"]["representative"], index=":")
    for i, path in enumerate(outs):
        one = ase.io.read(path)
        assert one.info["state"] == i and one.info["frame"] == frames[i].info["frame"]
        np.testing.assert_allclose(one.positions, frames[i].positions)
        np.testing.assert_array_equal(one.arrays["shell"], frames[i].arrays["shell"])


def test_configurations_must_match_the_states(systems: dict, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = ["figure", "fig4", str(tmp_path / "f.pdf"), "--renderer", "matplotlib",
            "--inputs", json.dumps(systems["fig4"])]
    assert cli.main([*args, "--configurations", str(tmp_path / "only_one.extxyz")]) == 2
    assert "expected one configuration per output file (1), got 4 states" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # checked before anything is written
    args[1] = "fig3"
    args[-1] = json.dumps(systems["fig3"])
    assert cli.main([*args, "--configurations", str(tmp_path / "x.extxyz")]) == 2
    assert "only fig4" in capsys.readouterr().err


@pytest.mark.slow
def test_same_inputs_give_the_same_png(systems: dict, tmp_path: Path,
                                       renderer: R.BackendChoice) -> None:
    pngs = []
    for k in range(2):
        png = tmp_path / f"fig3-{k}.png"
        assert cli.main(["figure", "fig3", str(tmp_path / f"fig3-{k}.pdf"), "--png", str(png),
                         "--dpi", "100", "--renderer", renderer.backend,
                         "--inputs", json.dumps(systems["fig3"])]) == 0
        pngs.append(png.read_bytes())
    assert pngs[0] == pngs[1]


def test_the_figure_says_when_the_fallback_drew_the_pictures(
    systems: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_vulkan(scene: R.Scene, size: tuple[int, int]) -> np.ndarray:
        raise RuntimeError("Could not initialize the Vulkan graphics backend.\nmore")

    monkeypatch.setattr(R, "_render_ovito", no_vulkan)
    with style.paper_style():
        fig = figure_fig2(systems["fig2"])  # renderer "auto"
    assert figure_texts(fig)[-1] == (
        "Pictures drawn with the matplotlib fallback: OVITO unavailable (RuntimeError: Could "
        "not initialize the Vulkan graphics backend.).")
    matplotlib.pyplot.close(fig)
    with pytest.raises(R.RendererUnavailable, match="Vulkan"):
        plots.render_figure("fig2", systems["fig2"], "/nonexistent/f.pdf", renderer="ovito")


# ----------------------------------------------------------------------------- the rule


def _pieces(probs: list[np.ndarray]) -> list[Piece]:
    raw = synth.peo_frames(n_frames=probs[0].shape[0])
    sets = raw["target_index"][:, None]
    return [Piece(f"t{k}", Path(f"t{k}.npz"), raw["traj_coords"], raw["lattices"],
                  raw["atom_types"], sets, p, 10.0, 100 * k) for k, p in enumerate(probs)]


def test_representative_frame_rule_on_a_known_answer() -> None:
    """Background probabilities below 0.8 with planted maxima: state 0's is unique, state
    1's is tied between two pieces (the first wins), state 2's between two frames (the
    earliest wins), state 3's between two Li of one frame (the lowest index wins); NaN rows
    (unscored frames) carry 1.0 for state 0 and are never chosen."""
    rng = np.random.default_rng(0)
    n_frames, n_li, n_states = 10, 4, 4
    probs = [0.75 * rng.dirichlet(np.ones(n_states), (n_frames, n_li)) for _ in range(2)]
    probs[1][5, 2, 0] = 0.97
    probs[0][7, 3, 1] = probs[1][2, 0, 1] = 0.95
    probs[0][6, 1, 2] = probs[0][4, 1, 2] = 0.93
    probs[1][3, 3, 3] = probs[1][3, 1, 3] = 0.91
    probs[0][8] = np.nan
    probs[0][9, 0] = [np.nan, 0.0, 0.0, 0.0]
    probs[1][0, :, 0] = np.nan
    reps = representative_frames(_pieces(probs))
    got = [(r.state, r.piece, r.frame, r.target, round(r.probability, 6)) for r in reps]
    assert got == [(0, 1, 5, 2, 0.97), (1, 0, 7, 3, 0.95), (2, 0, 4, 1, 0.93),
                   (3, 1, 3, 1, 0.91)]
    # A nearly empty state still gets its most likely configuration, with its low p.
    for p in probs:
        p[..., 3] = np.minimum(p[..., 3], 0.2)
    probs[1][6, 0, 3] = 0.31
    assert representative_frames(_pieces(probs))[3] == Representative(3, 1, 6, 0, 0.31)
    probs[0][..., 2] = probs[1][..., 2] = np.nan
    with pytest.raises(InputError, match="state 2: no scored"):
        representative_frames(_pieces(probs))


def test_representative_cli_centres_the_li_and_its_shell_is_the_ase_neighbourhood(
    systems: dict,
) -> None:
    import ase.io

    frames = ase.io.read(systems["fig4"]["representative"], index=":")
    assert len(frames) == 4
    r_star = [4.0, 4.2, 4.4, 4.6]  # tp.write_structure's charge.csv
    raw = synth.peo_frames(n_frames=8, seed=1)  # peo-traj-c
    for i, atoms in enumerate(frames):
        info = atoms.info
        assert info["state"] == i and info["shell_radius_A"] == pytest.approx(r_star[i])
        assert "charge.csv" in info["shell_radius_from"]
        # Every Li is in its own state in every frame at p = 0.9, except Li 1 of
        # peo-traj-c at piece frame 2 (raw frame 5: offset 3), planted at 0.97 for state 3.
        if i == 3:
            assert (info["source"], info["frame"], info["target_set"]) == ("peo-traj-c", 5, 1)
            assert info["probability"] == pytest.approx(0.97, abs=1e-6)
            li = raw["target_index"][1]
            # The same frame as the raw trajectory, translated: distances are unchanged.
            d_raw = np.linalg.norm(raw["traj_coords"][5] - raw["traj_coords"][5, li], axis=1)
            shell_raw = set(np.flatnonzero(d_raw <= r_star[3]).tolist())
            assert shell_raw == set(np.flatnonzero(atoms.arrays["shell"]).tolist())
        else:
            assert (info["source"], info["frame"], info["target_set"]) == ("peo-traj-b", 3, i)
            assert info["probability"] == pytest.approx(0.9, abs=1e-6)
        target = np.flatnonzero(atoms.arrays["target"])
        assert target.tolist() == [raw["target_index"][info["target_set"]]]
        np.testing.assert_allclose(atoms.positions[target[0]], np.diag(atoms.cell) / 2, atol=1e-4)
        # The shell is the minimum-image neighbourhood, as ASE computes it.
        d = atoms.get_distances(target[0], range(len(atoms)), mic=True)
        np.testing.assert_array_equal(atoms.arrays["shell"], (d <= r_star[i]).astype(int))
        assert 1 < atoms.arrays["shell"].sum() < len(atoms)


def test_shell_radius_comes_from_config_then_charge_then_default(tmp_path: Path) -> None:
    tp.write_structure(tmp_path)
    charge = tmp_path / "charge.csv"
    assert shell_radii(4, {"representative": {"shell_radius_A": 2.5}}, charge) == (
        [2.5] * 4, "config structure/representative/shell_radius_A")
    radii, how = shell_radii(4, {}, charge)
    assert radii == pytest.approx([4.0, 4.2, 4.4, 4.6]) and "r* of charge.csv" in how
    assert shell_radii(2, {}, None) == ([DEFAULT_SHELL_RADIUS_A] * 2, "default")
    with pytest.raises(InputError, match="missing \\[4\\]"):
        shell_radii(5, {}, charge)
    with pytest.raises(InputError, match="shell_radius_A"):
        shell_radii(2, {"representative": {"shell_radius_A": -1}}, None)


def test_shell_members_brute_force_in_a_triclinic_cell() -> None:
    rng = np.random.default_rng(4)
    lattice = np.array([[9.0, 0, 0], [3.0, 8.0, 0], [1.0, 2.0, 10.0]])
    coords = rng.uniform(0, 1, (200, 3)) @ lattice
    centre = coords[0]
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    d = np.linalg.norm(coords[:, None] - centre - (shifts @ lattice)[None], axis=-1).min(axis=1)
    np.testing.assert_array_equal(shell_members(coords, lattice, centre, 3.5),
                                  np.flatnonzero(d <= 3.5))


# ----------------------------------------------------------------------------- wiring


def test_fig4_requests_the_snapshot_and_representative_and_writes_one_file_per_state() -> None:
    paper = gc.load_yaml(ROOT / "config/paper.yaml")["systems"]
    ins = plots.figure_input_paths("fig4", paper)
    assert ins["representative"] == "results/structure/peo/representative.extxyz"
    assert ins["snapshot"] == "results/structure/peo/snapshot.extxyz"
    assert plots.figure_input_paths("fig2", paper)["snapshot"] == (
        "results/structure/li2s/snapshot.extxyz")
    assert plots.figure_configuration_paths("fig4", paper) == [
        layout.figure_configuration("fig4", i) for i in range(4)]
    assert layout.figure_configuration("fig4", 2) == "results/figures/fig4_state2.extxyz"
    assert plots.figure_configuration_paths("fig3", paper) == []
    default = gc.load_yaml(ROOT / "config/config.yaml")["systems"]
    assert all(plots.figure_configuration_paths(n, default) == [] for n in layout.FIGURES)
    assert math.isclose(DEFAULT_SHELL_RADIUS_A, 3.0)
