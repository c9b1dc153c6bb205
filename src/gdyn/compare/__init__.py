"""The paper comparison: every headline number of Xie et al. 2019 beside this run's value.

``gdyn compare OUT.md --csv OUT.csv --systems JSON --inputs JSON`` writes one row per
headline number with the paper's value, this run's value (with its 95% CI where the
analysis has one), and the data source of each, so that a simulated toy is never mistaken
for the paper's trajectory. Systems take the role of the paper's toy, Si-Au or PEO/LiTFSI
system by the figures their config lists (``fig2`` -> toy, ...) or, failing that, by name.
Rows of a role no configured system plays say "not run in this config". The ``gdyn
compare`` command is in :mod:`gdyn.cli.figures`.

Modules: :mod:`~gdyn.compare.roles` (which system plays which role, the files read),
:mod:`~gdyn.compare.headlines` (the paper's numbers and each row's extractor),
:mod:`~gdyn.compare.report` (the table, data sources and caveats).
"""

from gdyn.compare.headlines import (
    PAPER_CHARGES,
    PAPER_D,
    PAPER_POPULATIONS,
    PAPER_TOY_TET,
    global_from_local,
    global_timescale_from_local,
    headlines,
    local_koopman_matrix,
    toy_tet_population,
)
from gdyn.compare.report import (
    CALIBRATED_KEYS,
    build_comparison,
    caveat,
    data_source,
    is_calibrated_toy,
    within_ci,
    write_comparison,
)
from gdyn.compare.roles import (
    MISSING_MODEL,
    NOT_RUN,
    ROLES,
    Context,
    Headline,
    Role,
    Value,
    comparison_inputs,
    comparison_settings,
    system_roles,
    toy_models,
)

__all__ = [
    "CALIBRATED_KEYS",
    "MISSING_MODEL",
    "NOT_RUN",
    "PAPER_CHARGES",
    "PAPER_D",
    "PAPER_POPULATIONS",
    "PAPER_TOY_TET",
    "ROLES",
    "Context",
    "Headline",
    "Role",
    "Value",
    "build_comparison",
    "caveat",
    "comparison_inputs",
    "comparison_settings",
    "data_source",
    "global_from_local",
    "global_timescale_from_local",
    "headlines",
    "is_calibrated_toy",
    "local_koopman_matrix",
    "system_roles",
    "toy_models",
    "toy_tet_population",
    "within_ci",
    "write_comparison",
]
