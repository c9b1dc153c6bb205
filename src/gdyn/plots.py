"""Paper figures and supplementary tables as pure functions of the analysis CSVs.

``gdyn figure NAME OUT.pdf --png OUT.png --inputs JSON`` draws one of the paper's figures
(Fig. 2-5, Supp. Figs. 1-3) from the files named in ``--inputs`` (a JSON object: input
name -> path, see :data:`FIGURE_INPUTS`); ``gdyn table NAME OUT.csv --md OUT.md`` writes
Supp. Table 1 or 2. File formats are those of ``docs/contracts.md``. ``gdyn compare``
(the paper comparison) lives in :mod:`gdyn.compare` and is registered from here.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn import style
from gdyn.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec

# Columns each input must have (docs/contracts.md); extra columns are ignored.
COLUMNS: dict[str, tuple[str, ...]] = {
    "timescales": ("lag_ps", "process", "timescale_ps", "ci_low_ps", "ci_high_ps"),
    "ck": (
        "tau_ps",
        "lag_ps",
        "from_state",
        "to_state",
        "predicted",
        "predicted_ci_low",
        "predicted_ci_high",
        "estimated",
        "estimated_ci_low",
        "estimated_ci_high",
    ),
    "eigen": ("tau_ps", "process", "timescale_ps", "state", "component", "ci_low", "ci_high"),
    "populations": ("tau_ps", "state", "population", "ci_low", "ci_high"),
    "energy": ("path_coordinate_A", "energy_meV", "site"),
    "positions": ("x_frac", "y_frac", "z_frac", "p0"),
    "profile": ("state", "axis", "position_A", "density"),
    "charge": ("state", "r_A", "charge", "r_star_A", "charge_at_r_star"),
    "conduction": ("from_state", "to_state", "percent", "ci_low_percent", "ci_high_percent"),
    "q3": ("state", "q3", "density"),
    "rdf": ("state", "element", "r_A", "g", "n_coord"),
    "diffusion": (
        "from_state",
        "to_state",
        "tau_ps",
        "D_cm2_per_s",
        "ci_low_cm2_per_s",
        "ci_high_cm2_per_s",
    ),
}

# Input names of each figure/table (the keys of --inputs); workflow/rules/figures.smk
# builds the same names.
FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "fig2": (
        "energy",
        "gdynet_timescales",
        "gdynet_ck",
        "gdynet_positions",
        "vampnet_timescales",
        "vampnet_ck",
        "vampnet_positions",
    ),
    "fig3": ("snapshot", "profile", "timescales", "eigen", "ck"),
    "fig4": ("charge", "timescales", "eigen", "ck"),
    "fig5": ("conduction",),
    "supp_fig1": ("timescales",),
    "supp_fig2": ("q3",),
    "supp_fig3": ("rdf",),
}
TABLE_INPUTS: dict[str, tuple[str, ...]] = {
    "supp_table1": ("charge",),
    "supp_table2": ("diffusion",),
}

D_UNIT = 1e-7  # Supp. Table 2 reports D in 1e-7 cm^2/s

SHORT_TITLES: dict[str, str] = {
    "fig2": "Fig. 2",
    "fig3": "Fig. 3",
    "fig4": "Fig. 4",
    "fig5": "Fig. 5",
    "supp_fig1": "Supp. Fig. 1",
    "supp_fig2": "Supp. Fig. 2",
    "supp_fig3": "Supp. Fig. 3",
    "supp_table1": "Supp. Table 1",
    "supp_table2": "Supp. Table 2",
}


def figure_system(name: str, systems: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The system whose config lists figure/table ``name`` under ``figures`` (None if none)."""
    owners = [s for s, c in systems.items() if name in c.get("figures", [])]
    if len(owners) > 1:
        raise InputError(f"config: {name} is listed under 'figures' of several systems: {owners}")
    return owners[0] if owners else None


def figure_input_paths(
    name: str, systems: Mapping[str, Mapping[str, Any]], results: str = "results"
) -> dict[str, str]:
    """The ``--inputs`` of figure/table ``name``: input name -> path (docs/contracts.md).

    workflow/rules/figures.smk requests exactly these files, so a figure depends on nothing
    it does not draw.
    """
    from gdyn import config as gc

    system = figure_system(name, systems)
    if system is None:
        raise InputError(
            f"{name}: no system in this config lists it under 'figures' "
            f"(configured systems: {', '.join(systems)})"
        )
    s = systems[system]
    k = s.get("koopman", {})
    model, n = str(k.get("model", "gdynet")), int(k.get("n_states", 2))
    states = gc.model_state_counts(s)
    d = f"{results}/structure/{system}"

    def koopman(model: str, n_states: int, tables: Sequence[str]) -> dict[str, str]:
        return {t: f"{results}/koopman/{system}/{model}-s{n_states}/{t}.csv" for t in tables}

    if name == "fig2":
        if not states.get("gdynet") or not states.get("vampnet"):
            raise InputError(
                f"config key 'systems/{system}/train/models': fig2 needs gdynet and vampnet"
            )
        n_gdy = n if n in states["gdynet"] else states["gdynet"][0]
        n_vamp = n_gdy if n_gdy in states["vampnet"] else min(states["vampnet"])
        ins = {"energy": f"{results}/toy/{system}/energy_path.csv"}
        for m, n_m in (("gdynet", n_gdy), ("vampnet", n_vamp)):
            ins.update({f"{m}_{t}": p for t, p in koopman(m, n_m, ("timescales", "ck")).items()})
            ins[f"{m}_positions"] = f"{d}/positions-{m}-s{n_m}.csv"
        return ins
    if name == "supp_fig1":
        if not states.get("vampnet"):
            raise InputError(f"config key 'systems/{system}/train/models': supp_fig1 needs vampnet")
        return koopman("vampnet", max(states["vampnet"]), ("timescales",))
    if name == "fig3":
        ins = koopman(model, n, ("timescales", "eigen", "ck"))
        return ins | {"snapshot": f"{d}/snapshot.extxyz", "profile": f"{d}/profile.csv"}
    if name == "fig4":
        return koopman(model, n, ("timescales", "eigen", "ck")) | {"charge": f"{d}/charge.csv"}
    files = {
        "fig5": ("conduction", "conduction.csv"),
        "supp_fig2": ("q3", "q3.csv"),
        "supp_fig3": ("rdf", "rdf.csv"),
        "supp_table1": ("charge", "charge.csv"),
        "supp_table2": ("diffusion", "diffusion.csv"),
    }
    if name not in files:
        raise InputError(f"figure name: expected one of {', '.join(SHORT_TITLES)}, got {name!r}")
    key, file = files[name]
    return {key: f"{d}/{file}"}


def system_data_label(name: str, systems: Mapping[str, Mapping[str, Any]]) -> str:
    """The data source (config ``data_label``) of the system a figure/table belongs to."""
    system = figure_system(name, systems)
    return str(systems[system].get("data_label", "")) if system else ""


# ----------------------------------------------------------------------------- input


def read_table(path: str | Path, kind: str) -> pd.DataFrame:
    """Read one analysis CSV of type ``kind`` and check it has the contract's columns."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected a {kind} CSV)") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a readable {kind} CSV: {exc}") from None
    missing = [c for c in COLUMNS[kind] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: {kind} CSV: expected columns {', '.join(COLUMNS[kind])}; "
            f"missing {', '.join(missing)} (got {', '.join(map(str, frame.columns))})"
        )
    if frame.empty:
        raise InputError(f"{path}: {kind} CSV: expected at least one row, got none")
    return frame


def _single_tau(frame: pd.DataFrame, path: str | Path, kind: str) -> float:
    """The one lag tau* a CK / eigen table is computed at."""
    taus = sorted(set(frame["tau_ps"].astype(float)))
    if len(taus) != 1:
        raise InputError(
            f"{path}: {kind} CSV: column 'tau_ps': expected one value (tau*), got {taus}"
        )
    return taus[0]


def _require(inputs: Mapping[str, str], names: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InputError(
            f"--inputs of {what}: expected keys {', '.join(names)}; missing {', '.join(missing)}"
        )


def _states(frame: pd.DataFrame, column: str = "state") -> list[int]:
    return sorted(int(s) for s in set(frame[column]))


def _nan_to_zero(values: Any) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)


def _yerr(value: Any, low: Any, high: Any) -> np.ndarray:
    """Asymmetric error bars from CI bounds; a missing or inverted bound draws no bar."""
    v = np.asarray(value, dtype=float)
    lo = np.clip(_nan_to_zero(v - np.asarray(low, dtype=float)), 0.0, None)
    hi = np.clip(_nan_to_zero(np.asarray(high, dtype=float) - v), 0.0, None)
    return np.vstack([lo, hi])


# ----------------------------------------------------------------------------- panels

Unit = tuple[str, float]  # display unit of times and the factor from ps, e.g. ("ns", 1e-3)


def figure_unit(*frames: pd.DataFrame) -> Unit:
    """One time unit for a whole figure, from the longest lag any of its tables holds."""
    longest = max(float(f["lag_ps"].max()) for f in frames if "lag_ps" in f.columns)
    return style.time_unit(longest)


def plot_energy_path(ax: Axes, energy: pd.DataFrame) -> None:
    """Fig. 2a: the toy potential's energy along the tet-oct-tet path, sites labelled."""
    e = energy.sort_values("path_coordinate_A")
    x = e["path_coordinate_A"].to_numpy(float)
    y = e["energy_meV"].to_numpy(float)
    ax.plot(x, y, color="k")
    # Label each run of equal site labels at its lowest point (the site itself), so both
    # a label on every row and a label only at the sites read correctly.
    sites = e["site"].astype("string").fillna("").str.strip().to_numpy()
    start = 0
    for k in range(1, len(sites) + 1):
        if k == len(sites) or sites[k] != sites[start]:
            label = str(sites[start])
            if label and label.lower() not in {"path", "nan", "none", "-", "<na>"}:
                m = start + int(np.argmin(y[start:k]))
                ax.plot(x[m], y[m], "o", color=style.ESTIMATED_COLOR, zorder=3, clip_on=False)
                frac = (x[m] - x.min()) / ((x.max() - x.min()) or 1.0)
                ha = "left" if frac < 0.05 else "right" if frac > 0.95 else "center"
                ax.annotate(
                    label,
                    (x[m], y[m]),
                    textcoords="offset points",
                    xytext=(0, -6),
                    ha=ha,
                    va="top",
                    fontsize=7,
                )
            start = k
    span = float(np.nanmax(y) - np.nanmin(y)) or 1.0
    ax.set_ylim(np.nanmin(y) - 0.3 * span, np.nanmax(y) + 0.1 * span)
    ax.set_xlim(x.min(), x.max())
    ax.set_xlabel("distance along the tet–oct–tet path (Å)")
    ax.set_ylabel("energy (meV)")


def _process_colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.85, max(n, 1))]


def plot_timescales(
    ax: Axes,
    ts: pd.DataFrame,
    tau_star_ps: float | None = None,
    title: str | None = None,
    unit: Unit | None = None,
) -> None:
    """Relaxation timescales t_i(tau) vs lag with 95% CI bands and the t = tau line."""
    name, scale = unit or figure_unit(ts)
    processes = sorted(int(p) for p in set(ts["process"]) if int(p) >= 1)
    lags = np.sort(np.unique(ts["lag_ps"].to_numpy(float))) * scale
    positive: list[float] = list(lags)
    for color, p in zip(_process_colors(len(processes)), processes, strict=True):
        g = ts[ts["process"] == p].sort_values("lag_ps")
        x = g["lag_ps"].to_numpy(float) * scale
        y = g["timescale_ps"].to_numpy(float) * scale
        lo = g["ci_low_ps"].to_numpy(float) * scale
        hi = g["ci_high_ps"].to_numpy(float) * scale
        ok = np.isfinite(y) & (y > 0)
        ax.plot(x[ok], y[ok], "o-", color=color, label=f"process {p}")
        band = ok & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        if band.any():
            ax.fill_between(x[band], lo[band], hi[band], color=color, alpha=0.25, lw=0)
        positive += [v for v in np.concatenate([y[ok], lo[band], hi[band]]) if v > 0]
    ax.set_yscale("log")
    ymin, ymax = min(positive) / 2.0, max(positive) * 3.0
    # Timescales below t = tau decay within one lag and cannot be resolved (shaded).
    xs = np.linspace(0.0, lags.max() * 1.03, 100)
    ax.plot(xs, xs, color="k", lw=0.8)
    ax.fill_between(xs, ymin, np.maximum(xs, ymin), color=style.REFERENCE_COLOR, alpha=0.35, lw=0)
    if tau_star_ps is not None and np.isfinite(tau_star_ps):
        ax.axvline(tau_star_ps * scale, color="k", ls=":", lw=0.8)
        ax.annotate(
            "τ*", (tau_star_ps * scale, ymax), xytext=(2, -2), textcoords="offset points",
            ha="left", va="top", fontsize=7,
        )  # fmt: skip
    ax.set_ylim(ymin, ymax)
    ax.set_xlim(0.0, lags.max() * 1.03)
    style.plain_log_ticks(ax.yaxis)
    ax.set_xlabel(f"lag time τ ({name})")
    ax.set_ylabel(f"relaxation timescale ({name})")
    if title:
        ax.set_title(title)
    if len(processes) <= 3:
        ax.legend(loc="lower right", handlelength=1.2)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=1.2)


def plot_ck(
    fig: Figure,
    spec: SubplotSpec,
    ck: pd.DataFrame,
    title: str | None = None,
    letter: str | None = None,
    unit: Unit | None = None,
) -> list[Axes]:
    """CK test grid: K(n tau*) predicted (line, CI band) vs estimated (points, CI bars)."""
    from matplotlib.transforms import ScaledTranslation

    name, scale = unit or figure_unit(ck)
    tau = float(ck["tau_ps"].iloc[0])
    states = sorted(set(_states(ck, "from_state")) | set(_states(ck, "to_state")))
    n = len(states)
    grid = spec.subgridspec(n, n, wspace=0.1, hspace=0.35)
    axes: list[Axes] = []
    first: Axes | None = None
    for a, i in enumerate(states):
        for b, j in enumerate(states):
            ax = fig.add_subplot(grid[a, b], sharex=first, sharey=first)
            first = first or ax
            axes.append(ax)
            g = ck[(ck["from_state"] == i) & (ck["to_state"] == j)].sort_values("lag_ps")
            x = g["lag_ps"].to_numpy(float) * scale
            ax.plot(x, g["predicted"].to_numpy(float), color=style.PREDICTED_COLOR)
            ax.fill_between(
                x,
                g["predicted_ci_low"].to_numpy(float),
                g["predicted_ci_high"].to_numpy(float),
                color=style.PREDICTED_COLOR,
                alpha=0.25,
                lw=0,
            )
            ax.errorbar(
                x,
                g["estimated"].to_numpy(float),
                yerr=_yerr(g["estimated"], g["estimated_ci_low"], g["estimated_ci_high"]),
                fmt="o",
                color=style.ESTIMATED_COLOR,
                ms=2.5,
                capsize=1.5,
                elinewidth=0.7,
            )
            ax.set_title(f"{i}→{j}", fontsize=7, pad=2)
            if a < n - 1:
                ax.tick_params(labelbottom=False)
            if b > 0:
                ax.tick_params(labelleft=False)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_yticks([0.0, 0.5, 1.0])
    axes[0].set_xlim(0.0, float(ck["lag_ps"].max()) * scale * 1.08)
    axes[(n - 1) * n + n // 2].set_xlabel(f"lag time ({name})")
    axes[(n // 2) * n].set_ylabel("transition probability")
    # Grid title and legend above the grid, placed from the grid's own extent.
    box = spec.get_position(fig)
    up = lambda pts: fig.transFigure + ScaledTranslation(0, pts / 72, fig.dpi_scale_trans)  # noqa: E731
    head = f"CK test at τ* = {tau * scale:g} {name}"
    fig.text(
        0.5 * (box.x0 + box.x1), box.y1, f"{title}: {head}" if title else head,
        transform=up(24), ha="center", va="bottom",
    )  # fmt: skip
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=style.PREDICTED_COLOR, label="predicted K(τ*)ⁿ"),
        Line2D(
            [], [], color=style.ESTIMATED_COLOR, marker="o", ls="", ms=3, label="estimated K(nτ*)"
        ),
    ]
    fig.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5 * (box.x0 + box.x1), box.y1),
        bbox_transform=up(11), ncol=2, handlelength=1.5, borderaxespad=0.0, borderpad=0.0,
    )  # fmt: skip
    if letter:
        style.panel_letter(axes[0], letter, dy_in=24 / 72 + 0.02)
    return axes


def plot_eigen(
    fig: Figure,
    spec: SubplotSpec,
    eigen: pd.DataFrame,
    letter: str | None = None,
    unit: Unit | None = None,
) -> list[Axes]:
    """Eigenvectors of K(tau*) projected onto the states, one bar panel per relaxation."""
    processes = sorted(int(p) for p in set(eigen["process"]) if int(p) >= 1)
    name, scale = unit or style.time_unit(float(eigen["tau_ps"].iloc[0]))
    tau = float(eigen["tau_ps"].iloc[0])
    grid = spec.subgridspec(1, max(len(processes), 1), wspace=0.12)
    axes: list[Axes] = []
    for k, p in enumerate(processes):
        ax = fig.add_subplot(grid[0, k], sharey=axes[0] if axes else None)
        axes.append(ax)
        g = eigen[eigen["process"] == p].sort_values("state")
        states = g["state"].to_numpy(int)
        comp = g["component"].to_numpy(float)
        ax.bar(
            states,
            comp,
            color=[style.state_color(s) for s in states],
            yerr=_yerr(comp, g["ci_low"], g["ci_high"]),
            capsize=1.5,
            error_kw={"elinewidth": 0.7},
            width=0.7,
        )
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xticks(states)
        ax.set_xlabel("state")
        t = float(g["timescale_ps"].iloc[0]) * scale
        ax.set_title(f"process {p}\nt = {t:.3g} {name}")
        if k > 0:
            ax.tick_params(labelleft=False)
    if axes:
        axes[0].set_ylabel(f"eigenvector component\nat τ* = {tau * scale:g} {name}")
        if letter:
            style.panel_letter(axes[0], letter)
    return axes


def _state_cmap() -> Any:
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "state1_to_state0", [style.state_color(1), "#e8e8e8", style.state_color(0)]
    )


def plot_assignment(ax: Any, positions: pd.DataFrame, title: str) -> Any:
    """Fig. 2c: target positions in the cell (fractional) coloured by p(state 0)."""
    p = positions.sort_values("p0")
    for axis in range(3):  # the 12 edges of the unit cell
        others = [a for a in range(3) if a != axis]
        for u in (0.0, 1.0):
            for v in (0.0, 1.0):
                pts = np.zeros((2, 3))
                pts[:, axis] = [0.0, 1.0]
                pts[:, others[0]], pts[:, others[1]] = u, v
                ax.plot(pts[:, 0], pts[:, 1], pts[:, 2], color="0.4", lw=0.5)
    sc = ax.scatter(
        p["x_frac"],
        p["y_frac"],
        p["z_frac"],
        c=p["p0"],
        cmap=_state_cmap(),
        vmin=0.0,
        vmax=1.0,
        s=1.5,
        alpha=0.6,
        linewidths=0,
        rasterized=True,
        depthshade=False,
    )
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(0.0, 1.0)
    for label, setter in zip(
        ("x", "y", "z"), (ax.set_xlabel, ax.set_ylabel, ax.set_zlabel), strict=True
    ):
        setter(f"{label} (fraction of a)", labelpad=-9, fontsize=6)
    ax.tick_params(pad=-3, labelsize=6)
    for setter in (ax.set_xticks, ax.set_yticks, ax.set_zticks):
        setter([0.0, 0.5, 1.0])
    ax.view_init(elev=18, azim=-58)
    ax.set_box_aspect((1, 1, 1), zoom=0.95)
    ax.set_title(title, pad=0)
    return sc


def read_snapshot(path: str | Path) -> Any:
    """The snapshot frame (ase.Atoms) with per-atom ``state`` and ``state_prob_<i>``."""
    from ase.io import read

    try:
        atoms = read(str(path), format="extxyz", index=0)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected the snapshot extxyz)") from None
    except Exception as exc:  # ase raises many types for a malformed file
        raise InputError(f"{path}: not a readable extended XYZ file: {exc}") from None
    if "state" not in atoms.arrays or not any(k.startswith("state_prob_") for k in atoms.arrays):
        raise InputError(
            f"{path}: expected per-atom properties 'state' and 'state_prob_<i>', "
            f"got {', '.join(sorted(atoms.arrays))}"
        )
    return atoms


def plot_cross_section(ax: Axes, atoms: Any, slab_fraction: float = 0.5) -> None:
    """Fig. 3b: a slab of the snapshot seen along y, targets coloured by their state mix."""
    from matplotlib.colors import to_rgb
    from matplotlib.lines import Line2D

    n_states = sum(1 for k in atoms.arrays if k.startswith("state_prob_"))
    probs = np.stack([atoms.arrays[f"state_prob_{i}"] for i in range(n_states)], axis=1)
    target = np.asarray(atoms.arrays["state"], dtype=int) >= 0
    cell = np.asarray(atoms.cell.array, dtype=float)
    pos = np.asarray(atoms.positions, dtype=float)
    if np.linalg.matrix_rank(cell) == 3:
        pos = (np.linalg.solve(cell.T, pos.T).T % 1.0) @ cell
    y = pos[:, 1]
    mid, half = 0.5 * (y.max() + y.min()), 0.5 * slab_fraction * (y.max() - y.min() + 1e-9)
    in_slab = np.abs(y - mid) <= half
    # Non-target atoms of the target elements (e.g. deep solid Si) in grey, others hidden.
    target_z = sorted(set(np.asarray(atoms.numbers)[target].tolist()))
    other = in_slab & ~target & np.isin(atoms.numbers, target_z)
    ax.scatter(pos[other, 0], pos[other, 2], s=4, color="0.75", linewidths=0, rasterized=True)
    rgb = np.array([to_rgb(style.state_color(i)) for i in range(n_states)])
    sel = in_slab & target
    p = np.clip(np.nan_to_num(probs[sel], nan=0.0), 0.0, 1.0)
    colors = np.clip(p @ rgb / np.maximum(p.sum(axis=1, keepdims=True), 1e-12), 0.0, 1.0)
    ax.scatter(pos[sel, 0], pos[sel, 2], s=6, c=colors, linewidths=0, rasterized=True)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("z (Å)")
    handles = [
        Line2D([], [], marker="o", ls="", color=style.state_color(i), label=f"state {i}")
        for i in range(n_states)
    ]
    if other.any():
        handles.append(Line2D([], [], marker="o", ls="", color="0.75", label="non-target"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), handletextpad=0.2)


def plot_profile(ax: Axes, profile: pd.DataFrame, vertical: bool = False) -> None:
    """Fig. 3c: distribution of the targets of each state along the profile axis."""
    axis = str(profile["axis"].iloc[0])
    for s in _states(profile):
        g = profile[profile["state"] == s].sort_values("position_A")
        x, d = g["position_A"].to_numpy(float), g["density"].to_numpy(float)
        xy = (d, x) if vertical else (x, d)
        ax.plot(*xy, color=style.state_color(s), label=f"state {s}")
    labels = (f"{axis} (Å)", "targets per Å")
    ax.set_xlabel(labels[vertical])
    ax.set_ylabel(labels[not vertical])
    if vertical:
        ax.set_xlim(left=0.0)
    else:
        ax.set_ylim(bottom=0.0)
    ax.legend(loc="best", handlelength=1.2)


def charge_per_state(charge: pd.DataFrame, path: str | Path = "charge.csv") -> pd.DataFrame:
    """One row per state: r* and the charge integral at r* (Supp. Table 1)."""
    import pandas as pd

    rows = []
    for s in _states(charge):
        g = charge[charge["state"] == s]
        r_star = g["r_star_A"].to_numpy(float)
        q_star = g["charge_at_r_star"].to_numpy(float)
        if np.ptp(r_star) > 1e-9 or np.ptp(q_star) > 1e-9:
            raise InputError(
                f"{path}: state {s}: columns 'r_star_A', 'charge_at_r_star': expected one value "
                f"per state, got {sorted(set(r_star))[:3]} / {sorted(set(q_star))[:3]}"
            )
        rows.append({"state": s, "r_star_A": r_star[0], "charge_e": q_star[0]})
    return pd.DataFrame(rows)


def plot_charge(ax: Axes, charge: pd.DataFrame) -> None:
    """Fig. 4c: charge integral around a target vs radius, per state, with r* marked."""
    per_state = charge_per_state(charge)
    for s in _states(charge):
        g = charge[charge["state"] == s].sort_values("r_A")
        c = style.state_color(s)
        ax.plot(g["r_A"], g["charge"], color=c, label=f"state {s}")
        row = per_state[per_state["state"] == s].iloc[0]
        ax.axvline(row["r_star_A"], color=c, ls=":", lw=0.8)
        ax.plot(row["r_star_A"], row["charge_e"], "o", color=c, mec="k", mew=0.4)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xlabel("radius r (Å)")
    ax.set_ylabel("charge integral (e)")
    ax.set_xlim(0.0, float(charge["r_A"].max()))
    ax.legend(loc="best", handlelength=1.2)


def plot_conduction(ax: Axes, cond: pd.DataFrame) -> None:
    """Fig. 5: percentage of the conduction carried by each transition i -> j."""
    from matplotlib.patches import Patch

    c = cond.sort_values(["from_state", "to_state"]).reset_index(drop=True)
    x = np.arange(len(c))
    pairs = list(zip(c["from_state"].astype(int), c["to_state"].astype(int), strict=True))
    ax.bar(
        x,
        c["percent"].to_numpy(float),
        color=[style.state_color(i) for i, _ in pairs],
        yerr=_yerr(c["percent"], c["ci_low_percent"], c["ci_high_percent"]),
        capsize=2,
        error_kw={"elinewidth": 0.7},
        width=0.75,
        edgecolor=["k" if i == j else "none" for i, j in pairs],  # outline i -> i
        linewidth=0.6,
    )
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{i}→{j}" for i, j in pairs])
    ax.set_xlabel("transition i → j")
    ax.set_ylabel("contribution to conduction (%)")
    ax.set_xlim(-0.6, len(c) - 0.4)
    ax.legend(
        handles=[
            Patch(color=style.state_color(s), label=f"from state {s}")
            for s in _states(c, "from_state")
        ],
        loc="best",
    )


def plot_q3(ax: Axes, q3: pd.DataFrame) -> None:
    """Supp. Fig. 2b: distribution of the q3 order parameter of each state's targets."""
    for s in _states(q3):
        g = q3[q3["state"] == s].sort_values("q3")
        ax.plot(g["q3"], g["density"], color=style.state_color(s), label=f"state {s}")
    ax.set_xlabel("$q_3$ (dimensionless)")
    ax.set_ylabel("probability density")
    ax.set_ylim(bottom=0.0)
    ax.legend(loc="best", handlelength=1.2)


def plot_rdf_grid(fig: Figure, rdf: pd.DataFrame) -> None:
    """Supp. Fig. 3: g_i(r) (blue, left axis) and n_i(r) (black, right) per element and state."""
    elements = list(dict.fromkeys(rdf["element"].astype(str)))
    states = _states(rdf)
    grid = fig.add_gridspec(len(elements), len(states), hspace=0.5, wspace=0.5)
    r_max = float(rdf["r_A"].max())
    for a, el in enumerate(elements):
        sub = rdf[rdf["element"].astype(str) == el]
        n_top = float(np.nanmax(sub["n_coord"])) * 1.05 or 1.0
        first: Axes | None = None
        for b, s in enumerate(states):
            ax = fig.add_subplot(grid[a, b], sharey=first)
            first = first or ax
            g = sub[sub["state"] == s].sort_values("r_A")
            ax.plot(g["r_A"], g["g"], color=style.PREDICTED_COLOR)
            ax.set_xlim(0.0, r_max)
            ax.tick_params(axis="y", colors=style.PREDICTED_COLOR)
            twin = ax.twinx()
            twin.spines["right"].set_visible(True)
            twin.plot(g["r_A"], g["n_coord"], color="k", lw=0.9)
            twin.set_ylim(0.0, n_top)
            if "r_first_min_A" in g.columns and np.isfinite(g["r_first_min_A"]).any():
                # The first-shell edge the structure stage found (optional column).
                ax.axvline(float(g["r_first_min_A"].dropna().iloc[0]), color="0.5", ls=":", lw=0.8)
            twin.tick_params(axis="y", labelsize=6)
            ax.set_title(f"{el}, state {s}")
            if a == len(elements) - 1:
                ax.set_xlabel("r (Å)")
            if b == 0:
                ax.set_ylabel("g(r)", color=style.PREDICTED_COLOR)
                style.panel_letter(ax, "abcdefghijklmnopqrstuvwxyz"[a % 26], dx_in=-0.4)
            else:
                ax.tick_params(labelleft=False)
            if b == len(states) - 1:
                twin.set_ylabel("n(r)")


# ----------------------------------------------------------------------------- figures


def figure_fig2(inputs: Mapping[str, str]) -> Figure:
    """Fig. 2: toy energy path; timescales, state assignment and CK, GDyNet vs VAMPnet."""
    import matplotlib.pyplot as plt

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
        )
    unit = figure_unit(*(d[0] for d in data.values()), *(d[1] for d in data.values()))
    n_ck = max(len(_states(d[1], "from_state")) for d in data.values())
    ck_h = 0.8 * n_ck + 0.4
    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, 1.5 + 2.0 + 2.6 + ck_h + 1.2))
    outer = fig.add_gridspec(
        4, 2, height_ratios=[1.5, 2.0, 2.6, ck_h], hspace=0.55, wspace=0.35,
        left=0.09, right=0.97, top=0.98, bottom=0.05,
    )  # fmt: skip
    ax_a = fig.add_subplot(outer[0, :])
    plot_energy_path(ax_a, energy)
    style.panel_letter(ax_a, "a")
    sc = None
    for col, (m, label) in enumerate(models):
        ts, ck, tau, pos = data[m]
        ax_b = fig.add_subplot(outer[1, col])
        plot_timescales(ax_b, ts, tau, title=label, unit=unit)
        if col == 0:
            style.panel_letter(ax_b, "b")
        ax_c = fig.add_subplot(outer[2, col], projection="3d")
        sc = plot_assignment(ax_c, pos, label)
        if col == 0:
            style.panel_letter(ax_c, "c", dx_in=-0.2)
        plot_ck(fig, outer[3, col], ck, title=label, letter="d" if col == 0 else None, unit=unit)
    box = outer[2, 0].get_position(fig)
    cax = fig.add_axes((box.x1 + 0.02, box.y0 + 0.25 * box.height, 0.012, 0.5 * box.height))
    cb = fig.colorbar(sc, cax=cax)
    cb.set_label("p(state 0)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    return fig


def figure_fig3(inputs: Mapping[str, str]) -> Figure:
    """Fig. 3: Si-Au cross-section, z profile, timescales, eigenvectors and CK test."""
    import matplotlib.pyplot as plt

    atoms = read_snapshot(inputs["snapshot"])
    profile = read_table(inputs["profile"], "profile")
    ts = read_table(inputs["timescales"], "timescales")
    eigen = read_table(inputs["eigen"], "eigen")
    ck = read_table(inputs["ck"], "ck")
    tau = _single_tau(ck, inputs["ck"], "ck")
    unit = figure_unit(ts, ck)
    n = len(_states(ck, "from_state"))
    ck_h = 0.75 * n + 0.4
    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, 3.0 + 2.2 + ck_h + 1.2))
    outer = fig.add_gridspec(
        3, 2, height_ratios=[3.0, 2.2, ck_h], hspace=0.55, wspace=0.35,
        left=0.09, right=0.97, top=0.98, bottom=0.05,
    )  # fmt: skip
    top = outer[0, :].subgridspec(1, 2, width_ratios=[2.0, 1.0], wspace=0.55)
    ax_b = fig.add_subplot(top[0, 0])
    plot_cross_section(ax_b, atoms)
    style.panel_letter(ax_b, "b")
    ax_c = fig.add_subplot(top[0, 1])
    plot_profile(ax_c, profile, vertical=True)
    style.panel_letter(ax_c, "c")
    ax_d = fig.add_subplot(outer[1, 0])
    plot_timescales(ax_d, ts, tau, unit=unit)
    style.panel_letter(ax_d, "d")
    plot_eigen(fig, outer[1, 1], eigen, letter="e", unit=unit)
    plot_ck(fig, outer[2, :], ck, letter="f", unit=unit)
    return fig


def figure_fig4(inputs: Mapping[str, str]) -> Figure:
    """Fig. 4: PEO/LiTFSI charge integral, timescales, eigenvectors and CK test."""
    import matplotlib.pyplot as plt

    charge = read_table(inputs["charge"], "charge")
    ts = read_table(inputs["timescales"], "timescales")
    eigen = read_table(inputs["eigen"], "eigen")
    ck = read_table(inputs["ck"], "ck")
    tau = _single_tau(ck, inputs["ck"], "ck")
    unit = figure_unit(ts, ck)
    n = len(_states(ck, "from_state"))
    ck_h = 0.75 * n + 0.4
    fig = plt.figure(figsize=(style.DOUBLE_COLUMN_IN, 2.2 + 1.9 + ck_h + 1.2))
    outer = fig.add_gridspec(
        3, 2, height_ratios=[2.2, 1.9, ck_h], hspace=0.6, wspace=0.35,
        left=0.09, right=0.97, top=0.98, bottom=0.05,
    )  # fmt: skip
    ax_c = fig.add_subplot(outer[0, 0])
    plot_charge(ax_c, charge)
    style.panel_letter(ax_c, "c")
    ax_d = fig.add_subplot(outer[0, 1])
    plot_timescales(ax_d, ts, tau, unit=unit)
    style.panel_letter(ax_d, "d")
    plot_eigen(fig, outer[1, :], eigen, letter="e", unit=unit)
    plot_ck(fig, outer[2, :], ck, letter="f", unit=unit)
    return fig


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
    fig, ax = plt.subplots(figsize=(style.SINGLE_COLUMN_IN * 1.3, 2.8))
    plot_timescales(ax, ts, title=f"global VAMPnet, {n_states} states")
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

FIGURE_BUILDERS: dict[str, Callable[[Mapping[str, str]], Figure]] = {
    "fig2": figure_fig2,
    "fig3": figure_fig3,
    "fig4": figure_fig4,
    "fig5": figure_fig5,
    "supp_fig1": figure_supp_fig1,
    "supp_fig2": figure_supp_fig2,
    "supp_fig3": figure_supp_fig3,
}


def render_figure(
    name: str,
    inputs: Mapping[str, str],
    pdf: str | Path,
    png: str | Path | None = None,
    data_label: str = "",
    dpi: int = style.PNG_DPI,
) -> None:
    """Draw figure ``name`` from ``inputs`` and write it as PDF (and PNG)."""
    if name not in FIGURE_BUILDERS:
        raise InputError(f"figure name: expected one of {', '.join(FIGURE_BUILDERS)}, got {name!r}")
    _require(inputs, FIGURE_INPUTS[name], name)
    with style.paper_style():
        fig = FIGURE_BUILDERS[name](inputs)
        style.data_footer(fig, data_label)
        style.save_figure(fig, pdf, png, dpi=dpi, title=FIGURE_TITLES[name], data_label=data_label)


# ----------------------------------------------------------------------------- tables


def _decimals(*errors: float) -> int:
    """Decimals that show the leading digit of the smallest positive uncertainty (1..4)."""
    pos = [abs(e) for e in errors if np.isfinite(e) and e > 0]
    if not pos:
        return 1
    return int(min(4, max(1, -math.floor(math.log10(min(pos))))))


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table_supp_table1(inputs: Mapping[str, str], data_label: str = "") -> tuple[pd.DataFrame, str]:
    """Supp. Table 1: charge carried by each state (charge integral at r*)."""
    charge = read_table(inputs["charge"], "charge")
    table = charge_per_state(charge, inputs["charge"])
    states = table["state"].tolist()
    md = [
        "# Supplementary Table 1. Charge carried by each state",
        "",
        "Charge integral within the first solvation shell r* (Supp. Note 3, Eq. 3).",
        "",
        _md_table(
            ["State", *map(str, states)],
            [
                ["Charge (e)", *(f"{q:+.3f}" for q in table["charge_e"])],
                ["r* (Å)", *(f"{r:.2f}" for r in table["r_star_A"])],
            ],
        ),
        "",
        f"Data: {data_label}" if data_label else "",
    ]
    return table, "\n".join(md).rstrip() + "\n"


def table_supp_table2(inputs: Mapping[str, str], data_label: str = "") -> tuple[pd.DataFrame, str]:
    """Supp. Table 2: diffusion coefficient D_ij of each transition, in 1e-7 cm^2/s ± 95% CI."""
    import pandas as pd

    diff = read_table(inputs["diffusion"], "diffusion")
    d = diff.sort_values(["tau_ps", "from_state", "to_state"]).reset_index(drop=True)
    d_val = d["D_cm2_per_s"].to_numpy(float) / D_UNIT
    lo = d["ci_low_cm2_per_s"].to_numpy(float) / D_UNIT
    hi = d["ci_high_cm2_per_s"].to_numpy(float) / D_UNIT
    table = pd.DataFrame(
        {
            "tau_ps": d["tau_ps"].astype(float),
            "from_state": d["from_state"].astype(int),
            "to_state": d["to_state"].astype(int),
            "D_1e-7_cm2_per_s": d_val,
            "ci_low_1e-7_cm2_per_s": lo,
            "ci_high_1e-7_cm2_per_s": hi,
            "pm_1e-7_cm2_per_s": 0.5 * (hi - lo),
        }
    )
    md = [
        "# Supplementary Table 2. Diffusion coefficient of each state transition",
        "",
        "D_ij(τ) from the transition mean-squared displacement (Eqs. 13-14), ± half the 95% "
        "confidence interval. Unit: 1e-7 cm²/s.",
    ]
    for tau, g in table.groupby("tau_ps"):
        unit, scale = style.time_unit(float(tau))
        states = sorted(set(g["from_state"]) | set(g["to_state"]))
        dec = _decimals(*g["pm_1e-7_cm2_per_s"])
        rows = []
        for i in states:
            row = [f"i = {i}"]
            for j in states:
                cell = g[(g["from_state"] == i) & (g["to_state"] == j)]
                if cell.empty:
                    row.append("–")
                    continue
                v, pm = (
                    float(cell["D_1e-7_cm2_per_s"].iloc[0]),
                    float(cell["pm_1e-7_cm2_per_s"].iloc[0]),
                )
                row.append(f"{v:.{dec}f} ± {pm:.{dec}f}" if np.isfinite(pm) else f"{v:.{dec}f}")
            rows.append(row)
        md += [
            "",
            f"τ = {float(tau) * scale:g} {unit}",
            "",
            _md_table(["Transition", *(f"j = {j}" for j in states)], rows),
        ]
    if data_label:
        md += ["", f"Data: {data_label}"]
    return table, "\n".join(md) + "\n"


TABLE_BUILDERS: dict[str, Callable[..., tuple[pd.DataFrame, str]]] = {
    "supp_table1": table_supp_table1,
    "supp_table2": table_supp_table2,
}


def render_table(
    name: str,
    inputs: Mapping[str, str],
    csv: str | Path,
    md: str | Path | None,
    data_label: str = "",
) -> None:
    """Build table ``name`` from ``inputs`` and write it as CSV (and Markdown)."""
    from gdyn.files import write_csv, write_text

    if name not in TABLE_BUILDERS:
        raise InputError(f"table name: expected one of {', '.join(TABLE_BUILDERS)}, got {name!r}")
    _require(inputs, TABLE_INPUTS[name], name)
    table, text = TABLE_BUILDERS[name](inputs, data_label)
    write_csv(csv, table)
    if md is not None:
        write_text(md, text)


# ----------------------------------------------------------------------------- CLI


def _inputs_arg(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--inputs: not valid JSON ({exc})") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise argparse.ArgumentTypeError("--inputs: expected a JSON object of name -> path")
    return value


def _cmd_figure(args: argparse.Namespace) -> int:
    render_figure(args.name, args.inputs, args.pdf, args.png, args.data_label, args.dpi)
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    render_table(args.name, args.inputs, args.csv, args.md, args.data_label)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``figure``, ``table`` and ``compare`` to the ``gdyn`` CLI."""
    from gdyn import compare

    p = subparsers.add_parser("figure", help="draw one paper figure (PDF + PNG) from analysis CSVs")
    p.add_argument("name", choices=sorted(FIGURE_BUILDERS))
    p.add_argument("pdf", help="output PDF")
    p.add_argument("--png", help="also write this PNG")
    p.add_argument("--inputs", type=_inputs_arg, required=True, help="JSON: input name -> path")
    p.add_argument("--data-label", default="", help="where the data came from (figure footer)")
    p.add_argument("--dpi", type=int, default=style.PNG_DPI, help="PNG resolution")
    p.set_defaults(func=_cmd_figure)

    t = subparsers.add_parser("table", help="write one supplementary table (CSV + Markdown)")
    t.add_argument("name", choices=sorted(TABLE_BUILDERS))
    t.add_argument("csv", help="output CSV")
    t.add_argument("--md", help="also write this Markdown table")
    t.add_argument("--inputs", type=_inputs_arg, required=True, help="JSON: input name -> path")
    t.add_argument("--data-label", default="", help="where the data came from")
    t.set_defaults(func=_cmd_table)

    compare.register(subparsers)
