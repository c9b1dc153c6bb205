"""Config access shared by the Snakefile and the CLI: trajectory names, splits, lag labels.

Lag times live in config in physical time (ps). They become path wildcards as ``{value}ps``
(``lag_label``) and frame counts in exactly one place (``lag_to_frames``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gdyn.errors import InputError

PARTS: tuple[str, ...] = ("train", "val", "test")
MODELS: tuple[str, ...] = ("gdynet", "vampnet")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def lag_label(lag_ps: float) -> str:
    """Path label of a lag time: ``10.0 -> '10ps'``, ``0.5 -> '0.5ps'``, ``800 -> '800ps'``."""
    if not math.isfinite(lag_ps) or lag_ps <= 0:
        raise InputError(f"lag time must be a positive number of ps, got {lag_ps!r}")
    return f"{float(lag_ps):g}ps"


def parse_lag(label: str) -> float:
    """Inverse of :func:`lag_label`: ``'10ps' -> 10.0``."""
    if not label.endswith("ps"):
        raise InputError(f"lag label must look like '10ps', got {label!r}")
    try:
        value = float(label[:-2])
    except ValueError:
        raise InputError(f"lag label must look like '10ps', got {label!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"lag label must be a positive time, got {label!r}")
    return value


def lag_to_frames(lag_ps: float, frame_interval_ps: float, rtol: float = 1e-6) -> int:
    """Number of frames in ``lag_ps``; the lag must be a whole multiple of the frame interval."""
    if frame_interval_ps <= 0 or not math.isfinite(frame_interval_ps):
        raise InputError(f"frame_interval_ps must be positive, got {frame_interval_ps!r}")
    ratio = lag_ps / frame_interval_ps
    frames = round(ratio)
    if frames < 1 or abs(ratio - frames) > rtol * max(1.0, ratio):
        raise InputError(
            f"lag {lag_ps:g} ps is not a positive whole multiple of the frame interval "
            f"{frame_interval_ps:g} ps (ratio {ratio:g})"
        )
    return int(frames)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (a mapping) with a clear error when it is not one."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(config: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Validate a config mapping against the workflow schema (the same one Snakemake uses).

    Raises :class:`InputError` naming the offending key path.
    """
    import jsonschema

    schema = load_yaml(schema_path)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise InputError(f"config key '{where}': {err.message}")


def trajectory_names(system: Mapping[str, Any]) -> list[str]:
    """Raw trajectory names of one system (``results/raw/{system}/{name}.npz``)."""
    source = system["source"]
    if source == "simulate":
        n_li = int(system["simulate"]["n_li"])
        return [f"li{i:03d}" for i in range(n_li)]
    return list(system["files"].keys())


def split_pieces(system: Mapping[str, Any], part: str) -> dict[str, tuple[float, float]]:
    """Trajectories in ``part`` and the (start, stop) time fractions taken from each."""
    names = trajectory_names(system)
    pieces: dict[str, tuple[float, float]] = {}
    for piece in system["split"][part]:
        sel = piece.get("trajectories", "all")
        if sel == "all":
            chosen = names
        elif isinstance(sel, Mapping):
            chosen = names[int(sel.get("from", 0)) : int(sel.get("to", len(names)))]
        else:
            unknown = [s for s in sel if s not in names]
            if unknown:
                raise InputError(
                    f"config key 'split/{part}/trajectories': unknown trajectory {unknown[0]!r}; "
                    f"known: {', '.join(names)}"
                )
            chosen = list(sel)
        for name in chosen:
            if name in pieces:
                raise InputError(
                    f"config key 'split/{part}': trajectory {name!r} appears in two pieces"
                )
            pieces[name] = (float(piece.get("start", 0.0)), float(piece.get("stop", 1.0)))
    return pieces


def lags_ps(system: Mapping[str, Any]) -> list[float]:
    """The system's lag grid in ps, sorted."""
    return sorted(float(x) for x in system["train"]["lags_ps"])


def model_state_counts(system: Mapping[str, Any]) -> dict[str, list[int]]:
    """``{model: [n_states, ...]}`` of the models trained for this system."""
    return {m: [int(s) for s in counts] for m, counts in system["train"]["models"].items()}


def frame_interval_ps(system: Mapping[str, Any]) -> float:
    """Physical time between stored frames of this system's trajectories (ps)."""
    return float(system["frame_interval_ps"])


def as_sequence(value: Any) -> Sequence[Any]:
    """``value`` as a list (a scalar becomes a one-element list)."""
    if isinstance(value, list | tuple):
        return value
    return [value]
