"""One visual style for every paper figure: sizes, fonts, colours, panel letters, units.

Light (matplotlib is imported inside the functions that draw), so that quick-look PNGs
written by other stages can share the palette (``state_color``) without pulling in the
figure builders. The matplotlib backend is the caller's choice (``gdyn.cli`` sets Agg).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.files import atomic_path

# Nature's double-column width is 183 mm; single column 89 mm.
DOUBLE_COLUMN_IN = 7.2
SINGLE_COLUMN_IN = 3.5
PNG_DPI = 300

# The paper's CK convention: prediction blue, estimate red.
PREDICTED_COLOR = "#1f5fa8"
ESTIMATED_COLOR = "#c8102e"
REFERENCE_COLOR = "0.55"
# Colour-blind safe (Okabe-Ito), state 0 first; states beyond 8 cycle.
STATE_COLORS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)

RC_PARAMS: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.linewidth": 0.7,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.7,
    "ytick.major.width": 0.7,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    # Editable text in the PDF (Type 42) rather than outlines (Type 3).
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "figure.dpi": 100,
    "mathtext.default": "regular",
}


def state_color(state: int) -> str:
    """The colour of learned state ``state`` in every figure."""
    return STATE_COLORS[int(state) % len(STATE_COLORS)]


@contextmanager
def paper_style() -> Iterator[None]:
    """Matplotlib's rc parameters set to the paper style, restored on exit."""
    import matplotlib.pyplot as plt

    with plt.rc_context(RC_PARAMS):
        yield


def time_unit(max_ps: float) -> tuple[str, float]:
    """Display unit for times up to ``max_ps``: ('ps', 1) or ('ns', 1e-3)."""
    return ("ns", 1e-3) if max_ps >= 1000.0 else ("ps", 1.0)


def ci_yerr(value: Any, low: Any, high: Any) -> np.ndarray:
    """Asymmetric error bars from CI bounds; a missing or inverted bound draws no bar."""
    v = np.asarray(value, dtype=float)
    lo = np.clip(_nan_to_zero(v - np.asarray(low, dtype=float)), 0.0, None)
    hi = np.clip(_nan_to_zero(np.asarray(high, dtype=float) - v), 0.0, None)
    return np.vstack([lo, hi])


def _nan_to_zero(values: Any) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)


def panel_letter(ax: Any, letter: str, dx_in: float = -0.45, dy_in: float = 0.06) -> None:
    """The paper's bold lower-case panel letter, ``dx_in`` inches left of ``ax``'s top left.

    An offset in inches (not axes fractions) keeps letters aligned whatever the panel width.
    """
    from matplotlib.transforms import ScaledTranslation

    fig = ax.get_figure()
    where = ax.transAxes + ScaledTranslation(dx_in, dy_in, fig.dpi_scale_trans)
    text = ax.text2D if hasattr(ax, "text2D") else ax.text
    text(0.0, 1.0, letter, transform=where, fontsize=10, fontweight="bold", va="bottom", ha="left")


def plain_log_ticks(axis: Any) -> None:
    """Log-scale ticks written as plain numbers (0.5, 10, 200) rather than 2x10^2."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def data_footer(fig: Any, data_label: str) -> None:
    """State where the data came from, below everything drawn so far.

    So that a simulated toy is never mistaken for the paper's trajectory.
    """
    if not data_label:
        return
    renderer = fig.canvas.get_renderer()
    bbox = fig.get_tightbbox(renderer)  # inches
    fig.text(
        bbox.x0 / fig.get_figwidth(),
        (bbox.y0 - 0.05) / fig.get_figheight(),
        f"Data: {data_label}",
        fontsize=6,
        color="0.35",
        ha="left",
        va="top",
    )


def save_figure(
    fig: Any,
    pdf: str | Path,
    png: str | Path | None,
    dpi: int = PNG_DPI,
    title: str = "",
    data_label: str = "",
) -> None:
    """Write ``fig`` to PDF (and PNG) atomically, then close it.

    The title and data source also go into the files' metadata, so a figure copied out of
    the results tree still says where its data came from.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(pdf, suffix=".pdf") as tmp:
            # No CreationDate: the same inputs give the same bytes.
            meta = {"Creator": "gdyn", "Title": title, "Subject": f"Data: {data_label}",
                    "CreationDate": None}
            fig.savefig(tmp, format="pdf", metadata=meta)
        if png is not None:
            with atomic_path(png, suffix=".png") as tmp:
                meta = {"Software": "gdyn", "Title": title, "Description": f"Data: {data_label}"}
                fig.savefig(tmp, format="png", dpi=dpi, metadata=meta)
    finally:
        plt.close(fig)
