"""Koopman settings: the ``koopman`` config section as one typed object, :class:`KoopmanSettings`.

The defaults are the schema's (workflow/schemas/config.schema.yaml, read by
:func:`gdyn.settings.default`); the ``ci`` block is a
:class:`~gdyn.koopman.uncertainty.CISettings` (:func:`~gdyn.koopman.uncertainty.parse_ci`).
``gdyn koopman``, ``gdyn select``, ``gdyn select-koopman`` and ``gdyn arrhenius`` make one
from their ``--settings`` JSON; the API's stages take one or a mapping
(:func:`as_koopman_settings`). ``tau_star_ps`` is checked against a lag grid where the grid
is known (:meth:`KoopmanSettings.tau_star_on`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gdyn.errors import InputError
from gdyn.koopman.estimate import check_estimator
from gdyn.koopman.uncertainty import CISettings, parse_ci
from gdyn.layout import AUTO, lag_label
from gdyn.settings import default

__all__ = ["NO_VALID_RESULT", "KoopmanSettings", "as_koopman_settings"]

# koopman.no_valid_result: what gdyn select / gdyn koopman do when there is no result.
NO_VALID_RESULT = ("fail", "keep")
WHERE = "koopman settings key"


def _number(key: str, value: Any, low: float, high: float | None = None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and value >= low and (high is None or value <= high)
    if not ok:
        bound = f"a number in [{low:g}, {high:g}]" if high is not None else f"a number >= {low:g}"
        raise InputError(f"{WHERE} '{key}': expected {bound}, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class KoopmanSettings:
    """The ``koopman`` section (checked when made).

    Build one from a config mapping with :meth:`from_mapping` (unknown keys raise), change
    one with :func:`dataclasses.replace` (checked again). ``n_states`` and ``model`` name
    the analysed model (the workflow's; a stage takes its model from its inputs).
    """

    model: str = default("koopman", "model")
    n_states: int | str | None = None  # the config must give it; None: not given (the API)
    tau_star_ps: float | None = None  # None: the automatic choice
    ck_steps: int | None = None  # None: from ck_horizon_ps or the horizon rule
    ck_horizon_ps: float | None = None
    ck_alpha: float = default("koopman", "ck_alpha")
    ci: CISettings = dataclasses.field(default_factory=lambda: parse_ci(None))
    estimator: str = default("koopman", "estimator")
    min_population: float = default("koopman", "min_population")
    min_samples: float = default("koopman", "min_samples")
    min_surviving_mass: float = default("koopman", "min_surviving_mass")
    ck_tolerance: float = default("koopman", "ck_tolerance")
    no_valid_result: str = default("koopman", "no_valid_result")

    def __post_init__(self) -> None:
        def put(key: str, value: Any) -> None:
            object.__setattr__(self, key, value)

        ci = self.ci
        put("ci", ci if isinstance(ci, CISettings) else parse_ci(ci))
        n = self.n_states
        if not (n is None or n == AUTO or (isinstance(n, int) and not isinstance(n, bool)
                                           and n >= 2)):
            raise InputError(f"{WHERE} 'n_states': expected an integer >= 2 or '{AUTO}', "
                             f"got {n!r}")
        steps = self.ck_steps
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)
                                  or steps < 1):
            raise InputError(f"{WHERE} 'ck_steps': expected an integer >= 1, got {steps!r}")
        if self.ck_horizon_ps is not None:
            put("ck_horizon_ps", _number("ck_horizon_ps", self.ck_horizon_ps, 1e-12))
        if self.tau_star_ps is not None:  # kept as given: tau_star_on names the grid's lag
            _number("tau_star_ps", self.tau_star_ps, 1e-12)
        put("ck_alpha", _number("ck_alpha", self.ck_alpha, 1e-6, 0.5))
        put("estimator", check_estimator(self.estimator))
        put("min_population", _number("min_population", self.min_population, 0.0, 1.0))
        put("min_samples", _number("min_samples", self.min_samples, 0.0))
        put("min_surviving_mass",
            _number("min_surviving_mass", self.min_surviving_mass, 0.0, 1.0))
        put("ck_tolerance", _number("ck_tolerance", self.ck_tolerance, 0.0, 1.0))
        if self.no_valid_result not in NO_VALID_RESULT:
            raise InputError(f"{WHERE} 'no_valid_result': expected one of "
                             f"{', '.join(NO_VALID_RESULT)}, got {self.no_valid_result!r}")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None) -> KoopmanSettings:
        """Settings from a ``koopman`` config section (JSON object); the schema's defaults
        fill the keys it does not give, an unknown key raises InputError."""
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise InputError(f"koopman settings: expected a JSON object, got "
                             f"{type(settings).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in settings:
            if key not in names:
                raise InputError(f"{WHERE} {key!r}: unknown (expected one of "
                                 f"{', '.join(names)})")
        return cls(**settings)

    def tau_star_on(self, lags_ps: Sequence[float]) -> float | None:
        """``tau_star_ps`` as the lag of the grid it names (None when not set); a value
        off the grid raises InputError."""
        tau = self.tau_star_ps
        if tau is None:
            return None
        matches = [x for x in lags_ps if math.isclose(x, float(tau), rel_tol=1e-9)]
        if not matches:
            raise InputError(
                f"{WHERE} 'tau_star_ps': expected one of the lag grid "
                f"{', '.join(lag_label(x) for x in lags_ps)} (a model must exist there), "
                f"got {tau!r}"
            )
        return matches[0]

    @property
    def selection(self) -> dict[str, float]:
        """The near-empty thresholds, as :meth:`KoopmanModel.estimate` takes them."""
        return {"min_population": self.min_population, "min_samples": self.min_samples,
                "min_surviving_mass": self.min_surviving_mass}


def as_koopman_settings(settings: KoopmanSettings | Mapping[str, Any] | None) -> KoopmanSettings:
    """``settings`` as :class:`KoopmanSettings`: an object as is, a mapping (or None, the
    defaults) through :meth:`KoopmanSettings.from_mapping`."""
    if isinstance(settings, KoopmanSettings):
        return settings
    return KoopmanSettings.from_mapping(settings)
