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
from gdyn.layout import AUTO, PARTS, lag_label, parse_lag, toy_trajectory_name

__all__ = [
    "PARTS",
    "SCHEMA_PATH",
    "analysed",
    "as_sequence",
    "frame_interval_ps",
    "lag_label",
    "lag_to_frames",
    "lags_ps",
    "load_yaml",
    "model_state_counts",
    "parse_lag",
    "selection_candidates",
    "split_pieces",
    "trajectory_names",
    "validate",
]
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


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
        return [toy_trajectory_name(i) for i in range(n_li)]
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


def analysed(system: Mapping[str, Any]) -> tuple[str, int | str]:
    """``(model, n_states)`` whose Koopman model feeds the structure and transport analyses.

    The system's ``koopman`` block: ``model`` (default ``gdynet``) and ``n_states``, an
    integer or ``"auto"`` (:data:`gdyn.layout.AUTO`: the state count chosen by
    ``gdyn select`` among ``train.models[model]``, whose Koopman outputs are in
    ``gdyn.layout.koopman_dir(system, model, "auto")``).
    """
    k = system.get("koopman") or {}
    if "n_states" not in k:
        raise InputError("config key 'koopman/n_states': missing (the analysed state count)")
    model = str(k.get("model", "gdynet"))
    if k["n_states"] == AUTO:
        if not model_state_counts(system).get(model):
            raise InputError(
                f"config key 'train/models/{model}': expected the candidate state counts of "
                f"koopman/n_states: auto, got none"
            )
        return model, AUTO
    return model, int(k["n_states"])


def selection_candidates(system: Mapping[str, Any]) -> tuple[str, list[int]] | None:
    """``(model, state counts)`` among which ``gdyn select`` chooses, or None when the
    system needs no selection: ``koopman.n_states: auto``, or more than one state count
    of the analysed model kind under ``train.models`` (the selection is then reported,
    the configured count is still analysed)."""
    k = system.get("koopman") or {}
    model = str(k.get("model", "gdynet"))
    counts = sorted(model_state_counts(system).get(model, []))
    if k.get("n_states") == AUTO or len(counts) > 1:
        return (model, counts) if counts else None
    return None


def frame_interval_ps(system: Mapping[str, Any]) -> float:
    """Physical time between stored frames of this system's trajectories (ps)."""
    return float(system["frame_interval_ps"])


def as_sequence(value: Any) -> Sequence[Any]:
    """``value`` as a list (a scalar becomes a one-element list)."""
    if isinstance(value, list | tuple):
        return value
    return [value]
