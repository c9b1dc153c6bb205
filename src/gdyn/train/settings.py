"""Training settings: the ``train`` config section as one typed object, :class:`TrainSettings`.

The defaults are the schema's (workflow/schemas/config.schema.yaml, read by
:func:`gdyn.settings.default`): the original GDyNet code's (atom_fea_len 16, 3
convolutions, Adam 5e-4, batch 16, 10 epochs). ``lags_ps``, ``models`` and ``per_temperature`` belong to the
workflow, not to one training run: :meth:`TrainSettings.from_mapping` skips them, so a
system's whole ``train`` section can be given.

VAMP regularisation: 'regularize' with epsilon 1e-3 (C + eps I). VAMP-2 is invariant to
affine maps of the features, so Adam lets softmax outputs drift into a narrow, fuzzy band;
with 'trunc' the band's variance eventually falls below epsilon and the score drops to 1
with zero gradient (a dead model). eps = 1e-3 penalises a band narrower than ~0.1 and
drives the outputs to crisp states; for two crisp states of populations pi, 1 - pi it
shrinks rho^2 = VAMP-2 - 1 by a fraction ~eps / (pi (1 - pi)) (BENCHMARKS.md, "Training").
Stopping rule (gdyn.train.stopping): ``patience`` epochs without a validation VAMP-2 gain of
``min_delta`` end training, and mark it converged (~1 % timescale drift left).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from gdyn.errors import InputError
from gdyn.models.vamp import MODES
from gdyn.settings import default

__all__ = ["API_ALL_SEEDS_DEAD", "WORKFLOW_KEYS", "TrainSettings", "as_train_settings"]

# Keys of the `train` section that the workflow reads (the lag grid, the models to train,
# per-temperature training of a series).
WORKFLOW_KEYS = frozenset({"lags_ps", "models", "per_temperature"})
# Every seed dead: the workflow's default (the schema's, which gdyn.train.train and so
# `gdyn train` use) fails the job; the API's estimators, given a mapping, keep the best
# model, flagged, with a warning.
API_ALL_SEEDS_DEAD = "keep"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The ``train`` section's settings of one training run (checked when made).

    Build one from a config mapping with :meth:`from_mapping` (unknown keys raise), change
    one with :func:`dataclasses.replace` (checked again). :meth:`to_dict` is what
    ``config.json`` records.
    """

    atom_fea_len: int = default("train", "atom_fea_len")
    n_conv: int = default("train", "n_conv")
    batch_norm: bool = default("train", "batch_norm")
    learning_rate: float = default("train", "learning_rate")
    batch_size: int = default("train", "batch_size")
    epochs: int = default("train", "epochs")
    patience: int = default("train", "patience")
    min_delta: float = default("train", "min_delta")
    max_pairs_per_epoch: int | None = default("train", "max_pairs_per_epoch")
    seed: int = default("train", "seed")
    # every seed trains, the best validation VAMP-2 is kept; None: (seed,)
    seeds: tuple[int, ...] | None = None
    all_seeds_dead: str = default("train", "all_seeds_dead")
    frame_stride: int = default("train", "frame_stride")
    vamp_mode: str = default("train", "vamp_mode")
    vamp_epsilon: float = default("train", "vamp_epsilon")
    vampnet_hidden: tuple[int, ...] = tuple(default("train", "vampnet_hidden"))
    checkpoint_every_s: float = default("train", "checkpoint_every_s")

    def __post_init__(self) -> None:
        def need(key: str, ok: bool, expected: str) -> None:
            if not ok:
                raise InputError(f"--settings: key {key!r}: expected {expected}, got "
                                 f"{getattr(self, key)!r}")

        for key, low in (("atom_fea_len", 1), ("n_conv", 0), ("batch_size", 2), ("epochs", 1),
                         ("seed", 0), ("frame_stride", 1), ("patience", 1)):
            v = getattr(self, key)
            need(key, _is_int(v) and v >= low, f"an integer >= {low}")
        need("batch_norm", isinstance(self.batch_norm, bool), "true or false")
        for key in ("learning_rate", "vamp_epsilon"):
            v = getattr(self, key)
            need(key, _is_number(v) and v > 0, "a positive number")
        need("min_delta", _is_number(self.min_delta) and self.min_delta >= 0, "a number >= 0")
        v = self.checkpoint_every_s
        need("checkpoint_every_s", isinstance(v, int | float) and v >= 0, "a number >= 0")
        v = self.max_pairs_per_epoch
        need("max_pairs_per_epoch", v is None or (_is_int(v) and v >= 1),
             "null or an integer >= 1")
        v = self.seeds
        need("seeds", v is None or (isinstance(v, list | tuple) and len(v) >= 1
                                    and all(_is_int(x) and x >= 0 for x in v)
                                    and len(set(v)) == len(v)),
             "null or a non-empty list of distinct integers >= 0")
        if v is not None:
            object.__setattr__(self, "seeds", tuple(int(x) for x in v))
        need("all_seeds_dead", self.all_seeds_dead in ("fail", "keep"), "'fail' or 'keep'")
        need("vamp_mode", self.vamp_mode in MODES, f"one of {', '.join(MODES)}")
        v = self.vampnet_hidden
        need("vampnet_hidden", isinstance(v, list | tuple) and all(_is_int(h) and h >= 1
                                                                    for h in v),
             "a list of positive integers")
        object.__setattr__(self, "vampnet_hidden", tuple(int(h) for h in v))

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None) -> TrainSettings:
        """Settings from a ``train`` config section (JSON object); the schema's defaults
        fill the keys it does not give, the workflow's keys (:data:`WORKFLOW_KEYS`) are
        skipped, and an unknown key raises InputError."""
        return cls(**_run_keys(settings))

    @property
    def seed_list(self) -> list[int]:
        """The seeds a training run trains, in order: ``seeds``, else ``[seed]``."""
        return list(self.seeds) if self.seeds else [self.seed]

    def to_dict(self) -> dict[str, Any]:
        """``{key: value}`` as JSON holds it (lists for the tuples): ``config.json``'s
        ``settings``."""
        out = dataclasses.asdict(self)
        out["vampnet_hidden"] = list(self.vampnet_hidden)
        out["seeds"] = None if self.seeds is None else list(self.seeds)
        return out


def _run_keys(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keys of one training run of a ``train`` mapping; an unknown key raises."""
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise InputError(f"--settings: expected a JSON object, got {type(settings).__name__}")
    names = [f.name for f in dataclasses.fields(TrainSettings)]
    block = {k: v for k, v in settings.items() if k not in WORKFLOW_KEYS}
    for key in block:
        if key not in names:
            raise InputError(
                f"--settings: key {key!r}: unknown training setting (expected one of "
                f"{', '.join(sorted(names))})"
            )
    return block


def as_train_settings(settings: TrainSettings | Mapping[str, Any] | None,
                      all_seeds_dead: str | None = None, **overrides: Any) -> TrainSettings:
    """``settings`` as :class:`TrainSettings`, with ``overrides`` (keys of the same kind).

    An object is used as is, a mapping goes through :meth:`TrainSettings.from_mapping`;
    ``all_seeds_dead`` is a mapping's default for that key (None: the schema's).
    """
    if not isinstance(settings, TrainSettings):
        block = _run_keys(settings)
        if all_seeds_dead is not None:
            block = {"all_seeds_dead": all_seeds_dead, **block}
        settings = TrainSettings(**block)
    more = _run_keys(overrides)
    return dataclasses.replace(settings, **more) if more else settings
