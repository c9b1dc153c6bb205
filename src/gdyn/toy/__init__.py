"""The paper's toy system: Li hopping in a frozen FCC S lattice (Fig. 2).

- :mod:`gdyn.toy.potential`: settings, the Born-Mayer potential (numpy), the energy path;
- :mod:`gdyn.toy.sites`: geometric site labels and their two-state ground truth;
- :mod:`gdyn.toy.md`: the OpenMM simulation and the job / raw-trajectory files;
- :mod:`gdyn.toy.calibrate`: the paper's two ground-truth observables (tet population,
  relaxation time) by quadrature and by MD with bootstrap errors (docs/toy.md, issue 13).

OpenMM is imported only when a simulation runs, so ``import gdyn.toy`` does not need it.
The package exports what the CLI, :mod:`gdyn.plots`, :mod:`gdyn.compare` and
docs/tutorial.py use; the rest is imported from its module.
"""

from gdyn.toy.calibrate import bootstrap_site_statistics, transition_state_theory
from gdyn.toy.md import SimulationError, li_cell, load_job, save_job, simulate
from gdyn.toy.potential import (
    ToySettings,
    energy_path_table,
    parse_settings,
    plot_energy_path,
    site_energies_meV,
)
from gdyn.toy.sites import (
    OCT_SITES,
    OCTAHEDRAL,
    TET_SITES,
    TETRAHEDRAL,
    count_transitions,
    read_site_labels,
    site_statistics,
)

__all__ = [
    "OCTAHEDRAL",
    "OCT_SITES",
    "TETRAHEDRAL",
    "TET_SITES",
    "SimulationError",
    "ToySettings",
    "bootstrap_site_statistics",
    "count_transitions",
    "energy_path_table",
    "li_cell",
    "load_job",
    "parse_settings",
    "plot_energy_path",
    "read_site_labels",
    "save_job",
    "simulate",
    "site_energies_meV",
    "site_statistics",
    "transition_state_theory",
]
