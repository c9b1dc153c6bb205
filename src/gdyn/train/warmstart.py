"""Warm start: begin training from another model's weights (issue 24).

The workflow trains one model per lag of a grid; the reference lag (the grid's first) is
trained from random weights, and every other lag of the same model kind and state count
starts from the reference's ``model.pt`` (``gdyn train --init-from``). The states a lag's
model has to find are the same slow process at every lag, so the warm-started run reaches
its plateau in its first epoch and the stopping rule (:mod:`gdyn.train.stopping`) ends it
after ``patience`` more: measured on the default toy, BENCHMARKS.md "Cold first run".

The training still maximises the lag's own VAMP-2 over the lag's own pairs, and the best
validation epoch is kept as without a warm start; only the starting point moves. The init
file's content hash joins the checkpoint fingerprint, so a changed reference restarts the
run instead of resuming it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from gdyn.errors import InputError

__all__ = ["WarmStart", "apply_warm_start", "read_warm_start"]


@dataclass(frozen=True)
class WarmStart:
    """Initial weights of a training run and where they came from."""

    state: dict[str, torch.Tensor]
    where: str  # the file, for messages
    digest: str  # sha256 of the file's bytes (checkpoint fingerprint)


def read_warm_start(path: str | Path) -> WarmStart:
    """Read a ``model.pt`` (a plain state dict, :func:`gdyn.train.outputs.write_model_dir`).

    Raises
    ------
    InputError
        The file is missing or is not a state dict.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"--init-from {path}: file not found (expected a model.pt)") from None
    try:
        with open(path, "rb") as fh:
            state = torch.load(fh, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise InputError(f"--init-from {path}: not a readable model.pt ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise InputError(f"--init-from {path}: expected a state dict of tensors, got "
                         f"{type(state).__name__}")
    return WarmStart(state, str(path), hashlib.sha256(blob).hexdigest())


def apply_warm_start(model: torch.nn.Module, init: WarmStart) -> None:
    """Load ``init``'s weights into ``model`` (same architecture, strict).

    Raises
    ------
    InputError
        The weights belong to another architecture (kind, state count, widths).
    """
    try:
        model.load_state_dict(init.state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:2]
        raise InputError(f"--init-from {init.where}: expected the weights of a "
                         f"{type(model).__name__} of the same shape as this run's, got "
                         f"others ({' '.join(first)})") from None
