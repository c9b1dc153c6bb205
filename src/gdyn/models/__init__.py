"""The model registry: the one place model kinds are named (standard library only).

Each kind names the torch module class that implements it and the kind of input it reads:

* ``"graphs"``: per-frame neighbour lists of the graph stage, flattened into a
  :class:`gdyn.models.gdynet.GraphBatch` (:func:`gdyn.train.data.graph_batch`);
* ``"positions"``: wrapped fractional positions of the target sets, an (n_sets, 3k) tensor
  (:func:`gdyn.train.data.vampnet_batch`).

A module class implements ``from_settings(n_states, settings, dims)`` (a fresh model from
the training settings and the data dimensions), ``dims_from_data(data)`` (the dimensions
recorded in ``config.json``, from a summary of the training data: ``set_size`` k, and for
graph inputs ``max_distance_A`` and ``n_neighbors``) and ``forward(batch)`` -> (n_sets,
n_states) state probabilities. Adding a model variant is one module with its class plus
one line in :data:`REGISTRY`; the workflow and the CLI iterate over :data:`MODEL_KINDS`.

This module imports nothing heavy: the Snakefile and ``gdyn --help`` read it for free;
:func:`module_class` imports a model's module (and torch) only when asked.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gdyn.errors import InputError

__all__ = ["MODEL_KINDS", "ModelSpec", "build", "module_class", "spec"]

INPUT_KINDS: tuple[str, ...] = ("graphs", "positions")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model kind's torch module lives and what it reads."""

    module: str  # importable module name
    cls: str  # class name in that module
    inputs: str  # one of INPUT_KINDS


REGISTRY: dict[str, ModelSpec] = {
    "gdynet": ModelSpec(module="gdyn.models.gdynet", cls="GDyNetModule", inputs="graphs"),
    "vampnet": ModelSpec(module="gdyn.models.vampnet", cls="VAMPNetModule", inputs="positions"),
}
MODEL_KINDS: tuple[str, ...] = tuple(REGISTRY)


def spec(kind: str) -> ModelSpec:
    """The registry entry of ``kind``; an unknown kind raises :class:`InputError`."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise InputError(
            f"model: expected one of {', '.join(MODEL_KINDS)}, got {kind!r}"
        ) from None


def module_class(kind: str) -> Any:
    """The torch module class of ``kind`` (imports its module, and torch, on first use)."""
    entry = spec(kind)
    return getattr(importlib.import_module(entry.module), entry.cls)


def build(kind: str, n_states: int, settings: Mapping[str, Any], dims: Mapping[str, Any]) -> Any:
    """A fresh model of ``kind`` (initialised from torch's current seed, set by the caller).

    Parameters
    ----------
    kind : str
        A key of :data:`REGISTRY`.
    n_states : int
        Number of output states.
    settings : mapping
        Training settings by key (``gdyn.train.settings.TrainSettings.to_dict()``, or
        ``config.json``'s ``settings``).
    dims : mapping
        Data dimensions, as ``dims_from_data`` returned them (``config.json`` ``dims``).
    """
    return module_class(kind).from_settings(int(n_states), settings, dims)
