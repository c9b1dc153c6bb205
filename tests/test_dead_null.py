"""Dead seeds against a null (issue 22): a seed's VAMP-2 against time-shuffled pairs."""

from __future__ import annotations

import numpy as np
from _markov_chains import markov_chain

from gdyn.train.loop import score_probs
from gdyn.train.seeds import NOTHING_RESOLVED, NULL_SHUFFLES, dead_reason, null_vamp2
from gdyn.train.settings import TrainSettings

SETTINGS = TrainSettings(vamp_epsilon=1.0e-6, vamp_mode="regularize")


def _rows(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, n_sets, S) of one piece -> probs, piece, frame as the training scores them."""
    return p.astype(np.float32), np.zeros(len(p), dtype=np.int64), np.arange(len(p))


def test_null_of_a_markov_chain_is_far_below_its_score() -> None:
    probs, piece, frame = _rows(0.8 * markov_chain(3, 3000, 4, seed=1) + 0.2 / 3)
    val = score_probs(probs, piece, frame, 5, SETTINGS)
    null = null_vamp2(probs, piece, frame, 5, SETTINGS)
    assert null.shape == (NULL_SHUFFLES,)
    # Independent pairs: VAMP-2 = 1 + O(S / n_pairs); the chain resolves two processes.
    assert np.all(null < 1.01) and val > 1.5
    assert dead_reason(probs, val, null=null) is None


def test_noise_features_are_nothing_resolved() -> None:
    """Soft outputs that vary but carry no dynamics (iid in time) score like the null:
    the fixed 1 + 1e-3 threshold calls them alive (finite-sample bias), the null does not
    in most draws (a 5 % test: 19 shuffles)."""
    dead = 0
    fixed_alive = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        probs, piece, frame = _rows(rng.dirichlet(np.ones(3), size=(400, 2)))
        val = score_probs(probs, piece, frame, 5, SETTINGS)
        fixed_alive += dead_reason(probs, val) is None
        reason = dead_reason(probs, val, null=null_vamp2(probs, piece, frame, 5, SETTINGS))
        dead += reason is not None and reason.startswith(NOTHING_RESOLVED)
    assert fixed_alive >= 15  # the old rule misses what the null catches
    assert dead >= 15  # expected 19 of 20 (5 % false alive)
