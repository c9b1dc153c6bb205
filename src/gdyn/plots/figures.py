"""The paper's figures (Fig. 2-5, Supp. Figs. 1-3), composed from the panels.

:func:`render_figure` draws one from the files named in ``inputs`` (input name -> path, see
:data:`gdyn.plots.registry.FIGURE_INPUTS`) and writes it as PDF and PNG; ``gdyn figure``
(:mod:`gdyn.cli.figures`) calls it. Figs. 2-4 have pictures of atoms
(:mod:`gdyn.plots.panels_atoms`): their builders take a ``renderer`` (``"auto"``,
``"ovito"``, ``"matplotlib"`` or a resolved :class:`gdyn.plots.render.BackendChoice`) and
say under the pictures when the matplotlib fallback drew them; Fig. 4 also writes each
state's representative configuration next to the figure (:func:`write_configurations`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdyn.errors import InputError
from gdyn.files import atomic_path
from gdyn.plots import render, style
from gdyn.plots.io import (
    _require,
    _single_tau,
    _states,
    read_representative,
    read_snapshot,
    read_summary,
    read_table,
)
from gdyn.plots.panels_atoms import (
    plot_fcc_cell,
    plot_representative,
    plot_state_cross_section,
    plot_structure,
)
from gdyn.plots.panels_koopman import (
    figure_unit,
    near_empty_states,
    plot_ck,
    plot_eigen,
    plot_timescales,
)
from gdyn.plots.panels_structure import (
    plot_assignment,
    plot_charge,
    plot_conduction,
    plot_energy_path,
    plot_profile,
    plot_q3,
    plot_rdf_grid,
)
from gdyn.plots.registry import FIGURE_INPUTS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def _ck_states(ck: pd.DataFrame) -> int:
    """Rows of a CK grid: the surviving states (at least one, for the collapsed note)."""
    return max(len(_states(ck, "from_state")) - len(near_empty_states(ck, "from_state")), 1)


Renderer = str | render.BackendChoice


def _choice(renderer: Renderer) -> render.BackendChoice:
    if isinstance(renderer, render.BackendChoice):
        return renderer
    return render.resolve_backend(renderer)


def picture_note(fig: Figure, choice: render.BackendChoice) -> None:
    """Say below everything drawn so far that the pictures are the matplotlib fallback."""
    if choice.backend == "ovito":
        return
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    fig.text(bbox.x0 / fig.get_figwidth(), (bbox.y0 - 0.05) / fig.get_figheight(),
             render.describe(choice), fontsize=6, color="0.35", ha="left", va="top")


def figure_fig2(inputs: Mapping[str, str], renderer: Renderer = "auto") -> Figure:
    """Fig. 2: the FCC cell with its sites and the toy energy path; timescales, state
    assignment and CK, GDyNet vs VAMPnet."""
    import matplotlib.pyplot as plt

    choice = _choice(renderer)
    snapshot = read_snapshot(inputs["snapshot"])
    energy = read_table(inputs["energy"], "energy")
    models = [("gdynet", "GDyNet (local)"), ("vampnet", "VAMPnet (global)")]
    data = {}
    for m, _ in models:
        ck = read_table(inputs[f"{m}_ck"], "ck")
        data[m] = (
            read_table(inputs[f"{m}_timescales"], "timescales"),
            ck,
            _single_tau(ck, inputs[f"{m}_ck"], "ck"),
            read_table(inputs[f"{m}_positions"], "positions"),
            read_summary(inputs[f"{m}_summary"]),
        )
    unit = figure_unit(*(d[0] for d in data.values()), *(d[1] for d in data.values()))
    n_ck = max(_ck_states(d[1]) for d in data.values())
    ck_h = 0.8 * n_ck + 0.4
    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, 2.4 + 2.0 + 2.6 + ck_h + 1.2))
    outer = fig.add_gridspec(
        4, 2, height_ratios=[2.4, 2.0, 2.6, ck_h], hspace=0.55, wspace=0.35,
        left=0.09, right=0.97, top=0.98, bottom=0.05,
    )  # fmt: skip
    top = outer[0, :].subgridspec(1, 2, width_ratios=[1.0, 1.7], wspace=0.25)
    ax_cell = fig.add_subplot(top[0, 0])
    plot_fcc_cell(ax_cell, snapshot, choice)
    style.panel_letter(ax_cell, "a", dx_in=-0.3)
    ax_a = fig.add_subplot(top[0, 1])
    plot_energy_path(ax_a, energy)
    sc = None
    for col, (m, label) in enumerate(models):
        ts, ck, tau, pos, summary = data[m]
        ax_b = fig.add_subplot(outer[1, col])
        plot_timescales(ax_b, ts, tau, title=label, unit=unit, summary=summary)
        if col == 0:
            style.panel_letter(ax_b, "b")
        ax_c = fig.add_subplot(outer[2, col], projection="3d")
        sc = plot_assignment(ax_c, pos, label)
        if col == 0:
            style.panel_letter(ax_c, "c", dx_in=-0.2)
        plot_ck(fig, outer[3, col], ck, title=label, letter="d" if col == 0 else None, unit=unit,
                summary=summary)  # fmt: skip
    box = outer[2, 0].get_position(fig)
    cax = fig.add_axes((box.x1 + 0.02, box.y0 + 0.25 * box.height, 0.012, 0.5 * box.height))
    cb = fig.colorbar(sc, cax=cax)
    cb.set_label("p(state 0)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    picture_note(fig, choice)
    return fig


def figure_fig3(inputs: Mapping[str, str], renderer: Renderer = "auto") -> Figure:
    """Fig. 3: the Si-Au cell, its cross-section coloured by state, the z profile,
    timescales, eigenvectors and CK test."""
    import matplotlib.pyplot as plt

    choice = _choice(renderer)
    atoms = read_snapshot(inputs["snapshot"])
    profile = read_table(inputs["profile"], "profile")
    ts = read_table(inputs["timescales"], "timescales")
    eigen = read_table(inputs["eigen"], "eigen")
    ck = read_table(inputs["ck"], "ck")
    tau = _single_tau(ck, inputs["ck"], "ck")
    summary = read_summary(inputs["summary"])
    unit = figure_unit(ts, ck)
    n = _ck_states(ck)
    ck_h = 0.75 * n + 0.4
    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, 3.1 + 2.2 + ck_h + 1.2))
    outer = fig.add_gridspec(
        3, 2, height_ratios=[3.1, 2.2, ck_h], hspace=0.55, wspace=0.35,
        left=0.09, right=0.97, top=0.98, bottom=0.05,
    )  # fmt: skip
    top = outer[0, :].subgridspec(1, 3, width_ratios=[1.0, 1.0, 0.9], wspace=0.45)
    ax_a = fig.add_subplot(top[0, 0])
    plot_structure(ax_a, atoms, choice, view_dir=(0.35, 1.0, -0.2))
    style.panel_letter(ax_a, "a", dx_in=-0.2)
    ax_b = fig.add_subplot(top[0, 1])
    plot_state_cross_section(ax_b, atoms, choice)
    style.panel_letter(ax_b, "b", dx_in=-0.2)
    ax_c = fig.add_subplot(top[0, 2])
    plot_profile(ax_c, profile, vertical=True)
    style.panel_letter(ax_c, "c")
    ax_d = fig.add_subplot(outer[1, 0])
    plot_timescales(ax_d, ts, tau, unit=unit, summary=summary)
    style.panel_letter(ax_d, "d")
    plot_eigen(fig, outer[1, 1], eigen, letter="e", unit=unit, summary=summary)
    plot_ck(fig, outer[2, :], ck, letter="f", unit=unit, summary=summary)
    picture_note(fig, choice)
    return fig


def figure_fig4(inputs: Mapping[str, str], renderer: Renderer = "auto") -> Figure:
    """Fig. 4: the PEO/LiTFSI cell, each Li state's representative configuration, charge
    integral, timescales, eigenvectors and CK test."""
    import matplotlib.pyplot as plt

    choice = _choice(renderer)
    atoms = read_snapshot(inputs["snapshot"])
    configs = read_representative(inputs["representative"])
    charge = read_table(inputs["charge"], "charge")
    ts = read_table(inputs["timescales"], "timescales")
    eigen = read_table(inputs["eigen"], "eigen")
    ck = read_table(inputs["ck"], "ck")
    tau = _single_tau(ck, inputs["ck"], "ck")
    summary = read_summary(inputs["summary"])
    unit = figure_unit(ts, ck)
    n = _ck_states(ck)
    ck_h = 0.75 * n + 0.4
    n_cols = 2 if len(configs) <= 4 else 3
    n_rows = -(-len(configs) // n_cols)
    pic_h = max(2.8, 1.35 * n_rows + 0.3)
    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, pic_h + 2.2 + 1.9 + ck_h + 1.4))
    outer = fig.add_gridspec(
        4, 2, height_ratios=[pic_h, 2.2, 1.9, ck_h], hspace=0.6, wspace=0.35,
        left=0.09, right=0.97, top=0.98, bottom=0.05,
    )  # fmt: skip
    ax_a = fig.add_subplot(outer[0, 0])
    plot_structure(ax_a, atoms, choice, bonds=True)
    style.panel_letter(ax_a, "a", dx_in=-0.2)
    grid = outer[0, 1].subgridspec(n_rows, n_cols, hspace=0.25, wspace=0.05)
    for k, config in enumerate(configs):
        ax = fig.add_subplot(grid[k // n_cols, k % n_cols])
        plot_representative(ax, config, choice)
        if k == 0:
            style.panel_letter(ax, "b", dx_in=-0.2)
    ax_c = fig.add_subplot(outer[1, 0])
    plot_charge(ax_c, charge)
    style.panel_letter(ax_c, "c")
    ax_d = fig.add_subplot(outer[1, 1])
    plot_timescales(ax_d, ts, tau, unit=unit, summary=summary)
    style.panel_letter(ax_d, "d")
    plot_eigen(fig, outer[2, :], eigen, letter="e", unit=unit, summary=summary)
    plot_ck(fig, outer[3, :], ck, letter="f", unit=unit, summary=summary)
    picture_note(fig, choice)
    return fig


def _check_configurations(representative: str | Path, paths: Sequence[str | Path]) -> list[Any]:
    configs = read_representative(representative)
    if len(paths) != len(configs):
        raise InputError(
            f"{representative}: expected one configuration per output file ({len(paths)}), "
            f"got {len(configs)} states"
        )
    return configs


def write_configurations(representative: str | Path, paths: Sequence[str | Path]) -> None:
    """Each state's representative configuration (frame i of ``representative.extxyz``) as
    its own extended XYZ file, ``paths[i]`` (Fig. 4b's atoms, for OVITO or ASE)."""
    import ase.io

    configs = _check_configurations(representative, paths)
    for config, path in zip(configs, paths, strict=True):
        with atomic_path(path, suffix=".extxyz") as tmp:
            ase.io.write(tmp, config, format="extxyz")


def figure_fig5(inputs: Mapping[str, str]) -> Figure:
    """Fig. 5: contribution of each transition to the conduction, 95% CI bars."""
    import matplotlib.pyplot as plt

    cond = read_table(inputs["conduction"], "conduction")
    fig, ax = plt.subplots(figsize=(style.DOUBLE_COLUMN_IN * 0.75, 2.6))
    plot_conduction(ax, cond)
    return fig


def figure_supp_fig1(inputs: Mapping[str, str]) -> Figure:
    """Supp. Fig. 1: relaxation timescales of the largest global VAMPnet of the toy."""
    import matplotlib.pyplot as plt

    ts = read_table(inputs["timescales"], "timescales")
    n_states = (
        int(ts["n_states"].iloc[0]) if "n_states" in ts.columns else int(ts["process"].max()) + 1
    )
    summary = read_summary(inputs["summary"])
    fig, ax = plt.subplots(figsize=(style.SINGLE_COLUMN_IN * 1.3, 2.8))
    # The paper draws no tau* here; the summary still marks the unconverged lag models.
    plot_timescales(ax, ts, title=f"global VAMPnet, {n_states} states", summary=summary)
    return fig


def figure_supp_fig2(inputs: Mapping[str, str]) -> Figure:
    """Supp. Fig. 2b: q3 distribution per learned state (panel a needs per-atom q3)."""
    import matplotlib.pyplot as plt

    q3 = read_table(inputs["q3"], "q3")
    fig, ax = plt.subplots(figsize=(style.SINGLE_COLUMN_IN * 1.3, 2.6))
    plot_q3(ax, q3)
    style.panel_letter(ax, "b")
    return fig


def figure_supp_fig3(inputs: Mapping[str, str]) -> Figure:
    """Supp. Fig. 3: state-weighted RDFs and coordination numbers, one row per element."""
    import matplotlib.pyplot as plt

    rdf = read_table(inputs["rdf"], "rdf")
    n_el = len(set(rdf["element"].astype(str)))
    n_st = len(_states(rdf))
    fig = plt.figure(figsize=(min(style.DOUBLE_COLUMN_IN, 1.8 * n_st + 0.6), 1.6 * n_el + 0.3))
    plot_rdf_grid(fig, rdf)
    return fig


FIGURE_TITLES: dict[str, str] = {
    "fig2": "Fig. 2: two-state model of Li in the FCC S lattice, GDyNet vs global VAMPnet",
    "fig3": "Fig. 3: four-state model of Si at the Si-Au solid-liquid interface",
    "fig4": "Fig. 4: four-state model of Li+ in PEO/LiTFSI",
    "fig5": "Fig. 5: contribution of each transition to Li-ion conduction",
    "supp_fig1": "Supp. Fig. 1: global relaxation timescales of the largest global VAMPnet",
    "supp_fig2": "Supp. Fig. 2b: q3 order parameter per learned state",
    "supp_fig3": "Supp. Fig. 3: state-weighted radial distribution functions",
}


FIGURE_BUILDERS: dict[str, Callable[..., Figure]] = {
    "fig2": figure_fig2,
    "fig3": figure_fig3,
    "fig4": figure_fig4,
    "fig5": figure_fig5,
    "supp_fig1": figure_supp_fig1,
    "supp_fig2": figure_supp_fig2,
    "supp_fig3": figure_supp_fig3,
}


# Figures with pictures of atoms: their builders take a renderer.
PICTURE_FIGURES: frozenset[str] = frozenset({"fig2", "fig3", "fig4"})


def render_figure(
    name: str,
    inputs: Mapping[str, str],
    pdf: str | Path,
    png: str | Path | None = None,
    data_label: str = "",
    dpi: int = style.PNG_DPI,
    renderer: str = "auto",
    configurations: Sequence[str | Path] | None = None,
) -> None:
    """Draw figure ``name`` from ``inputs`` and write it as PDF (and PNG).

    Parameters
    ----------
    renderer
        Pictures of atoms (Figs. 2-4): ``"auto"`` (OVITO if it starts, else the matplotlib
        fallback, said under the pictures), ``"ovito"`` or ``"matplotlib"``.
    configurations
        Fig. 4 only: where to write each state's representative configuration (extended
        XYZ, one path per state, :func:`write_configurations`).
    """
    if name not in FIGURE_BUILDERS:
        raise InputError(f"figure name: expected one of {', '.join(FIGURE_BUILDERS)}, got {name!r}")
    _require(inputs, FIGURE_INPUTS[name], name)
    if configurations and name != "fig4":
        raise InputError(f"--configurations: only fig4 writes configurations, got {name}")
    if configurations:  # checked before anything is drawn or written
        _check_configurations(inputs["representative"], configurations)
    kwargs: dict[str, Any] = {}
    if name in PICTURE_FIGURES:
        kwargs["renderer"] = render.resolve_backend(renderer)
    with style.paper_style():
        fig = FIGURE_BUILDERS[name](inputs, **kwargs)
        style.data_footer(fig, data_label)
        style.save_figure(fig, pdf, png, dpi=dpi, title=FIGURE_TITLES[name], data_label=data_label)
    if configurations:
        write_configurations(inputs["representative"], configurations)
