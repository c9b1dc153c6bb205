"""Config defaults, written once: the ``default:`` of the config schema.

The schema is src/gdyn/config.schema.yaml (linked as workflow/schemas/config.schema.yaml,
where Snakemake users look for it).

Snakemake's ``validate`` fills those defaults into the workflow's config (into every
mapping the config has), so the rule files read a key without a fallback. The CLI and the
API read the same defaults through this module: :func:`default` looks one up,
:func:`with_defaults` fills a config section as Snakemake does, and the typed settings
objects below take their field defaults from it. A key with no schema default is one the
config must give, or one whose absence means something (``structure.snapshot_frame``
switches the snapshot on); no module or rule file writes a default of its own
(tests/test_settings.py fails when one does).

Sections: ``graph`` (:class:`GraphSettings`), ``conduction`` (:class:`ConductionSettings`),
``structure`` (:class:`RdfSettings`, :class:`ProfileSettings`, :class:`Q3Settings`),
``execution`` (:class:`ExecutionSettings`); ``simulate`` is :class:`gdyn.toy.ToySettings`,
``train`` :class:`gdyn.train.TrainSettings` and ``koopman``
:class:`gdyn.koopman.KoopmanSettings`, all with their defaults from here.

To add a config key: declare it (with its ``default:`` when it has one) in the schema, add
a field ``name: type = default("section", "name")`` to the section's settings object, and
read it from the object (or, in a rule file, from ``config``) without a fallback.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gdyn.errors import InputError

__all__ = [
    "SCHEMA_PATH",
    "ConductionSettings",
    "ExecutionSettings",
    "GraphSettings",
    "ProfileSettings",
    "Q3Settings",
    "RdfSettings",
    "default",
    "defaults",
    "from_config",
    "with_defaults",
]

# Shipped inside the package (a wheel has no workflow/ directory); the workflow's
# workflow/schemas/config.schema.yaml is a link to this file.
SCHEMA_PATH = Path(__file__).resolve().with_name("config.schema.yaml")


@functools.cache
def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` ("#/definitions/name")."""
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/definitions/")
        node = _schema()["definitions"][name]
    return node


def _walk(node: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: default}`` of an object schema's properties, nested mappings for the
    properties that are objects (or arrays of objects) with defaults of their own."""
    node = _resolve(node)
    if "items" in node:  # an array: the defaults of its items (split pieces)
        node = _resolve(node["items"])
    out: dict[str, Any] = {}
    for key, sub in (node.get("properties") or {}).items():
        if "default" in sub:
            out[key] = sub["default"]
        elif "default" in _resolve(sub):
            out[key] = _resolve(sub)["default"]
        else:
            inner = _walk(sub)
            if inner:
                out[key] = inner
    return out


@functools.cache
def _defaults() -> dict[str, Any]:
    schema = _schema()
    out = _walk(schema["definitions"]["system"])
    out["execution"] = _walk(schema["definitions"]["execution"])
    return out


def defaults() -> dict[str, Any]:
    """Every schema default, ``{section: {key: value or {subkey: value}}}`` (a copy)."""
    return copy.deepcopy(_defaults())


def default(*path: str) -> Any:
    """The schema's default of one key, e.g. ``default("graph", "cache_mb")`` (a copy)."""
    node: Any = _defaults()
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(f"config key '{'/'.join(path[: i + 1])}' has no default in "
                           f"{SCHEMA_PATH.name}")
        node = node[key]
    return copy.deepcopy(node)


def _fill(block: Mapping[str, Any], dflt: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(block)
    for key, value in dflt.items():
        if isinstance(value, dict):
            # as Snakemake's validate: defaults go into a mapping the config has, and
            # never create one (an analysis block's presence switches it on)
            if isinstance(out.get(key), Mapping):
                out[key] = _fill(out[key], value)
            elif isinstance(out.get(key), list):  # an array of mappings: each item
                out[key] = [_fill(x, value) if isinstance(x, Mapping) else x for x in out[key]]
        elif key not in out:
            out[key] = copy.deepcopy(value)
    return out


def with_defaults(section: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """A config ``section`` (``graph``, ``train``, ...) with the schema's defaults filled in,
    as Snakemake's ``validate`` fills them into the workflow's config."""
    return _fill(block or {}, _defaults().get(section, {}))


T = TypeVar("T")


def from_config(cls: type[T], block: Mapping[str, Any] | None, where: str) -> T:
    """A settings object from its config mapping; unknown or missing keys raise InputError
    naming ``where`` (the key path, e.g. ``structure/rdf``)."""
    block = dict(block or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(block) - set(fields))
    if unknown:
        raise InputError(f"config key '{where}/{unknown[0]}': unknown (expected one of "
                         f"{', '.join(fields)})")
    missing = [n for n, f in fields.items() if n not in block
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InputError(f"config key '{where}/{missing[0]}': missing")
    return cls(**block)


@dataclasses.dataclass(frozen=True)
class GraphSettings:
    """The ``graph`` section: neighbour graphs of the frames (gdyn.graph, gdyn.train)."""

    n_neighbors: int
    prune: bool = default("graph", "prune")
    store: bool = default("graph", "store")
    cache_mb: float = default("graph", "cache_mb")


@dataclasses.dataclass(frozen=True)
class RdfSettings:
    """``structure.rdf``: the state-weighted RDF (gdyn.analysis.rdf)."""

    elements: list[str]
    r_max_A: float = default("structure", "rdf", "r_max_A")
    n_bins: int = default("structure", "rdf", "n_bins")
    stride: int = default("structure", "rdf", "stride")


@dataclasses.dataclass(frozen=True)
class ProfileSettings:
    """``structure.profile``: each state's distribution along one cell axis."""

    axis: str = default("structure", "profile", "axis")
    n_bins: int = default("structure", "profile", "n_bins")


@dataclasses.dataclass(frozen=True)
class Q3Settings:
    """``structure.q3``: Steinhardt q3 of each state's targets."""

    element: str = default("structure", "q3", "element")
    n_neighbors: int = default("structure", "q3", "n_neighbors")
    n_bins: int = default("structure", "q3", "n_bins")
    stride: int = default("structure", "q3", "stride")


@dataclasses.dataclass(frozen=True)
class ConductionSettings:
    """The ``conduction`` section: transition MSDs, D_ij and Nernst-Einstein shares."""

    temperature_K: float | None = None  # none: a temperature series (each trajectory's)
    charges: dict[str, float] | None = None  # none: from charge.csv (structure/charge)
    msd_window: float = default("conduction", "msd_window")
    msd_points: int = default("conduction", "msd_points")
    volume_A3: float | None = None  # none: from the test trajectories' cells


@dataclasses.dataclass(frozen=True)
class ExecutionSettings:
    """The ``execution`` section: resources of the training jobs."""

    train_gpus: int = default("execution", "train_gpus")
    train_threads: int = default("execution", "train_threads")
