"""Training settings: the ``train`` config section's keys, their defaults and checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gdyn.errors import InputError
from gdyn.models.vamp import MODES
from gdyn.settings import with_defaults

__all__ = ["DEFAULTS", "WORKFLOW_KEYS", "resolve_settings", "seed_list"]

# Settings of the `train` config section (workflow/schemas/config.schema.yaml), with the
# schema's defaults (gdyn.settings): the original GDyNet code's (atom_fea_len 16, 3
# convolutions, Adam 5e-4, batch 16, 10 epochs). `lags_ps`, `models` and `per_temperature`
# belong to the workflow, not to one training run.
# VAMP regularisation: 'regularize' with epsilon 1e-3 (C + eps I). VAMP-2 is invariant to
# affine maps of the features, so Adam lets softmax outputs drift into a narrow, fuzzy band;
# with 'trunc' the band's variance eventually falls below epsilon and the score drops to 1
# with zero gradient (a dead model). eps = 1e-3 penalises a band narrower than ~0.1 and
# drives the outputs to crisp states; for two crisp states of populations pi, 1 - pi it
# shrinks rho^2 = VAMP-2 - 1 by a fraction ~eps / (pi (1 - pi)) (BENCHMARKS.md, "Training").
# Stopping rule (gdyn.train.stopping): `patience` epochs without a validation VAMP-2 gain of
# `min_delta` end training, and mark it converged (~1 % timescale drift left).
WORKFLOW_KEYS = frozenset({"lags_ps", "models", "per_temperature"})
DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in with_defaults("train", {}).items() if k not in WORKFLOW_KEYS},
    # a list trains every seed and keeps the best validation VAMP-2; None: [seed]
    "seeds": None,
    # Every seed dead: the API keeps the best, flagged, with a warning; the workflow's
    # default (the schema's, which gdyn.train.train and so `gdyn train` use) fails.
    "all_seeds_dead": "keep",
}


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` over :data:`DEFAULTS`, type-checked; unknown keys raise InputError.

    The workflow keys (``lags_ps``, ``models``, ``per_temperature``) are ignored, so a
    system's whole ``train`` config section can be passed.
    """
    out = dict(DEFAULTS)
    for key, value in (settings or {}).items():
        if key in WORKFLOW_KEYS:
            continue
        if key not in DEFAULTS:
            raise InputError(
                f"--settings: key {key!r}: unknown training setting (expected one of "
                f"{', '.join(sorted(DEFAULTS))})"
            )
        out[key] = value

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise InputError(f"--settings: key {key!r}: expected {expected}, got {out[key]!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key, low in (("atom_fea_len", 1), ("n_conv", 0), ("batch_size", 2), ("epochs", 1),
                     ("seed", 0), ("frame_stride", 1), ("patience", 1)):
        need(key, is_int(out[key]) and out[key] >= low, f"an integer >= {low}")
    need("batch_norm", isinstance(out["batch_norm"], bool), "true or false")
    for key in ("learning_rate", "vamp_epsilon"):
        v = out[key]
        need(key, isinstance(v, int | float) and not isinstance(v, bool) and v > 0
             and math.isfinite(v), "a positive number")
    v = out["min_delta"]
    need("min_delta", isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
         and math.isfinite(v), "a number >= 0")
    v = out["checkpoint_every_s"]
    need("checkpoint_every_s", isinstance(v, int | float) and v >= 0, "a number >= 0")
    v = out["max_pairs_per_epoch"]
    need("max_pairs_per_epoch", v is None or (is_int(v) and v >= 1), "null or an integer >= 1")
    v = out["seeds"]
    need("seeds", v is None or (isinstance(v, list | tuple) and len(v) >= 1
                                and all(is_int(x) and x >= 0 for x in v)
                                and len(set(v)) == len(v)),
         "null or a non-empty list of distinct integers >= 0")
    if v is not None:
        out["seeds"] = [int(x) for x in v]
    need("all_seeds_dead", out["all_seeds_dead"] in ("fail", "keep"), "'fail' or 'keep'")
    need("vamp_mode", out["vamp_mode"] in MODES, f"one of {', '.join(MODES)}")
    v = out["vampnet_hidden"]
    need("vampnet_hidden", isinstance(v, list | tuple) and all(is_int(h) and h >= 1 for h in v),
         "a list of positive integers")
    out["vampnet_hidden"] = [int(h) for h in v]
    return out


def seed_list(settings: Mapping[str, Any]) -> list[int]:
    """The seeds a training run trains, in order: ``seeds``, else ``[seed]``."""
    seeds = settings.get("seeds")
    return [int(x) for x in seeds] if seeds else [int(settings["seed"])]
