"""Paper figures and supplementary tables as pure functions of the analysis CSVs.

:func:`render_figure` draws one of the paper's figures (Fig. 2-5, Supp. Figs. 1-3) from
the files named in its ``inputs`` (input name -> path, see
:data:`gdyn.plots.registry.FIGURE_INPUTS`);
:func:`render_table` writes Supp. Table 1 or 2. File formats are those of
``docs/contracts.md``; the ``gdyn figure`` and ``gdyn table`` commands are in
:mod:`gdyn.cli.figures`.

Modules: :mod:`~gdyn.plots.style` (sizes, colours, saving), :mod:`~gdyn.plots.io` (reading
the contracts), :mod:`~gdyn.plots.panels_koopman`, :mod:`~gdyn.plots.panels_structure` and
:mod:`~gdyn.plots.panels_atoms` (one panel each; the last draws pictures of atoms with
:mod:`~gdyn.plots.render`: OVITO, or a matplotlib fallback), :mod:`~gdyn.plots.figures`,
:mod:`~gdyn.plots.tables` and :mod:`~gdyn.plots.registry` (which figure needs which files,
built from :mod:`gdyn.layout`). The package exports what the CLI, the workflow, the
``.plot()`` methods of :mod:`gdyn.koopman` and :mod:`gdyn.compare` use.

Importing this package is light: matplotlib, pandas, ASE and OVITO are imported inside the
functions that use them, so the Snakefile can import it to list figure inputs.
"""

from __future__ import annotations

from gdyn.plots.figures import render_figure
from gdyn.plots.io import charge_per_state, read_table
from gdyn.plots.panels_arrhenius import save_arrhenius
from gdyn.plots.panels_koopman import plot_ck, plot_eigen, plot_timescales
from gdyn.plots.panels_selection import render_selection
from gdyn.plots.registry import (
    SHORT_TITLES,
    figure_configuration_paths,
    figure_input_paths,
    figure_system,
    system_data_label,
)
from gdyn.plots.render import RendererUnavailable
from gdyn.plots.tables import render_table

__all__ = [
    "SHORT_TITLES",
    "RendererUnavailable",
    "charge_per_state",
    "figure_configuration_paths",
    "figure_input_paths",
    "figure_system",
    "plot_ck",
    "plot_eigen",
    "plot_timescales",
    "read_table",
    "render_figure",
    "render_selection",
    "render_table",
    "save_arrhenius",
    "system_data_label",
]
