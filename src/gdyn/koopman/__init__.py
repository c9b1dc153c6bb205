"""Koopman analysis of trained models: K(tau), timescales vs lag, tau*, CK test, eigenvectors.

The state probabilities of a softmax network are the basis functions of a VAMPnet-style
Koopman model (Methods, "Determination of the relaxation timescales"):

* ``K(tau) = C00^+ C01`` from the instantaneous and time-lagged covariances of the
  (non-mean-free) probabilities, pooled over all target sets and trajectories; lag pairs are
  rows of one trajectory whose frames differ by exactly the lag (:mod:`.estimate`).
* ``t_i(tau) = -tau / ln|lambda_i(tau)|`` for every model of the lag grid (:mod:`.spectrum`).
* tau*: the smallest lag from which every resolved timescale stays constant within its 95 %
  confidence interval (:mod:`.tau_star`; a config value overrides it).
* CK test at tau*: ``K(tau*)^n`` against ``K(n tau*)`` re-estimated from the same
  probabilities at the longer lag.
* Eigen-decomposition of ``K(tau*)``: right eigenvectors in the state basis (Figs. 3e, 4e)
  and the stationary distribution (state populations).

Confidence intervals (:mod:`.ci`) are Student-t intervals over disjoint groups of the test
data. The API for notebooks is :mod:`.model` (:class:`KoopmanModel`, :class:`CKTest`,
:class:`ImpliedTimescales`, :func:`implied_timescales`); the workflow stage
(:func:`run_koopman`, :mod:`.analysis`) is built on it. Probs files: :mod:`.probs`.

Note: the submodule ``gdyn.koopman.spectrum`` shares its name with the function
:func:`spectrum` re-exported here, so the package attribute ``spectrum`` is the function;
import the module's other names with ``from gdyn.koopman.spectrum import ...``.
"""

from gdyn.koopman.analysis import (
    TauStarResult,
    analyse_tau_star,
    ck_table,
    eigen_table,
    parse_settings,
    populations_table,
    run_koopman,
    timescales_table,
)
from gdyn.koopman.ci import (
    CI_FORMULA,
    CI_LEVEL,
    CI_METHODS,
    DEFAULT_CI_N,
    CISettings,
    Group,
    chunk_labels,
    ci_groups,
    parse_ci,
    resolve_groups,
    t_interval,
)
from gdyn.koopman.estimate import (
    C00_EPSILON,
    PAIR_BLOCK,
    covariance_sums,
    estimate_koopman,
    koopman_matrix,
    lag_pairs,
)
from gdyn.koopman.model import (
    CKTest,
    ImpliedTimescales,
    KoopmanModel,
    LagResult,
    analyse_lag,
    implied_timescales,
)
from gdyn.koopman.probs import Probs, as_probs, load_probs
from gdyn.koopman.spectrum import (
    Spectrum,
    align_spectrum,
    ck_deviation,
    ck_predictions,
    permute_states,
    spectrum,
    state_order,
    timescales_from_eigenvalues,
)
from gdyn.koopman.tau_star import TauStar, select_tau_star

__all__ = [
    "C00_EPSILON",
    "CI_FORMULA",
    "CI_LEVEL",
    "CI_METHODS",
    "DEFAULT_CI_N",
    "PAIR_BLOCK",
    "CISettings",
    "CKTest",
    "Group",
    "ImpliedTimescales",
    "KoopmanModel",
    "LagResult",
    "Probs",
    "Spectrum",
    "TauStar",
    "TauStarResult",
    "align_spectrum",
    "analyse_lag",
    "analyse_tau_star",
    "as_probs",
    "chunk_labels",
    "ci_groups",
    "ck_deviation",
    "ck_predictions",
    "ck_table",
    "covariance_sums",
    "eigen_table",
    "estimate_koopman",
    "implied_timescales",
    "koopman_matrix",
    "lag_pairs",
    "load_probs",
    "parse_ci",
    "parse_settings",
    "permute_states",
    "populations_table",
    "resolve_groups",
    "run_koopman",
    "select_tau_star",
    "spectrum",
    "state_order",
    "t_interval",
    "timescales_from_eigenvalues",
    "timescales_table",
]
