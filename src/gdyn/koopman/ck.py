"""The Chapman-Kolmogorov test object (:class:`CKTest`) and the figure helpers of the API.

``K(tau)^n`` (predicted) against ``K(n tau)`` (estimated from the same probabilities at the
longer lag) for the surviving states of a :class:`~gdyn.koopman.model.KoopmanModel`, with
its verdict (:func:`~gdyn.koopman.verdict.ck_verdict`). The table (``ck.csv``) keeps a row
for every state pair, the near-empty states' rows flagged and without numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.koopman.eigen import ck_deviation
from gdyn.koopman.uncertainty import Replicates
from gdyn.koopman.verdict import (
    DEFAULT_CK_ALPHA,
    DEFAULT_CK_TOLERANCE,
    CKVerdict,
    ck_verdict,
    ck_verdict_replicates,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["CK_COLUMNS", "CKTest"]

CK_COLUMNS = [
    "model",
    "n_states",
    "tau_ps",
    "step",
    "lag_ps",
    "from_state",
    "to_state",
    "predicted",
    "predicted_ci_low",
    "predicted_ci_high",
    "estimated",
    "estimated_ci_low",
    "estimated_ci_high",
    "near_empty",
    "pass",
]


def new_figure(width_in: float, height_in: float) -> Any:
    """A new matplotlib figure (pyplot imported here: plotting is optional)."""
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width_in, height_in))


def grid_spec(ax: Axes | None, width_in: float, height_in: float, top_in: float) -> Any:
    """The SubplotSpec a grid panel fills: ``ax``'s place (``ax`` is removed) or a new figure."""
    if ax is not None:
        spec = ax.get_subplotspec()
        fig = ax.figure
        ax.remove()
        return fig, spec
    fig = new_figure(width_in, height_in)
    # Room above the grid for the title and legend the panel puts there.
    return fig, fig.add_gridspec(1, 1, top=1.0 - top_in / height_in, bottom=0.5 / height_in)[0]


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class CKTest:
    """Chapman-Kolmogorov test: ``K(tau)^n`` (predicted) against ``K(n tau)`` (estimated).

    Arrays are (steps, s, s) over the s surviving states, row = start state, column = end
    state, in the model's state order; ``group_*`` are the same per CI group
    (n_groups, steps, s, s). ``n_states`` counts every state of the model (the near-empty
    ones are states s..n_states-1 of the table); ``tolerance`` is the verdict's absolute
    tolerance where a CI is degenerate.
    """

    lag_ps: float
    predicted: np.ndarray = field(repr=False)
    estimated: np.ndarray = field(repr=False)
    group_predicted: np.ndarray = field(repr=False)
    group_estimated: np.ndarray = field(repr=False)
    n_states: int = -1
    tolerance: float = DEFAULT_CK_TOLERANCE
    alpha: float = DEFAULT_CK_ALPHA
    replicates: Replicates | None = field(default=None, repr=False)
    effective_starts: np.ndarray | None = field(default=None, repr=False)  # (steps, s)
    frame_interval_ps: float = float("nan")

    def __post_init__(self) -> None:
        if self.n_states < 0:
            object.__setattr__(self, "n_states", int(self.predicted.shape[-1]))

    @property
    def steps(self) -> int:
        return int(self.predicted.shape[0])

    @property
    def n_surviving(self) -> int:
        """States the test covers (the model's surviving states)."""
        return int(self.predicted.shape[-1])

    @property
    def near_empty_states(self) -> list[int]:
        """States of the model without a CK estimate (near-empty, excluded)."""
        return list(range(self.n_surviving, self.n_states))

    @property
    def max_deviation(self) -> float:
        """Largest ``|predicted - estimated|`` over steps and surviving state pairs."""
        return ck_deviation(self.predicted, self.estimated)

    def _interval(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.replicates is None or samples.shape[0] < 2:
            nan = np.full(self.predicted.shape, np.nan)
            return nan, nan.copy()
        return self.replicates.interval(samples, probability=True)

    @cached_property
    def estimated_ci(self) -> tuple[np.ndarray, np.ndarray]:
        """95 % interval of the estimates (steps, s, s) within [0, 1], NaN without CIs."""
        return self._interval(self.group_estimated)

    @cached_property
    def predicted_ci(self) -> tuple[np.ndarray, np.ndarray]:
        """95 % interval of the predictions (steps, s, s) within [0, 1], NaN without CIs."""
        return self._interval(self.group_predicted)

    @cached_property
    def verdict(self) -> CKVerdict:
        """The CK verdict (:func:`~gdyn.koopman.verdict.ck_verdict_replicates`; without
        replicates the tolerance rule of :func:`~gdyn.koopman.verdict.ck_verdict`)."""
        if self.replicates is None or self.group_estimated.shape[0] < 2:
            nan = np.full(self.predicted.shape, np.nan)
            return ck_verdict(self.predicted, self.estimated, nan, nan, self.tolerance)
        return ck_verdict_replicates(
            self.predicted, self.estimated, self.group_predicted, self.group_estimated,
            bootstrap=self.replicates.bootstrap, alpha=self.alpha, tolerance=self.tolerance,
            effective_starts=self.effective_starts,
        )  # fmt: skip

    @property
    def passed(self) -> bool:
        """Whether the model passes its CK test (see :attr:`verdict`)."""
        return self.verdict.passed

    def worst(self) -> dict[str, Any] | None:
        """The verdict's worst element with its lag (``summary.json`` ``ck_worst``)."""
        w = self.verdict.worst
        if w is None:
            return None
        out = dict(w)
        out["lag_ps"] = w["step"] * self.lag_ps
        return out

    def to_frame(self, model: str = "unknown") -> pd.DataFrame:
        """``ck.csv``: one row per (step, from_state, to_state) with 95 % CIs, a
        ``near_empty`` flag (either state excluded: no numbers) and the element's ``pass``
        (empty where untested)."""
        import pandas as pd

        plo, phi = self.predicted_ci
        elo, ehi = self.estimated_ci
        # Reported as the probabilities they estimate, within [0, 1] like their intervals:
        # the non-reversible K of soft memberships can have elements a little below 0 (the
        # default run's 8-state VAMPnet: down to -0.001), which would sit outside their own
        # clipped interval. The verdict above uses the unclipped values.
        pred, est = np.clip(self.predicted, 0.0, 1.0), np.clip(self.estimated, 0.0, 1.0)
        verdict = self.verdict.element_pass
        s, total = self.n_surviving, self.n_states
        nan = float("nan")
        rows = []
        for n in range(self.steps):
            for i in range(total):
                for j in range(total):
                    ok = i < s and j < s
                    v = verdict[n, i, j] if ok else nan
                    rows.append(
                        {
                            "model": model,
                            "n_states": total,
                            "tau_ps": self.lag_ps,
                            "step": n + 1,
                            "lag_ps": (n + 1) * self.lag_ps,
                            "from_state": i,
                            "to_state": j,
                            "predicted": pred[n, i, j] if ok else nan,
                            "predicted_ci_low": plo[n, i, j] if ok else nan,
                            "predicted_ci_high": phi[n, i, j] if ok else nan,
                            "estimated": est[n, i, j] if ok else nan,
                            "estimated_ci_low": elo[n, i, j] if ok else nan,
                            "estimated_ci_high": ehi[n, i, j] if ok else nan,
                            "near_empty": not ok,
                            "pass": None if np.isnan(v) else bool(v),
                        }
                    )
        return pd.DataFrame(rows, columns=CK_COLUMNS)

    def plot(self, ax: Axes | None = None, title: str | None = None) -> list[Axes]:
        """The CK grid (Figs. 3f, 4f): predicted line with CI band, estimates with CI bars,
        PASS/FAIL in the title; near-empty states are named, not drawn.

        The grid fills ``ax``'s place in its figure (``ax`` is removed) or a new figure;
        returns the grid's axes, row-major.
        """
        from gdyn.plots import plot_ck

        n = max(self.n_surviving, 1)
        fig, spec = grid_spec(ax, 1.1 * n + 1.0, 0.9 * n + 1.4, top_in=0.6)
        return plot_ck(fig, spec, self.to_frame(), title=title)
