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
:mod:`~gdyn.compare.report` (the table, data sources and caveats). The package exports
what the CLI and the workflow use; the rest is imported from its module.
"""

from gdyn.compare.report import write_comparison
from gdyn.compare.roles import comparison_inputs, comparison_settings

__all__ = ["comparison_inputs", "comparison_settings", "write_comparison"]
