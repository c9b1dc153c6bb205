"""Panels of the structure and transport analyses and of the toy's energy path.

Energy path (Fig. 2a), state assignment in the cell (Fig. 2c), cross section and profile
(Fig. 3b-c), charge integral (Fig. 4c), conduction shares (Fig. 5), q3 (Supp. Fig. 2) and
the RDF grid (Supp. Fig. 3). One function per panel; matplotlib is imported inside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.plots import style
from gdyn.plots.io import _states, charge_per_state

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def plot_cross_section(ax: Axes, atoms: Any, slab_fraction: float = 0.5) -> None:
    """A slab of the snapshot seen along y, targets coloured by their state mix, as a
    scatter plot (Fig. 3b itself is the rendered picture of
    :func:`gdyn.plots.panels_atoms.plot_state_cross_section`)."""
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


def plot_charge(ax: Axes, charge: pd.DataFrame) -> None:
    """Fig. 4c: charge integral around a target vs radius, per state, with r* marked."""
    per_state = charge_per_state(charge)
    near = set()  # the Koopman stage's near-empty states (issue 15): named, not drawn
    if "near_empty" in charge.columns:
        near = {int(s) for s in charge.loc[charge["near_empty"].astype(bool), "state"]}
    for s in _states(charge):
        g = charge[charge["state"] == s].sort_values("r_A")
        c = style.state_color(s)
        if s in near:
            ax.plot([], [], color=style.REFERENCE_COLOR, label=f"state {s}: near-empty")
            continue
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
        yerr=style.ci_yerr(c["percent"], c["ci_low_percent"], c["ci_high_percent"]),
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
