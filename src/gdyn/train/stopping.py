"""The stopping rule: train until the validation VAMP-2 stops improving.

``train.epochs`` is the most epochs a seed trains. After every epoch the rule looks at the
curve so far (:func:`stopping_state`): the *reference* is the score of the last epoch that
improved on the previous reference by at least ``min_delta`` (the first epoch sets it);
``patience`` epochs in a row without such an improvement stop the run. A run the rule
stopped by its last allowed epoch is **converged** (``training_converged``); one that
reached ``epochs`` while still improving is not, and is flagged downstream
(``config.json``, ``metrics.csv``, the Koopman ``summary.json``'s ``unconverged_models``, a
warning from the API's ``fit``).

The curve is the full-data validation VAMP-2 of each epoch; without validation data (every
score NaN) the epoch's mean training VAMP-2 stands in. The best epoch is still the one with
the highest validation VAMP-2 (:func:`gdyn.train.loop.fit`), whatever the rule says.

Why ``min_delta`` 1e-3 (the default): for a resolved process of singular value sigma
(VAMP-2 = 1 + sigma^2 for two states) a VAMP-2 change of 1e-3 moves the implied timescale
-lag / ln(sigma) by ~0.35 % at every sigma between 0.4 and 0.8 (the toy's lags 10-40 ps),
so ``patience`` (3) epochs without it bound the drift still to come to about 1 %: well
under the 5 % the convergence benchmark tests (benchmarks/convergence.py, BENCHMARKS.md:
0 of 7 toy models called converged moved by more than 5 % when trained 3x longer,
largest 3.1 %).

Epochs before the network resolves anything do not count: a score at or below
:data:`UNRESOLVED_VAMP2` (1 + 1e-3; constant features score exactly 1, and below 1 + 1e-3 a
seed is dead, gdyn.train.seeds.DEAD_VAMP2) neither sets the reference nor uses up patience.
On the NaCl liquid benchmark (benchmarks/liquid) a 2-state GDyNet scored 1.0000 for its
first 4-5 epochs before it started to learn (lag 1 ps: 1.0001, 1.0003, 1.0006, 1.0012, ...,
1.025 at epoch 15); counted, the plateau stopped the lag-20 ps model after epoch 4 as
"converged" with nothing learned. A seed that never leaves the floor trains to
``train.epochs`` and is reported unconverged (and dead).

The rule is a pure function of the per-epoch metrics, so a resumed run (checkpoint or a
finished seed's file) reaches the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["UNRESOLVED_VAMP2", "StoppingState", "curve", "stopping_state"]

# At or below this score nothing is resolved yet (module docstring); = 1 + seeds.DEAD_VAMP2.
UNRESOLVED_VAMP2 = 1.0 + 1e-3


@dataclass(frozen=True)
class StoppingState:
    """The rule's verdict after the epochs seen so far."""

    stop: bool  # patience epochs without an improvement of min_delta
    since: int  # epochs since the reference epoch
    reference_epoch: int  # 1-based epoch that set the reference (0: none yet)
    epochs: int  # epochs seen


def curve(metrics: Sequence[Mapping[str, Any]]) -> list[float]:
    """The monitored score of each epoch: ``val_vamp2``, or ``train_vamp2`` when no epoch
    has a finite validation score (no validation data)."""
    val = [float(m.get("val_vamp2", math.nan)) for m in metrics]
    if any(math.isfinite(v) for v in val):
        return val
    return [float(m.get("train_vamp2", math.nan)) for m in metrics]


def stopping_state(scores: Sequence[float], patience: int, min_delta: float,
                   floor: float = UNRESOLVED_VAMP2) -> StoppingState:
    """Apply the stopping rule to a score curve (one value per epoch, higher is better).

    Parameters
    ----------
    scores : sequence of float
        Per-epoch scores in epoch order; a non-finite score never improves.
    patience : int
        Epochs in a row without an improvement of ``min_delta`` that stop the run (>= 1).
    min_delta : float
        Smallest improvement over the reference that counts (>= 0).
    floor : float
        Scores at or below it (nothing resolved yet) are skipped: they neither set the
        reference nor count towards ``patience``.

    Returns
    -------
    StoppingState
    """
    ref, ref_epoch, since = -math.inf, 0, 0
    for i, v in enumerate(scores):
        if ref_epoch == 0 and not v > floor:  # NaN too: not resolved
            continue
        if math.isfinite(v) and (ref_epoch == 0 or v >= ref + min_delta):
            ref, ref_epoch, since = v, i + 1, 0
        else:
            since += 1
        if since >= patience:
            return StoppingState(True, since, ref_epoch, i + 1)
    return StoppingState(False, since, ref_epoch, len(scores))
