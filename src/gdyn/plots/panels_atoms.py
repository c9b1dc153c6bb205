"""Pictures of atoms: the FCC cell with its sites (Fig. 2a), a whole cell by element
(Figs. 3a, 4a), a cross-section coloured by state (Fig. 3b) and each state's representative
configuration (Fig. 4b).

Each picture is a :class:`gdyn.plots.render.Scene` built from an ``ase.Atoms`` frame (the
snapshot, or a representative configuration), rendered by :mod:`gdyn.plots.render` (OVITO,
or the matplotlib fallback) and placed in a matplotlib axes with its legend. Atoms are
coloured by element (ASE's Jmol colours) or by learned state (the figures' state colours,
mixed by probability), so both renderers draw the same colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.plots import style
from gdyn.plots.render import (
    BackendChoice,
    Rendering,
    Scene,
    covalent_bonds,
    element_colors,
    element_radii,
    fit_size,
    hex_rgb,
    state_mix_colors,
)
from gdyn.toy import OCT_SITES, TET_SITES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Camera directions: an oblique view of a cell, and the side view of a slab along y.
OBLIQUE = (-1.0, -0.7, -0.45)
SIDE = (0.0, 1.0, 0.0)
TET_COLOR = (0.30, 0.30, 0.30)
OCT_COLOR = (0.72, 0.72, 0.72)
OTHER_COLOR = (0.75, 0.75, 0.75)  # non-target atoms of a target element (Fig. 3b)
LONG_SIDE = 900  # pixels along the longer side of a picture


# --------------------------------------------------------------------------------------
# Geometry


def wrapped_positions(atoms: Any) -> np.ndarray:
    """Positions folded into the cell (trajectories may store unwrapped coordinates)."""
    cell = np.asarray(atoms.cell.array, dtype=float)
    pos = np.asarray(atoms.positions, dtype=float)
    if np.linalg.matrix_rank(cell) < 3:
        return pos
    frac = np.linalg.solve(cell.T, pos.T).T
    return (frac - np.floor(frac)) @ cell


@dataclass(frozen=True)
class FccCell:
    """A cubic FCC host lattice found in a frame: conventional lattice constant ``a``, the
    position of one host atom (``origin``) and the cube's unit axes (rows)."""

    a: float
    origin: np.ndarray
    axes: np.ndarray


def find_fcc(host_positions: np.ndarray, cell: np.ndarray, tol: float = 0.1) -> FccCell | None:
    """The FCC lattice of the host atoms of a cubic cell of n x n x n conventional cells
    (4 n^3 atoms, each within ``tol`` x a of an ideal FCC position); None if they are not one.
    """
    cell = np.asarray(cell, dtype=float)
    pos = np.asarray(host_positions, dtype=float)
    lengths = np.linalg.norm(cell, axis=1)
    if pos.shape[0] < 4 or not np.all(lengths > 0):
        return None
    gram = cell @ cell.T
    if np.abs(gram - np.diag(np.diag(gram))).max() > 1e-3 * lengths.max() ** 2:
        return None
    if np.ptp(lengths) > 1e-3 * lengths.max():
        return None
    n = round((pos.shape[0] / 4.0) ** (1.0 / 3.0))
    if n < 1 or 4 * n**3 != pos.shape[0]:
        return None
    a = float(lengths[0]) / n
    axes = cell / lengths[:, None]
    half = 2.0 * ((pos - pos[0]) @ axes.T) / a  # in units of a/2
    nearest = np.round(half)
    if np.abs(half - nearest).max() > 2.0 * tol:
        return None
    if np.any(nearest.astype(np.int64).sum(axis=1) % 2):  # FCC: even sums of half-units
        return None
    return FccCell(a, pos[0].copy(), axes)


def _cube_points(half_units: np.ndarray) -> np.ndarray:
    """Lattice points (in units of a/2) of one conventional cube, boundary images included."""
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[np.isin(grid.sum(axis=1) % 2, half_units)]


def host_element(atoms: Any) -> int:
    """The most common element of the non-target atoms (``state`` < 0), the lattice of the
    toy; ties to the lower atomic number. (A target whose frame is unscored also has state
    -1, so the element, not the flag, picks the host.)"""
    state = np.asarray(atoms.arrays.get("state", np.full(len(atoms), -1)))
    numbers = np.asarray(atoms.numbers)
    pool = numbers[state < 0] if (state < 0).any() else numbers
    values, counts = np.unique(pool, return_counts=True)
    return int(values[np.argmax(counts)])


def fcc_cell_scene(atoms: Any, view_dir: Sequence[float] = OBLIQUE) -> tuple[Scene, bool]:
    """Fig. 2a: one conventional FCC cube of the host (non-target) atoms with its 8
    tetrahedral and 13 octahedral sites (boundary images included), the 4 host atoms around
    the tetrahedral site nearest the camera and the 6 around the body-centre octahedral site
    joined to it. Returns (scene, sites drawn); when the host is not a cubic FCC lattice
    the scene is the frame's atoms by element and no sites are drawn.
    """
    numbers = np.asarray(atoms.numbers)
    z_host = host_element(atoms)
    cell = np.asarray(atoms.cell.array, dtype=float)
    fcc = find_fcc(np.asarray(atoms.positions)[numbers == z_host], cell)
    if fcc is None:
        return element_scene(atoms, view_dir=view_dir), False
    to_xyz = (fcc.a / 2.0) * fcc.axes  # half-unit lattice steps as rows
    s_pos = _cube_points([0]) @ to_xyz
    o_pos = _cube_points([1]) @ to_xyz
    t_pos = (TET_SITES * 2.0) @ to_xyz
    d = np.asarray(view_dir, dtype=float) / np.linalg.norm(view_dir)
    tet = int(np.argmin(t_pos @ d))  # nearest the camera
    octa = int(np.argmin(np.linalg.norm(o_pos - (OCT_SITES[0] * 2.0) @ to_xyz, axis=1)))
    n_s, n_o = len(s_pos), len(o_pos)
    near_t = np.argsort(np.linalg.norm(s_pos - t_pos[tet], axis=1), kind="stable")[:4]
    near_o = np.argsort(np.linalg.norm(s_pos - o_pos[octa], axis=1), kind="stable")[:6]
    bonds = [(n_s + n_o + tet, int(j)) for j in near_t] + [(n_s + octa, int(j)) for j in near_o]
    positions = np.vstack([s_pos, o_pos, t_pos])
    colors = np.vstack([element_colors([z_host] * n_s), np.tile(OCT_COLOR, (n_o, 1)),
                        np.tile(TET_COLOR, (len(t_pos), 1))])
    radii = np.concatenate([element_radii([z_host] * n_s, 0.6), np.full(n_o, 0.34),
                            np.full(len(t_pos), 0.26)])
    scene = Scene(positions, colors, radii, bonds=np.asarray(bonds), bond_width_A=0.1,
                  bond_color=(0.45, 0.45, 0.45), cell=fcc.a * fcc.axes, view_dir=tuple(view_dir))
    return scene, True


def element_scene(atoms: Any, view_dir: Sequence[float] = OBLIQUE, radius_scale: float = 0.6,
                  bonds: bool = False, ion_radius_A: float | None = None,
                  ions: Sequence[int] = (3,)) -> Scene:
    """A whole cell by element (Figs. 3a, 4a): atoms folded into the cell, the cell box.

    ``bonds``: covalent bonds (ball and stick), none for the elements in ``ions``, which are
    drawn with radius ``ion_radius_A`` when given (Li in the polymer electrolyte).
    """
    numbers = np.asarray(atoms.numbers)
    pos = wrapped_positions(atoms)
    radii = element_radii(numbers, radius_scale)
    if ion_radius_A is not None:
        radii = np.where(np.isin(numbers, list(ions)), ion_radius_A, radii)
    pairs = covalent_bonds(numbers, pos, exclude=ions) if bonds else np.zeros((0, 2), np.int64)
    return Scene(pos, element_colors(numbers), radii, bonds=pairs, bond_width_A=0.22,
                 cell=np.asarray(atoms.cell.array), view_dir=tuple(view_dir))


def cross_section_scene(atoms: Any, slab_fraction: float = 0.5, radius_scale: float = 0.8,
                        n_states: int | None = None) -> Scene:
    """Fig. 3b: a slab of ``slab_fraction`` of the cell along y, seen along y: the targets
    coloured by their probability-weighted mix of state colours, the other atoms of the
    targets' elements in grey, every other element left out."""
    n = n_states or sum(1 for k in atoms.arrays if k.startswith("state_prob_"))
    probs = np.stack([atoms.arrays[f"state_prob_{i}"] for i in range(n)], axis=1)
    target = np.asarray(atoms.arrays["state"], dtype=int) >= 0
    numbers = np.asarray(atoms.numbers)
    cell = np.asarray(atoms.cell.array, dtype=float)
    pos = wrapped_positions(atoms)
    frac_y = np.linalg.solve(cell.T, pos.T).T[:, 1]
    in_slab = np.abs(frac_y - 0.5) <= 0.5 * slab_fraction
    shown = in_slab & np.isin(numbers, np.unique(numbers[target]))
    colors = np.where(target[:, None], state_mix_colors(probs, style.STATE_COLORS[:n]),
                      OTHER_COLOR)
    return Scene(pos[shown], colors[shown], element_radii(numbers[shown], radius_scale),
                 cell=cell, view_dir=SIDE)


def shell_scene(config: Any, view_dir: Sequence[float] = OBLIQUE) -> Scene:
    """Fig. 4b: a representative configuration's target (in its state's colour) and the atoms
    of its shell by element, ball and stick (no bonds to a one-atom target: an ion)."""
    shell = np.asarray(config.arrays["shell"]) > 0
    target = np.asarray(config.arrays["target"])[shell] > 0
    numbers = np.asarray(config.numbers)[shell]
    pos = np.asarray(config.positions, dtype=float)[shell]
    colors = element_colors(numbers)
    state = int(config.info["state"])
    colors[target] = hex_rgb(style.state_color(state))
    radii = np.where(target, 0.55, element_radii(numbers, 0.4))
    ions = np.unique(numbers[target]).tolist() if target.sum() == 1 else []
    pairs = covalent_bonds(numbers, pos, exclude=ions)
    return Scene(pos - pos[target].mean(axis=0), colors, radii, bonds=pairs, bond_width_A=0.18,
                 view_dir=tuple(view_dir))


# --------------------------------------------------------------------------------------
# Panels


def element_handles(numbers: Sequence[int], marker_size: float = 5.0) -> list[Any]:
    """Legend entries (symbol, Jmol colour) of the elements present, by atomic number."""
    from ase.data import chemical_symbols
    from matplotlib.lines import Line2D

    zs = sorted({int(z) for z in numbers})
    return [Line2D([], [], marker="o", ls="", ms=marker_size, mec="0.3", mew=0.4,
                   color=tuple(element_colors([z])[0]), label=chemical_symbols[z]) for z in zs]


def show_picture(ax: Axes, rendering: Rendering, handles: Sequence[Any] = (),
                 legend_loc: str = "right", max_columns: int = 7) -> None:
    """Put a rendered picture in ``ax`` (no frame, no ticks) with an optional legend."""
    ax.imshow(rendering.image, interpolation="antialiased")
    ax.set_axis_off()
    if handles:
        where = {"right": dict(loc="upper left", bbox_to_anchor=(1.0, 1.0)),
                 "below": dict(loc="upper center", bbox_to_anchor=(0.5, 0.0),
                               ncol=min(len(handles), max_columns))}[legend_loc]
        ax.legend(handles=list(handles), handletextpad=0.1, borderaxespad=0.2,
                  columnspacing=0.6, **where)


def plot_fcc_cell(ax: Axes, snapshot: Any, renderer: BackendChoice,
                  size: tuple[int, int] | None = None) -> Rendering:
    """Fig. 2a: the FCC cell of the host with its tetrahedral and octahedral sites."""
    from ase.data import chemical_symbols
    from matplotlib.lines import Line2D

    scene, sites = fcc_cell_scene(snapshot)
    out = renderer.render(scene, size or fit_size(scene, LONG_SIDE))
    host_z = host_element(snapshot)
    handles = element_handles([host_z] if sites else snapshot.numbers)
    if sites:
        handles += [
            Line2D([], [], marker="o", ls="", ms=4.0, color=TET_COLOR,
                   label="tetrahedral site"),
            Line2D([], [], marker="o", ls="", ms=4.6, color=OCT_COLOR, mec="0.4", mew=0.3,
                   label="octahedral site"),
        ]
        handles[0].set_label(f"{chemical_symbols[host_z]} (FCC)")
    show_picture(ax, out, handles, legend_loc="below")
    if not sites:
        ax.set_title("sites not drawn: the host is not a cubic FCC lattice", fontsize=6)
    return out


def plot_structure(ax: Axes, snapshot: Any, renderer: BackendChoice, bonds: bool = False,
                   view_dir: Sequence[float] = OBLIQUE, size: tuple[int, int] | None = None,
                   legend_loc: str = "below") -> Rendering:
    """Figs. 3a / 4a: the whole cell of a frame, atoms by element (Li enlarged)."""
    if bonds:
        scene = element_scene(snapshot, view_dir, radius_scale=0.4, bonds=True, ion_radius_A=0.9)
    else:
        scene = element_scene(snapshot, view_dir, radius_scale=0.8)
    out = renderer.render(scene, size or fit_size(scene, LONG_SIDE))
    show_picture(ax, out, element_handles(snapshot.numbers), legend_loc=legend_loc)
    return out


def plot_state_cross_section(ax: Axes, snapshot: Any, renderer: BackendChoice,
                             size: tuple[int, int] | None = None) -> Rendering:
    """Fig. 3b: the cross-section with targets coloured by their state probabilities."""
    from matplotlib.lines import Line2D

    n = sum(1 for k in snapshot.arrays if k.startswith("state_prob_"))
    scene = cross_section_scene(snapshot, n_states=n)
    out = renderer.render(scene, size or fit_size(scene, LONG_SIDE))
    handles = [Line2D([], [], marker="o", ls="", ms=5, color=style.state_color(i),
                      label=f"state {i}") for i in range(n)]
    target = np.asarray(snapshot.arrays["state"]) >= 0
    numbers = np.asarray(snapshot.numbers)
    if (~target & np.isin(numbers, np.unique(numbers[target]))).any():
        handles.append(Line2D([], [], marker="o", ls="", ms=5, color=OTHER_COLOR,
                              label="non-target"))
    show_picture(ax, out, handles, legend_loc="below", max_columns=3)
    if not target.any():
        ax.set_title("no target has probabilities in this frame", fontsize=6)
    return out


def plot_representative(ax: Axes, config: Any, renderer: BackendChoice,
                        size: tuple[int, int] | None = None) -> Rendering:
    """Fig. 4b, one state: its representative target and first solvation shell."""
    scene = shell_scene(config)
    out = renderer.render(scene, size or fit_size(scene, 600))
    show_picture(ax, out)
    state = int(config.info["state"])
    ax.set_title(f"state {state}", color=style.state_color(state), fontsize=7, pad=1)
    ax.text(0.5, 0.0, f"p = {float(config.info['probability']):.2f}", transform=ax.transAxes,
            ha="center", va="top", fontsize=6)
    return out

