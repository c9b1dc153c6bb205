"""Pictures of atoms (gdyn.plots.render, gdyn.plots.panels_atoms): both renderers, the
fallback, and the geometry the pictures are built from.

OVITO is checked against the matplotlib fallback (an independent projection) and both
against analytic positions; where OVITO cannot start here its tests skip, unless
``GDYN_REQUIRE_OVITO=1`` (CI installs OVITO and a Vulkan driver) turns the skip into a
failure.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from gdyn.plots import render as R
from gdyn.plots import style
from gdyn.plots.panels_atoms import fcc_cell_scene, find_fcc


def _ovito_or_skip() -> None:
    try:
        R.resolve_backend("ovito")
    except R.RendererUnavailable as exc:
        if os.environ.get("GDYN_REQUIRE_OVITO") == "1":
            pytest.fail(f"GDYN_REQUIRE_OVITO=1 but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(params=["ovito", "matplotlib"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ovito":
        _ovito_or_skip()
    return request.param


def _state_scene() -> R.Scene:
    """Four well separated spheres per state colour in a box, seen obliquely."""
    rng = np.random.default_rng(0)
    grid = np.array([[i, j, k] for i in range(4) for j in range(2) for k in range(2)], float)
    pos = grid * 3.0 + rng.normal(0, 0.1, grid.shape)
    states = np.arange(len(pos)) % 4
    colors = np.array([R.hex_rgb(style.state_color(s)) for s in states])
    return R.Scene(pos, colors, np.full(len(pos), 0.9), cell=np.diag([12.0, 6.0, 6.0]),
                   origin=np.full(3, -1.5), view_dir=(-1.0, -0.7, -0.45))


def test_rendered_panel_has_size_content_and_state_colours(backend: str) -> None:
    out = R.render(_state_scene(), (320, 240), backend)
    assert out.backend == backend and out.note == ""
    assert out.image.shape == (240, 320, 4) and out.image.dtype == np.uint8
    rgb = out.image[..., :3].astype(float)
    background = (rgb > 250).all(axis=-1)
    assert background[0, 0] and background[-1, -1]  # white corners
    assert 0.05 < (~background).mean() < 0.9  # drawn, not a blank or flooded canvas
    assert rgb.std() > 20.0
    for s in range(4):
        assert R.any_pixel_near(out.image, style.state_color(s), 40.0), f"state {s} colour"
    # A colour that is in no state is not there.
    assert not R.any_pixel_near(out.image, "#ff00ff", 40.0)


def test_render_is_deterministic(backend: str) -> None:
    a = R.render(_state_scene(), (200, 150), backend).image
    b = R.render(_state_scene(), (200, 150), backend).image
    assert a.tobytes() == b.tobytes()


def _centroid(image: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    rgb = image[..., :3].astype(float)
    mask = np.linalg.norm(rgb - np.asarray(color) * 255.0, axis=-1) < 60.0
    assert mask.any(), f"no pixel of colour {color}"
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


def _blob_centroids(image: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(K, 2) centroid (column, row) of the non-white pixels whose chromaticity (rgb / sum,
    unchanged by shading) is that of colour k (anti-aliased edges and grey lines drop out)."""
    rgb = image[..., :3].reshape(-1, 3).astype(float)
    drawn = rgb.sum(axis=1) < 740
    chroma = rgb / np.maximum(rgb.sum(axis=1, keepdims=True), 1.0)
    refs = colors / colors.sum(axis=1, keepdims=True)
    rows, cols = np.divmod(np.arange(rgb.shape[0]), image.shape[1])
    out = []
    for k in range(len(colors)):
        m = drawn & (np.linalg.norm(chroma - refs[k], axis=1) < 0.05)
        assert m.sum() > 20, f"colour {k}: {m.sum()} pixels"
        out.append([cols[m].mean(), rows[m].mean()])
    return np.asarray(out)


def test_projection_and_depth_order_agree_with_geometry(backend: str) -> None:
    """Seen along +y with z up, x points right: a red sphere at x = -4 is left of a blue
    one at x = +4 and a green one at z = +4 is above both; a yellow sphere 5 A nearer the
    camera (y = -5) hides a grey one at the same x, z. Sizes follow from the framing:
    spheres of radius 1 at x = +-4 span 10 A across 400 px (with the 4 % margin)."""
    red, blue, green = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9), (0.1, 0.7, 0.2)
    yellow, grey = (0.95, 0.85, 0.1), (0.5, 0.5, 0.5)
    pos = np.array([[-4.0, 0, 0], [4.0, 0, 0], [0, 0, 4.0], [0, -5.0, -4.0], [0, 0, -4.0]])
    scene = R.Scene(pos, np.array([red, blue, green, yellow, grey]), np.ones(5),
                    view_dir=(0.0, 1.0, 0.0), up=(0.0, 0.0, 1.0))
    img = R.render(scene, (400, 400), backend).image
    c_red, c_blue, c_green = _centroid(img, red), _centroid(img, blue), _centroid(img, green)
    assert c_red[0] < 200 < c_blue[0]
    assert c_green[1] < c_red[1] and c_green[1] < c_blue[1]  # image rows grow downwards
    # 10 A (plus margins) over 400 px: the sphere centres are 8 A apart.
    px_per_A = 400 / (10.0 * 1.08)
    assert c_blue[0] - c_red[0] == pytest.approx(8.0 * px_per_A, abs=4.0)
    # Front sphere wins at the shared centre: the pixel there is yellow, not grey.
    centre = np.round(_centroid(img, yellow)).astype(int)
    assert np.linalg.norm(img[centre[1], centre[0], :3] - np.array(yellow) * 255) < 60.0
    assert not R.any_pixel_near(img, grey, 12.0)


def test_ovito_and_fallback_frame_a_scene_alike() -> None:
    """Both renderers put each sphere at the same place (within a third of its radius; OVITO
    shades the spheres, which moves the centroid of its base-colour pixels a little)."""
    _ovito_or_skip()
    rng = np.random.default_rng(5)
    pos = rng.uniform(-8, 8, (4, 3))
    pos[:, :2] = [[-8, -8], [8, -8], [-8, 8], [8, 8]]  # apart in the picture (view along z)
    colors = np.array([R.hex_rgb(style.state_color(s)) for s in range(4)])
    scene = R.Scene(pos, colors, np.full(4, 1.5), cell=np.eye(3) * 20, origin=np.full(3, -10),
                    view_dir=(0.0, 0.0, -1.0), up=(0.0, 1.0, 0.0))
    a = _blob_centroids(R.render(scene, (300, 300), "ovito").image, colors)
    b = _blob_centroids(R.render(scene, (300, 300), "matplotlib").image, colors)
    r_px = 1.5 * 300 / (20 * 1.08)
    expect = np.array([[-8, 8], [8, 8], [-8, -8], [8, -8]]) * 300 / (20 * 1.08) + 150
    np.testing.assert_allclose(b, expect, atol=1.0)  # fallback: flat discs, exact
    np.testing.assert_allclose(a, expect, atol=r_px / 4)


# ----------------------------------------------------------------------------- fallback


def test_auto_falls_back_when_ovito_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ovito", None)  # import ovito -> ImportError
    choice = R.resolve_backend("auto")
    assert choice.backend == "matplotlib"
    assert choice.note.startswith("OVITO unavailable (not installed: pip install 'gdyn[render]'")
    out = choice.render(_state_scene(), (120, 90))
    assert out.backend == "matplotlib" and out.note == choice.note
    assert "matplotlib fallback" in R.describe(out) and "OVITO unavailable" in R.describe(out)
    with pytest.raises(R.RendererUnavailable, match="ovito"):
        R.resolve_backend("ovito")


def test_auto_falls_back_when_vulkan_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    message = ("Could not initialize the Vulkan graphics backend. The Vulkan loader library "
               "(libvulkan.so.1) is not installed on this system.\n  Debian/Ubuntu: ...")

    def no_vulkan(scene: R.Scene, size: tuple[int, int]) -> np.ndarray:
        raise RuntimeError(message)

    monkeypatch.setattr(R, "_render_ovito", no_vulkan)
    choice = R.resolve_backend("auto")
    assert choice == R.BackendChoice(
        "matplotlib", "OVITO unavailable (RuntimeError: Could not initialize the Vulkan "
        "graphics backend. The Vulkan loader library (libvulkan.so.1) is not installed on "
        "this system.)")
    assert R.render(_state_scene(), (64, 48), "auto").backend == "matplotlib"
    assert R.describe(R.resolve_backend("matplotlib")) == (
        "Pictures drawn with the matplotlib fallback (requested).")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="renderer"):
        R.resolve_backend("povray")
    with pytest.raises(ValueError, match="8 x 8"):
        R.render(_state_scene(), (4, 4), "matplotlib")
    with pytest.raises(ValueError, match="colors"):
        R.Scene(np.zeros((3, 3)), np.zeros((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="bond"):
        R.Scene(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(2), bonds=np.array([[0, 2]]))


def test_fit_size_follows_the_scene_aspect() -> None:
    tall = R.Scene(np.array([[0, 0, 0], [0, 0, 8.0]]), np.ones((2, 3)), np.full(2, 2.0))
    assert R.fit_size(tall, 900) == (300, 900)  # 4 A wide, 12 A tall (view along y)
    wide = R.Scene(np.array([[0, 0, 0], [8.0, 0, 0]]), np.ones((2, 3)), np.full(2, 2.0))
    assert R.fit_size(wide, 600) == (600, 200)
    needle = R.Scene(np.array([[0, 0, 0], [0, 0, 100.0]]), np.ones((2, 3)), np.ones(2))
    assert R.fit_size(needle, 900) == (180, 900)  # aspect limited to 1:5


# ----------------------------------------------------------------------------- geometry


def _fcc(n: int, a: float) -> np.ndarray:
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cells = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)])
    return ((cells[:, None] + basis[None]).reshape(-1, 3)) * a


@pytest.mark.parametrize("n", [1, 2])
def test_fcc_lattice_is_found_and_its_sites_have_the_right_neighbours(n: int) -> None:
    from ase import Atoms

    a = 6.5
    rng = np.random.default_rng(n)
    host = _fcc(n, a) + np.array([0.3, -0.2, 0.1]) + rng.normal(0, 0.02, (4 * n**3, 3))
    fcc = find_fcc(host, np.eye(3) * n * a)
    assert fcc is not None and fcc.a == pytest.approx(a)
    atoms = Atoms(numbers=[3] + [16] * len(host), positions=np.vstack([[1.0, 1, 1], host]),
                  cell=np.eye(3) * n * a, pbc=True)
    # n = 2: the Li's frame is unscored (state -1 too): the host is still the S lattice.
    atoms.new_array("state", np.r_[0 if n == 1 else -1, np.full(len(host), -1)])
    scene, sites = fcc_cell_scene(atoms)
    assert sites
    # One cube: 14 S (8 corners + 6 faces), 13 octahedral and 8 tetrahedral sites.
    n_s, n_o = 14, 13
    assert scene.positions.shape[0] == n_s + n_o + 8
    bonds = scene.bonds
    lengths = np.linalg.norm(scene.positions[bonds[:, 0]] - scene.positions[bonds[:, 1]], axis=1)
    tet = bonds[:, 0] >= n_s + n_o
    assert tet.sum() == 4 and (~tet).sum() == 6
    np.testing.assert_allclose(lengths[tet], a * np.sqrt(3) / 4, rtol=1e-9)  # 2.815 A
    np.testing.assert_allclose(lengths[~tet], a / 2, rtol=1e-9)  # 3.25 A
    # Every S of the cube is a lattice point: all pairwise distances are multiples of a/sqrt(2)
    s = scene.positions[:n_s]
    d = np.linalg.norm(s[:, None] - s[None], axis=-1)[np.triu_indices(n_s, 1)]
    assert d.min() == pytest.approx(a / np.sqrt(2))


def test_non_fcc_hosts_are_rejected() -> None:
    a = 6.5
    bcc = np.array([[0, 0, 0], [0.5, 0.5, 0.5]]) * a
    assert find_fcc(np.vstack([bcc, bcc + np.array([0.0, 0.0, a / 4])]), np.eye(3) * a) is None
    assert find_fcc(np.random.default_rng(0).uniform(0, a, (4, 3)), np.eye(3) * a) is None
    assert find_fcc(_fcc(1, a), np.diag([a, a, 1.2 * a])) is None  # not cubic
    assert find_fcc(_fcc(1, a)[:3], np.eye(3) * a) is None  # not 4 n^3 atoms


def test_covalent_bonds_match_brute_force() -> None:
    from ase.data import covalent_radii

    rng = np.random.default_rng(3)
    numbers = rng.choice([1, 3, 6, 8, 9], 120)
    pos = rng.uniform(0, 12, (120, 3))
    got = R.covalent_bonds(numbers, pos, tolerance=1.2, exclude=[3])
    want = [(i, j) for i in range(120) for j in range(i + 1, 120)
            if np.linalg.norm(pos[i] - pos[j])
            < 1.2 * (covalent_radii[numbers[i]] + covalent_radii[numbers[j]])
            and 3 not in (numbers[i], numbers[j])]
    assert [tuple(b) for b in got.tolist()] == want
    assert len(want) > 10


def test_state_mix_colours() -> None:
    colors = ["#0072B2", "#E69F00"]
    mix = R.state_mix_colors(np.array([[1.0, 0.0], [0.5, 0.5], [np.nan, np.nan]]), colors)
    np.testing.assert_allclose(mix[0], R.hex_rgb(colors[0]))
    np.testing.assert_allclose(mix[1], 0.5 * (np.array(R.hex_rgb(colors[0]))
                                              + np.array(R.hex_rgb(colors[1]))))
    np.testing.assert_allclose(mix[2], 0.75)
