"""Pictures of atoms for the figures: OVITO first, a matplotlib fallback when it cannot start.

A :class:`Scene` is plain arrays (sphere centres, colours and radii, bonds, a cell drawn as a
wireframe, the camera direction); :func:`render` turns it into an RGBA image array with

* ``"ovito"``: OVITO's Python module (``pip install 'gdyn[render]'``), its OpenGL renderer,
  headless. Even that software path needs a Vulkan loader and driver (Debian:
  ``apt-get install libvulkan1 mesa-vulkan-drivers``); without them OVITO raises "Could
  not initialize the Vulkan graphics backend".
* ``"matplotlib"``: an orthographic painter's-algorithm drawing (discs sorted by depth) on a
  bare Agg canvas, always available.

``backend="auto"`` (:func:`resolve_backend`) tries OVITO on a one-atom probe and falls back
with the reason, which the figures print under their pictures. Both paths are deterministic:
the same scene gives the same pixels.

OVITO renders what is in its one global scene (``ovito.scene``), so :func:`render` empties
it for the duration of a call and puts back whatever was there (a notebook's pipelines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Backend = Literal["auto", "ovito", "matplotlib"]
BACKENDS: tuple[str, ...] = ("auto", "ovito", "matplotlib")
# Pixel size of the pictures (width, height); the figures scale them into their panels.
DEFAULT_SIZE = (900, 700)
BACKGROUND = (1.0, 1.0, 1.0)


class RendererUnavailable(RuntimeError):
    """The requested renderer cannot start on this machine (OVITO missing, no Vulkan)."""


@dataclass(frozen=True)
class Scene:
    """What a picture shows: spheres, bonds and a cell box seen along ``view_dir``.

    Attributes
    ----------
    positions : ndarray (N, 3)
        Sphere centres (Angstrom).
    colors : ndarray (N, 3)
        RGB in [0, 1].
    radii : ndarray (N,)
        Sphere radii (Angstrom).
    bonds : ndarray (B, 2)
        Index pairs drawn as cylinders (OVITO) or lines (fallback).
    bond_color : tuple
        RGB of every bond.
    bond_width_A : float
        Bond diameter (Angstrom).
    cell : ndarray (3, 3) or None
        Rows are the edge vectors of a parallelepiped drawn as a wireframe from ``origin``.
    origin : ndarray (3,)
        Corner of the cell box.
    view_dir : tuple
        Direction the camera looks along (orthographic projection).
    up : tuple
        Direction that points up in the picture (projected onto the image plane).
    """

    positions: np.ndarray
    colors: np.ndarray
    radii: np.ndarray
    bonds: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    bond_color: tuple[float, float, float] = (0.55, 0.55, 0.55)
    bond_width_A: float = 0.25
    cell: np.ndarray | None = None
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    view_dir: tuple[float, float, float] = (0.0, 1.0, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        n = pos.shape[0]
        colors = np.asarray(self.colors, dtype=np.float64)
        radii = np.asarray(self.radii, dtype=np.float64)
        bonds = np.asarray(self.bonds, dtype=np.int64).reshape(-1, 2)
        if colors.shape != (n, 3) or radii.shape != (n,):
            raise ValueError(f"Scene: expected colors ({n}, 3) and radii ({n},), "
                             f"got {colors.shape} and {radii.shape}")
        if bonds.size and (bonds.min() < 0 or bonds.max() >= n):
            raise ValueError(f"Scene: bond indices must lie in [0, {n}), got "
                             f"[{bonds.min()}, {bonds.max()}]")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "colors", np.clip(colors, 0.0, 1.0))
        object.__setattr__(self, "radii", radii)
        object.__setattr__(self, "bonds", bonds)
        if self.cell is not None:
            object.__setattr__(self, "cell", np.asarray(self.cell, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "origin", np.asarray(self.origin, dtype=np.float64).reshape(3))


@dataclass(frozen=True)
class Rendering:
    """A rendered picture: ``image`` (height, width, 4) uint8 RGBA, the ``backend`` that drew
    it (``"ovito"`` or ``"matplotlib"``) and ``note``, why the fallback was used ("" if not)."""

    image: np.ndarray
    backend: str
    note: str = ""


@dataclass(frozen=True)
class BackendChoice:
    """The backend a figure uses for all its pictures and, for the fallback, why."""

    backend: str
    note: str = ""

    def render(self, scene: Scene, size: tuple[int, int] = DEFAULT_SIZE) -> Rendering:
        """:func:`render` with this backend; the result carries the fallback note."""
        out = render(scene, size, self.backend)
        return Rendering(out.image, out.backend, self.note)


# --------------------------------------------------------------------------------------
# Choosing the backend


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def resolve_backend(backend: str = "auto") -> BackendChoice:
    """The backend to draw with: ``"ovito"`` if asked or if OVITO renders a one-atom probe
    here (``"auto"``), else ``"matplotlib"`` with the reason OVITO could not be used.

    ``"ovito"`` raises :class:`RendererUnavailable` (with OVITO's message) when it cannot
    start.
    """
    if backend not in BACKENDS:
        raise ValueError(f"renderer: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "matplotlib":
        return BackendChoice("matplotlib", "")
    probe = Scene(np.zeros((1, 3)), np.ones((1, 3)) * 0.5, np.ones(1))
    try:
        _render_ovito(probe, (16, 16))
    except Exception as exc:  # ImportError (no ovito), RuntimeError (no Vulkan), ...
        why = (f"not installed: pip install 'gdyn[render]'; {_first_line(exc)}"
               if isinstance(exc, ImportError) else _first_line(exc))
        if backend == "ovito":
            raise RendererUnavailable(f"renderer 'ovito' cannot start here ({why})") from exc
        return BackendChoice("matplotlib", f"OVITO unavailable ({why})")
    return BackendChoice("ovito", "")


def render(scene: Scene, size: tuple[int, int] = DEFAULT_SIZE, backend: str = "auto") -> Rendering:
    """Draw ``scene`` as a (height, width, 4) RGBA uint8 image of ``size`` = (width, height).

    ``backend``: ``"ovito"``, ``"matplotlib"`` or ``"auto"`` (OVITO if it starts, else the
    fallback; :func:`resolve_backend`). Same scene, same backend: same pixels.
    """
    width, height = (int(v) for v in size)
    if width < 8 or height < 8:
        raise ValueError(f"render: expected a size of at least 8 x 8 pixels, got {size}")
    choice = resolve_backend(backend) if backend == "auto" else BackendChoice(backend)
    if choice.backend == "ovito":
        image = _render_ovito(scene, (width, height))
    elif choice.backend == "matplotlib":
        image = _render_matplotlib(scene, (width, height))
    else:
        raise ValueError(f"renderer: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return Rendering(image, choice.backend, choice.note)


# --------------------------------------------------------------------------------------
# OVITO


def _render_ovito(scene: Scene, size: tuple[int, int]) -> np.ndarray:
    """OVITO's OpenGL renderer (offscreen, Vulkan) into an RGBA array."""
    import ovito
    from ovito.data import DataCollection
    from ovito.pipeline import Pipeline, StaticSource
    from ovito.vis import OpenGLRenderer, Viewport
    from PySide6.QtGui import QImage

    data = DataCollection()
    n = scene.positions.shape[0]
    if scene.cell is not None:
        cell = data.create_cell(np.column_stack([scene.cell.T, scene.origin]), pbc=(False,) * 3)
        cell.vis.line_width = 0.008 * float(np.linalg.norm(scene.cell, axis=1).max())
        cell.vis.rendering_color = (0.25, 0.25, 0.25)
    particles = data.create_particles(count=n)
    particles.create_property("Position", data=scene.positions)
    particles.create_property("Color", data=scene.colors)
    particles.create_property("Radius", data=scene.radii)
    if scene.bonds.shape[0]:
        bonds = particles.create_bonds(count=scene.bonds.shape[0])
        bonds.create_property("Topology", data=scene.bonds)
        bonds.create_property("Color", data=np.tile(scene.bond_color, (scene.bonds.shape[0], 1)))
        bonds.vis.width = scene.bond_width_A
    pipeline = Pipeline(source=StaticSource(data=data))
    # OVITO renders its one global scene: render ours alone, then put back what was there.
    others = list(ovito.scene.pipelines)
    for p in others:
        p.remove_from_scene()
    pipeline.add_to_scene()
    try:
        right, up, depth = _camera(scene)
        centre, half_h = _framing(scene, size)
        far = float(np.abs(scene.positions @ depth).max(initial=0.0)) + 10.0 * half_h
        eye = centre[0] * right + centre[1] * up - far * depth
        vp = Viewport(type=Viewport.Type.Ortho, camera_dir=tuple(depth), camera_up=tuple(up),
                      camera_pos=tuple(eye), fov=half_h)
        qimage = vp.render_image(size=size, background=BACKGROUND, alpha=False,
                                 renderer=OpenGLRenderer())
    finally:
        pipeline.remove_from_scene()
        for p in others:
            p.add_to_scene()
    qimage = qimage.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = qimage.width(), qimage.height()
    raw = np.frombuffer(qimage.constBits(), dtype=np.uint8, count=h * qimage.bytesPerLine())
    return raw.reshape(h, qimage.bytesPerLine())[:, : 4 * w].reshape(h, w, 4).copy()


# --------------------------------------------------------------------------------------
# matplotlib fallback


def _camera(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (right, up, depth) of the orthographic camera."""
    d = np.asarray(scene.view_dir, dtype=float)
    d = d / np.linalg.norm(d)
    up = np.asarray(scene.up, dtype=float)
    up = up - up.dot(d) * d
    if np.linalg.norm(up) < 1e-9:  # up along the view: any perpendicular will do
        up = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    up = up / np.linalg.norm(up)
    return np.cross(d, up), up, d


def _cell_edges(cell: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """The 12 edges (12, 2, 3) of the parallelepiped spanned by ``cell``'s rows."""
    edges = []
    for axis in range(3):
        a, b = (k for k in range(3) if k != axis)
        for u in (0.0, 1.0):
            for v in (0.0, 1.0):
                start = origin + u * cell[a] + v * cell[b]
                edges.append([start, start + cell[axis]])
    return np.asarray(edges)


def _framing(scene: Scene, size: tuple[int, int], margin: float = 0.04) -> tuple[np.ndarray, float]:
    """Centre (2,) in camera coordinates and half-height (Angstrom) of the view that shows
    every sphere and cell edge with a ``margin`` (fraction) around them: both backends
    frame a scene identically."""
    width, height = size
    right, up, _ = _camera(scene)
    xy = np.column_stack([scene.positions @ right, scene.positions @ up])
    lo = (xy - scene.radii[:, None]).min(axis=0) if len(xy) else np.zeros(2)
    hi = (xy + scene.radii[:, None]).max(axis=0) if len(xy) else np.ones(2)
    if scene.cell is not None:
        edges = _cell_edges(scene.cell, scene.origin).reshape(-1, 3)
        exy = np.column_stack([edges @ right, edges @ up])
        lo, hi = np.minimum(lo, exy.min(axis=0)), np.maximum(hi, exy.max(axis=0))
    half = 0.5 * (hi - lo) * (1.0 + 2.0 * margin) + 1e-6
    return 0.5 * (lo + hi), float(max(half[1], half[0] * height / width))


def fit_size(scene: Scene, long_side: int = 900) -> tuple[int, int]:
    """(width, height) in pixels with the aspect of the scene's framed view, the longer side
    ``long_side``: the picture fills its panel without wide margins."""
    right, up, _ = _camera(scene)
    xy = np.column_stack([scene.positions @ right, scene.positions @ up])
    pts = [xy - scene.radii[:, None], xy + scene.radii[:, None]]
    if scene.cell is not None:
        edges = _cell_edges(scene.cell, scene.origin).reshape(-1, 3)
        pts.append(np.column_stack([edges @ right, edges @ up]))
    ext = np.ptp(np.vstack(pts), axis=0) + 1e-6
    aspect = float(np.clip(ext[0] / ext[1], 0.2, 5.0))  # width / height
    if aspect >= 1.0:
        return long_side, max(8, round(long_side / aspect))
    return max(8, round(long_side * aspect)), long_side


def _render_matplotlib(scene: Scene, size: tuple[int, int]) -> np.ndarray:
    """Discs sorted back to front, bonds under them, on a bare Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    width, height = size
    right, up, depth = _camera(scene)
    xy = np.column_stack([scene.positions @ right, scene.positions @ up])
    z = scene.positions @ depth
    fig = Figure(figsize=(width / 100.0, height / 100.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.set_facecolor(BACKGROUND)
    fig.patch.set_facecolor(BACKGROUND)
    if scene.cell is not None:
        edges = _cell_edges(scene.cell, scene.origin)
        exy = np.stack([edges @ right, edges @ up], axis=-1)
        ax.add_collection(LineCollection(exy, colors=[(0.25, 0.25, 0.25)], linewidths=0.8,
                                         zorder=0))
    centre, half_h = _framing(scene, size)
    half_w = half_h * width / height
    px_per_A = height / (2.0 * half_h)
    if scene.bonds.shape[0]:
        lw = max(0.5, scene.bond_width_A * px_per_A * 0.72)  # points at 100 dpi
        ax.add_collection(LineCollection(xy[scene.bonds], colors=[scene.bond_color],
                                         linewidths=lw, zorder=1))
    order = np.argsort(-z, kind="stable")  # far first
    shade = 0.6 * scene.colors  # darker rim: spheres read as spheres
    discs = [Circle(tuple(xy[i]), scene.radii[i]) for i in order]
    ax.add_collection(PatchCollection(discs, facecolors=scene.colors[order],
                                      edgecolors=shade[order], linewidths=0.6, zorder=2))
    ax.set_xlim(centre[0] - half_w, centre[0] + half_w)
    ax.set_ylim(centre[1] - half_h, centre[1] + half_h)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba(), dtype=np.uint8).copy()


# --------------------------------------------------------------------------------------
# Helpers shared by the picture panels


def element_colors(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """(N, 3) RGB of each element (ASE's Jmol colours), the same for both backends."""
    from ase.data.colors import jmol_colors

    return np.asarray(jmol_colors, dtype=float)[np.asarray(numbers, dtype=np.int64)]


def element_radii(numbers: Sequence[int] | np.ndarray, scale: float = 0.6) -> np.ndarray:
    """(N,) display radii: ``scale`` x the covalent radius (ASE) of each element."""
    from ase.data import covalent_radii

    return scale * np.asarray(covalent_radii, dtype=float)[np.asarray(numbers, dtype=np.int64)]


def covalent_bonds(numbers: np.ndarray, positions: np.ndarray, tolerance: float = 1.2,
                   exclude: Sequence[int] = ()) -> np.ndarray:
    """(B, 2) pairs closer than ``tolerance`` x the sum of their covalent radii (no periodic
    images: pairs across the cell boundary are not bonded in a picture of the box).

    Atoms whose atomic number is in ``exclude`` (ions such as Li) get no bonds.
    """
    from ase.data import covalent_radii
    from scipy.spatial import cKDTree

    numbers = np.asarray(numbers, dtype=np.int64)
    pos = np.asarray(positions, dtype=float)
    rc = np.asarray(covalent_radii, dtype=float)[numbers]
    if pos.shape[0] < 2:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = cKDTree(pos).query_pairs(r=2.0 * tolerance * float(rc.max()), output_type="ndarray")
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    keep = d < tolerance * (rc[pairs[:, 0]] + rc[pairs[:, 1]])
    if len(exclude):
        keep &= ~np.isin(numbers[pairs], list(exclude)).any(axis=1)
    out = pairs[keep].astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def hex_rgb(color: str) -> tuple[float, float, float]:
    """A matplotlib colour string as an RGB triple in [0, 1]."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return (float(r), float(g), float(b))


def state_mix_colors(probs: np.ndarray, state_colors: Sequence[str]) -> np.ndarray:
    """(N, 3) probability-weighted mix of the state colours (NaN rows grey)."""
    rgb = np.array([hex_rgb(c) for c in state_colors])
    p = np.asarray(probs, dtype=float)
    ok = np.isfinite(p).all(axis=1)
    w = np.clip(np.nan_to_num(p, nan=0.0), 0.0, None)
    mix = w @ rgb / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    mix[~ok] = 0.75
    return np.clip(mix, 0.0, 1.0)


def describe(choice: BackendChoice | Rendering) -> str:
    """One line for a figure: which renderer drew its pictures (and why the fallback)."""
    if choice.backend == "ovito":
        return "Pictures rendered with OVITO."
    reason = f": {choice.note}" if choice.note else " (requested)"
    return f"Pictures drawn with the matplotlib fallback{reason}."


def image_colors(image: np.ndarray) -> np.ndarray:
    """(K, 3) the distinct RGB colours of an image (for tests and checks)."""
    rgb = np.asarray(image)[..., :3].reshape(-1, 3).astype(np.int32)
    keys = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])
    return np.column_stack([keys >> 16, (keys >> 8) & 255, keys & 255]).astype(np.uint8)


def any_pixel_near(image: np.ndarray, color: Any, tolerance: float = 40.0) -> bool:
    """Whether some pixel of ``image`` lies within ``tolerance`` (RGB, 0-255) of ``color``."""
    target = np.asarray(hex_rgb(color) if isinstance(color, str) else color, dtype=float) * 255.0
    colors = image_colors(image).astype(float)
    return bool((np.linalg.norm(colors - target, axis=1) <= tolerance).any())
