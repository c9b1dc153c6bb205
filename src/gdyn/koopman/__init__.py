"""Koopman analysis of trained models: K(tau), timescales vs lag, tau*, CK test, eigenvectors.

The state probabilities of a softmax network are the basis functions of a VAMPnet-style
Koopman model (Methods, "Determination of the relaxation timescales"):

* ``K(tau) = C00^+ C01`` from the instantaneous and time-lagged covariances of the
  (non-mean-free) probabilities, pooled over all target sets and trajectories; lag pairs are
  rows of one trajectory whose frames differ by exactly the lag (:mod:`.estimate`).
* ``t_i(tau) = -tau / ln|lambda_i(tau)|`` for every model of the lag grid (:mod:`.eigen`).
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

This package exports what other packages use: the API's objects, the helpers of
:mod:`gdyn.analysis` (the tau* state order, K of a transport model, the uncertainty engine)
and the stage entries of :mod:`gdyn.cli`. Everything else is imported from the module that
defines it (``from gdyn.koopman.verdict import DEFAULT_CK_ALPHA``).
"""

from gdyn.koopman.analysis import run_koopman
from gdyn.koopman.arrhenius_stage import run_arrhenius
from gdyn.koopman.ck import CKTest
from gdyn.koopman.eigen import spectrum, state_order
from gdyn.koopman.estimate import covariance_sums, koopman_matrix, lag_pairs
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.model_selection import check_koopman_result, run_select, run_select_koopman
from gdyn.koopman.probs import load_probs
from gdyn.koopman.selection import renormalise, select_states
from gdyn.koopman.settings import KoopmanSettings
from gdyn.koopman.timescales import ImpliedTimescales, implied_timescales
from gdyn.koopman.uncertainty import Replicates, parse_ci, weighted_sums
from gdyn.koopman.verdict import ck_verdict

__all__ = [
    "CKTest",
    "ImpliedTimescales",
    "KoopmanModel",
    "KoopmanSettings",
    "Replicates",
    "check_koopman_result",
    "ck_verdict",
    "covariance_sums",
    "implied_timescales",
    "koopman_matrix",
    "lag_pairs",
    "load_probs",
    "parse_ci",
    "renormalise",
    "run_arrhenius",
    "run_koopman",
    "run_select",
    "run_select_koopman",
    "select_states",
    "spectrum",
    "state_order",
    "weighted_sums",
]
