"""Paper figures and supplementary tables as pure functions of the analysis CSVs.

:func:`render_figure` draws one of the paper's figures (Fig. 2-5, Supp. Figs. 1-3) from
the files named in its ``inputs`` (input name -> path, see :data:`FIGURE_INPUTS`);
:func:`render_table` writes Supp. Table 1 or 2. File formats are those of
``docs/contracts.md``; the ``gdyn figure`` and ``gdyn table`` commands are in
:mod:`gdyn.cli.figures`.

Modules: :mod:`~gdyn.plots.style` (sizes, colours, saving), :mod:`~gdyn.plots.io` (reading
the contracts), :mod:`~gdyn.plots.panels_koopman`, :mod:`~gdyn.plots.panels_structure` and
:mod:`~gdyn.plots.panels_atoms` (one panel each; the last draws pictures of atoms with
:mod:`~gdyn.plots.render`: OVITO, or a matplotlib fallback), :mod:`~gdyn.plots.figures`,
:mod:`~gdyn.plots.tables` and :mod:`~gdyn.plots.registry` (which figure needs which files,
built from :mod:`gdyn.layout`).

Importing this package is light: matplotlib, pandas, ASE and OVITO are imported inside the
functions that use them, so the Snakefile can import it to list figure inputs.
"""

from __future__ import annotations

from gdyn.errors import InputError
from gdyn.plots import render, style
from gdyn.plots.figures import (
    FIGURE_BUILDERS,
    FIGURE_TITLES,
    PICTURE_FIGURES,
    figure_fig2,
    figure_fig3,
    figure_fig4,
    figure_fig5,
    figure_supp_fig1,
    figure_supp_fig2,
    figure_supp_fig3,
    render_figure,
    write_configurations,
)
from gdyn.plots.io import (
    TABLE_COLUMNS,
    charge_per_state,
    read_representative,
    read_snapshot,
    read_table,
)
from gdyn.plots.panels_atoms import (
    plot_fcc_cell,
    plot_representative,
    plot_state_cross_section,
    plot_structure,
)
from gdyn.plots.panels_koopman import Unit, figure_unit, plot_ck, plot_eigen, plot_timescales
from gdyn.plots.panels_structure import (
    plot_assignment,
    plot_charge,
    plot_conduction,
    plot_cross_section,
    plot_energy_path,
    plot_profile,
    plot_q3,
    plot_rdf_grid,
)
from gdyn.plots.registry import (
    FIGURE_INPUTS,
    SHORT_TITLES,
    TABLE_INPUTS,
    figure_configuration_paths,
    figure_input_paths,
    figure_system,
    system_data_label,
)
from gdyn.plots.tables import (
    D_UNIT,
    TABLE_BUILDERS,
    render_table,
    table_supp_table1,
    table_supp_table2,
)

__all__ = [
    "D_UNIT",
    "FIGURE_BUILDERS",
    "FIGURE_INPUTS",
    "FIGURE_TITLES",
    "PICTURE_FIGURES",
    "SHORT_TITLES",
    "TABLE_BUILDERS",
    "TABLE_COLUMNS",
    "TABLE_INPUTS",
    "InputError",
    "Unit",
    "charge_per_state",
    "figure_configuration_paths",
    "figure_fig2",
    "figure_fig3",
    "figure_fig4",
    "figure_fig5",
    "figure_input_paths",
    "figure_supp_fig1",
    "figure_supp_fig2",
    "figure_supp_fig3",
    "figure_system",
    "figure_unit",
    "plot_assignment",
    "plot_charge",
    "plot_ck",
    "plot_conduction",
    "plot_cross_section",
    "plot_eigen",
    "plot_energy_path",
    "plot_fcc_cell",
    "plot_profile",
    "plot_q3",
    "plot_rdf_grid",
    "plot_representative",
    "plot_state_cross_section",
    "plot_structure",
    "plot_timescales",
    "read_representative",
    "read_snapshot",
    "read_table",
    "render",
    "render_figure",
    "render_table",
    "style",
    "system_data_label",
    "table_supp_table1",
    "table_supp_table2",
    "write_configurations",
]
