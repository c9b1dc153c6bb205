"""Koopman analysis of trained models: K(tau), timescales vs lag, tau*, CK test, eigenvectors.

The state probabilities of a softmax network are the basis functions of a VAMPnet-style
Koopman model (Methods, "Determination of the relaxation timescales"):

* ``K(tau) = C00^+ C01`` from the instantaneous and time-lagged covariances of the
  (non-mean-free) probabilities, pooled over all target sets and trajectories; lag pairs are
  rows of one trajectory whose frames differ by exactly the lag (:mod:`.estimate`).
* ``t_i(tau) = -tau / ln|lambda_i(tau)|`` for every model of the lag grid (:mod:`.spectrum`).
* Near-empty states (too little population or too few effective samples to estimate their
  row of K) are excluded and K is estimated on the surviving states; collapsed models are
  detected (:mod:`.selection`). Optional reversible estimator (:mod:`.estimate`).
* Flags per process: faster than the lag, complex / negative eigenvalue, converged (no
  bootstrap-significant difference to later lags, no trend) (:mod:`.tau_star`). tau*: the
  smallest lag with converged timescales whose CK passes, never one with a flagged process
  (none when no lag qualifies; a config value overrides it).
* CK test: ``K(tau)^n`` against ``K(n tau)`` re-estimated from the same probabilities at
  the longer lag, both on the same bootstrap resamples, with a calibrated verdict
  (studentised max-statistic, family-wise alpha; :mod:`.verdict`), at tau* and every lag.
* Lifetimes and mean first-passage times of the states (:mod:`.kinetics`).
* Eigen-decomposition of ``K(tau*)``: right eigenvectors in the state basis (Figs. 3e, 4e)
  and the stationary distribution (state populations).

Every interval comes from one uncertainty engine (:mod:`.uncertainty`): a block bootstrap
over time by default (percentile intervals), or the paper's CI groups (Student-t). The API for notebooks is :mod:`.model` (:class:`KoopmanModel`), :mod:`.ck`
(:class:`CKTest`) and :mod:`.timescales` (:class:`ImpliedTimescales`,
:func:`implied_timescales`); the workflow stage
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
from gdyn.koopman.ck import CKTest
from gdyn.koopman.estimate import (
    C00_EPSILON,
    ESTIMATORS,
    PAIR_BLOCK,
    covariance_sums,
    estimate_koopman,
    koopman_matrix,
    lag_pairs,
    lagged_covariances,
)
from gdyn.koopman.kinetics import lifetimes, mfpt_matrix
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs, as_probs, load_probs
from gdyn.koopman.selection import (
    DEFAULT_MIN_POPULATION,
    DEFAULT_MIN_SAMPLES,
    MIN_SURVIVING_MASS,
    StateSelection,
    effective_samples,
    renormalise,
    select_states,
    state_populations,
    vamp2_score,
)
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
from gdyn.koopman.tau_star import TauStar, TimescaleFlags, select_tau_star, timescale_flags
from gdyn.koopman.timescales import ImpliedTimescales, LagResult, analyse_lag, implied_timescales
from gdyn.koopman.uncertainty import Replicates, percentile_interval
from gdyn.koopman.verdict import (
    DEFAULT_CK_ALPHA,
    DEFAULT_CK_TOLERANCE,
    CKVerdict,
    ck_verdict,
    ck_verdict_replicates,
)

__all__ = [
    "C00_EPSILON",
    "CI_FORMULA",
    "CI_LEVEL",
    "CI_METHODS",
    "DEFAULT_CI_N",
    "DEFAULT_CK_ALPHA",
    "DEFAULT_CK_TOLERANCE",
    "DEFAULT_MIN_POPULATION",
    "DEFAULT_MIN_SAMPLES",
    "ESTIMATORS",
    "MIN_SURVIVING_MASS",
    "PAIR_BLOCK",
    "CISettings",
    "CKTest",
    "CKVerdict",
    "Group",
    "ImpliedTimescales",
    "KoopmanModel",
    "LagResult",
    "Probs",
    "Replicates",
    "Spectrum",
    "StateSelection",
    "TauStar",
    "TauStarResult",
    "TimescaleFlags",
    "align_spectrum",
    "analyse_lag",
    "analyse_tau_star",
    "as_probs",
    "chunk_labels",
    "ci_groups",
    "ck_deviation",
    "ck_predictions",
    "ck_table",
    "ck_verdict",
    "ck_verdict_replicates",
    "covariance_sums",
    "effective_samples",
    "eigen_table",
    "estimate_koopman",
    "implied_timescales",
    "koopman_matrix",
    "lag_pairs",
    "lagged_covariances",
    "lifetimes",
    "load_probs",
    "mfpt_matrix",
    "parse_ci",
    "parse_settings",
    "percentile_interval",
    "permute_states",
    "populations_table",
    "renormalise",
    "resolve_groups",
    "run_koopman",
    "select_states",
    "select_tau_star",
    "spectrum",
    "state_order",
    "state_populations",
    "t_interval",
    "timescale_flags",
    "timescales_from_eigenvalues",
    "timescales_table",
    "vamp2_score",
]
