"""The paper's toy system: Li hopping in a frozen FCC S lattice (Fig. 2).

- :mod:`gdyn.toy.potential`: settings, the Born-Mayer potential (numpy), the energy path;
- :mod:`gdyn.toy.sites`: geometric site labels and their two-state ground truth;
- :mod:`gdyn.toy.md`: the OpenMM simulation and the job / raw-trajectory files;
- :mod:`gdyn.toy.calibrate`: the paper's two ground-truth observables (tet population,
  relaxation time) by quadrature and by MD with bootstrap errors (docs/toy.md, issue 13).

OpenMM is imported only when a simulation runs, so ``import gdyn.toy`` does not need it.
"""

from gdyn.toy.calibrate import (
    bootstrap_site_statistics,
    transition_state_theory,
    wall_r_for_population,
)
from gdyn.toy.md import (
    JOB_KEYS,
    SimulationError,
    build_system,
    energies_and_forces,
    external_force_expression,
    job_seed,
    li_cell,
    load_job,
    make_context,
    save_job,
    simulate,
)
from gdyn.toy.potential import (
    EV_TO_KJ_PER_MOL,
    KB_EV_PER_K,
    LI,
    LI_MASS_AMU,
    S_BASIS,
    S,
    ToySettings,
    boltzmann_tet_population,
    born_mayer_energy_eV,
    born_mayer_prefactor,
    energy_path_table,
    minimum_image_energy_eV,
    parse_settings,
    plot_energy_path,
    s_positions,
    site_energies_meV,
    steps_per_frame,
    tet_oct_tet_path,
)
from gdyn.toy.sites import (
    OCT_SITES,
    OCTAHEDRAL,
    SITE_NAMES,
    TET_SITES,
    TETRAHEDRAL,
    count_transitions,
    label_sites,
    read_site_labels,
    site_index,
    site_statistics,
    two_state_msm,
)

__all__ = [
    "EV_TO_KJ_PER_MOL",
    "JOB_KEYS",
    "KB_EV_PER_K",
    "LI",
    "LI_MASS_AMU",
    "OCTAHEDRAL",
    "OCT_SITES",
    "SITE_NAMES",
    "S_BASIS",
    "TETRAHEDRAL",
    "TET_SITES",
    "S",
    "SimulationError",
    "ToySettings",
    "boltzmann_tet_population",
    "bootstrap_site_statistics",
    "born_mayer_energy_eV",
    "born_mayer_prefactor",
    "build_system",
    "count_transitions",
    "energies_and_forces",
    "energy_path_table",
    "external_force_expression",
    "job_seed",
    "label_sites",
    "li_cell",
    "load_job",
    "make_context",
    "minimum_image_energy_eV",
    "parse_settings",
    "plot_energy_path",
    "read_site_labels",
    "s_positions",
    "save_job",
    "simulate",
    "site_energies_meV",
    "site_index",
    "site_statistics",
    "steps_per_frame",
    "tet_oct_tet_path",
    "transition_state_theory",
    "two_state_msm",
    "wall_r_for_population",
]
