"""Panels of the Koopman analysis: implied timescales, CK test grid, eigenvectors.

One function per panel, drawing into axes (or a subplot spec) it is given; the figures
in :mod:`gdyn.plots.figures` compose them. Matplotlib is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.plots import style
from gdyn.plots.io import _states

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec

Unit = tuple[str, float]  # display unit of times and the factor from ps, e.g. ("ns", 1e-3)


def figure_unit(*frames: pd.DataFrame) -> Unit:
    """One time unit for a whole figure, from the longest lag any of its tables holds."""
    longest = max(float(f["lag_ps"].max()) for f in frames if "lag_ps" in f.columns)
    return style.time_unit(longest)


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
                yerr=style.ci_yerr(g["estimated"], g["estimated_ci_low"], g["estimated_ci_high"]),
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
            yerr=style.ci_yerr(comp, g["ci_low"], g["ci_high"]),
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
