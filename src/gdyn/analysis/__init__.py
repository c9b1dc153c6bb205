"""State-weighted analyses of the learned states: structure (RDF, charge, profiles, q3,
snapshots) and transport (D_ij, Nernst-Einstein shares).

The API (exported from :mod:`gdyn` too) works on trajectories and probabilities and returns
exactly the tables the workflow writes::

    rdf = state_weighted_rdf(trajs, probs, ["S"], r_max_A=6.0)        # rdf.csv
    charge = charge_integral(rdf, "N", {"Li": 1, "N": -1})            # charge.csv
    diffusion, cond = conduction(trajs, probs, tau_ps=10.0, temperature_K=300.0)

``trajs`` is a :class:`gdyn.trajectory.Trajectory` or a list of them, ``probs`` the state
probabilities (F, n_sets, S) of each, aligned frame by frame (NaN rows: unscored). The
workflow's path, :func:`load_analysis` (test pieces + probabilities at tau*, states in
Koopman order), gives :class:`Piece` objects that these functions take with ``probs=None``.

Modules: :mod:`~gdyn.analysis.inputs` (standard inputs), :mod:`~gdyn.analysis.geometry`,
:mod:`~gdyn.analysis.rdf`, :mod:`~gdyn.analysis.charge`, :mod:`~gdyn.analysis.profile`
(profile and positions), :mod:`~gdyn.analysis.snapshot`, :mod:`~gdyn.analysis.representative`
(Fig. 4b), :mod:`~gdyn.analysis.q3`, :mod:`~gdyn.analysis.transport` (conduction).
The ``gdyn rdf | charge | ...`` commands that write the workflow's files are in
:mod:`gdyn.cli.analysis`, their rules in workflow/rules/structure.smk.

Importing this package is light (numpy; no pandas, matplotlib, ASE, freud, scipy).
"""

from __future__ import annotations

from gdyn.analysis.charge import (
    charge_curve,
    charge_integral,
    charge_table,
    fit_first_peak,
    gaussian,
)
from gdyn.analysis.geometry import fold_fractional, minimum_image, set_centres
from gdyn.analysis.inputs import (
    Analysis,
    Piece,
    apply_selection,
    as_pieces,
    flag_states,
    load_analysis,
    load_summary,
    match_probs,
    population_order,
    read_probs,
    tau_star_probs_path,
)
from gdyn.analysis.profile import (
    MAX_POSITION_ROWS,
    positions_table,
    profile_table,
    state_profile,
)
from gdyn.analysis.q3 import q3_distribution, q3_table, steinhardt_q3
from gdyn.analysis.rdf import (
    RdfCounts,
    first_peak_index,
    first_shell,
    rdf_counts,
    rdf_from_counts,
    state_weighted_rdf,
)
from gdyn.analysis.representative import (
    Representative,
    configuration_atoms,
    representative_configurations,
    representative_frames,
    shell_members,
)
from gdyn.analysis.snapshot import plot_snapshot, snapshot_atoms
from gdyn.analysis.transport import conduction, conduction_tables, unwrap

__all__ = [
    "MAX_POSITION_ROWS",
    "Analysis",
    "Piece",
    "RdfCounts",
    "Representative",
    "apply_selection",
    "as_pieces",
    "charge_curve",
    "charge_integral",
    "charge_table",
    "conduction",
    "conduction_tables",
    "configuration_atoms",
    "first_peak_index",
    "first_shell",
    "fit_first_peak",
    "flag_states",
    "fold_fractional",
    "gaussian",
    "load_analysis",
    "load_summary",
    "match_probs",
    "minimum_image",
    "plot_snapshot",
    "population_order",
    "positions_table",
    "profile_table",
    "q3_distribution",
    "q3_table",
    "rdf_counts",
    "rdf_from_counts",
    "read_probs",
    "representative_configurations",
    "representative_frames",
    "set_centres",
    "shell_members",
    "snapshot_atoms",
    "state_profile",
    "state_weighted_rdf",
    "steinhardt_q3",
    "tau_star_probs_path",
    "unwrap",
]
