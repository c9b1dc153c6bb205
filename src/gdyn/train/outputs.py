"""The model directory (docs/contracts.md): what ``gdyn train`` writes and the API reads.

``results/models/{system}/{model}-s{n_states}-lag{lag}/`` holds ``model.pt`` (a plain
state_dict, ``torch.load(weights_only=True)``), ``config.json`` (everything to rebuild the
model: kind, n_states, settings, dims, plus lag and frame facts, and every seed's scores),
``metrics.csv`` (seed, epoch, train_vamp2, val_vamp2, the seed's epochs_run, best_epoch
and training_converged, seconds), ``alignment.json`` (the
state permutation, :mod:`gdyn.train.align`) and ``probs_{train,val,test}.npz``. Every file is written
atomically (:mod:`gdyn.files`), ``config.json`` last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from gdyn.errors import InputError
from gdyn.files import atomic_path, save_npz, write_csv, write_json
from gdyn.layout import PARTS
from gdyn.models import build
from gdyn.train.loop import Problem
from gdyn.train.settings import TrainSettings

__all__ = [
    "METRICS_COLUMNS",
    "load_model",
    "metrics_frame",
    "model_config",
    "read_model_dir",
    "write_model_dir",
    "write_outputs",
]

# Per epoch: seed, epoch, scores; per seed (repeated on its rows): epochs run, best epoch
# and whether the stopping rule fired (gdyn.train.stopping); last the epoch's seconds (the
# one column a rerun changes).
METRICS_COLUMNS: list[str] = ["seed", "epoch", "train_vamp2", "val_vamp2", "epochs_run",
                              "best_epoch", "training_converged", "seconds"]
# Keys of a training result copied into config.json (gdyn.train.seeds.SeedsFit.result).
SEED_KEYS: tuple[str, ...] = ("test_vamp2", "score_part", "seeds", "dead_seeds", "kept_dead",
                              "seed_spread", "alignment", "epochs_run", "training_converged",
                              "unconverged_seeds", "memberships")


class _Predictor(Protocol):
    def predict_part(
        self, problem: Problem, part: str, raw: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def memberships(self, raw: np.ndarray) -> np.ndarray: ...

    def save(self, directory: str | Path) -> None: ...


def metrics_frame(metrics: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Per-epoch metrics as a DataFrame with the ``metrics.csv`` columns."""
    return pd.DataFrame(metrics, columns=METRICS_COLUMNS)


def model_config(
    problem: Problem, settings: TrainSettings, result: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``config.json`` of a model trained on ``problem`` (``result`` from ``fit``)."""
    return {
        "model": problem.kind,
        "n_states": problem.n_states,
        "lag_ps": problem.lag_ps,
        "lag_frames": problem.lag_frames,
        "frame_interval_ps": problem.frame_interval_ps,
        "frame_stride": int(settings.frame_stride),
        "seed": int(settings.seed),
        "best_epoch": result["best_epoch"],
        "best_val_vamp2": result["best_val_vamp2"],
        **{k: result[k] for k in SEED_KEYS if k in result},
        "settings": settings.to_dict(),
        "dims": problem.dims,
        "device": result["device"],
        "torch_version": torch.__version__,
        "inputs": {part: [p.where for p in ps] for part, ps in problem.parts.items()},
    }


def write_model_dir(
    outdir: str | Path,
    module: torch.nn.Module,
    config: Mapping[str, Any],
    metrics: pd.DataFrame | None = None,
) -> None:
    """Write ``model.pt``, ``metrics.csv`` (when given), ``alignment.json`` (when the
    config records an alignment) and ``config.json`` (last)."""
    outdir = Path(outdir)
    # Saved through a file object: torch names the zip's records after a path's stem (here
    # the random temp name), after a file object "archive", so equal weights give equal bytes.
    with atomic_path(outdir / "model.pt") as tmp, open(tmp, "wb") as fh:
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, fh)
    if metrics is not None:
        write_csv(outdir / "metrics.csv", metrics_frame(metrics))
    if config.get("alignment") is not None:
        write_json(outdir / "alignment.json", dict(config["alignment"]))
    write_json(outdir / "config.json", dict(config))


def read_model_dir(
    model_dir: str | Path,
) -> tuple[torch.nn.Module, dict[str, Any], pd.DataFrame | None]:
    """Rebuild a model from ``config.json`` + ``model.pt`` (eval mode, CPU).

    Returns the module, the config dict and the metrics (None without ``metrics.csv``).
    """
    model_dir = Path(model_dir)
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{model_dir}/config.json: file not found (expected a model "
                         "directory)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{model_dir}/config.json: not valid JSON ({exc})") from None
    module = build(cfg["model"], int(cfg["n_states"]), cfg["settings"], cfg["dims"])
    try:
        state = torch.load(model_dir / "model.pt", weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise InputError(f"{model_dir}/model.pt: file not found") from None
    module.load_state_dict(state)
    module.eval()
    metrics_path = model_dir / "metrics.csv"
    metrics = pd.read_csv(metrics_path) if metrics_path.is_file() else None
    return module, cfg, metrics


def load_model(model_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The torch module (eval mode, CPU) and ``config.json`` of a model directory."""
    module, cfg, _ = read_model_dir(model_dir)
    return module, cfg


def write_outputs(
    outdir: str | Path,
    model: _Predictor,
    problem: Problem,
    known: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> None:
    """``probs_{part}.npz`` of every part of ``problem``, then the model's own files.

    ``probs`` (F, n_sets, n_states) float32 memberships (``model.memberships`` of the
    network's outputs) for every grid frame of every piece, stacked; ``probs_raw`` the
    network's outputs; ``traj`` (F,) index into ``sources``; ``frame`` (F,) raw frame
    index; ``lag_ps`` and ``frame_interval_ps`` scalars (docs/contracts.md). ``known`` maps
    a part to a prediction of the network's outputs already made with the final weights
    (``model.predict_part(..., raw=True)``'s result, e.g. while the seeds were scored),
    which is written instead of predicting again.
    """
    outdir = Path(outdir)
    for part in (p for p in PARTS if p in problem.parts):
        known_part = (known or {}).get(part)
        raw, piece, frame = known_part or model.predict_part(problem, part, raw=True)
        pieces = problem.parts[part]
        save_npz(
            outdir / f"probs_{part}.npz",
            probs=model.memberships(raw),
            probs_raw=raw.astype(np.float32),
            traj=piece.astype(np.int64),
            sources=np.array([p.source for p in pieces]),
            frame=np.array([p.frame_offset for p in pieces], dtype=np.int64)[piece] + frame,
            lag_ps=np.float64(problem.lag_ps),
            frame_interval_ps=np.float64(problem.frame_interval_ps),
        )
    model.save(outdir)
