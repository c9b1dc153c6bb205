"""States aligned across the lags and seeds of one (model, n_states).

A VAMP-2 optimum is unique only up to an invertible map of the outputs, so two trainings
(another lag, another seed) number the same states differently. The workflow fixes one
numbering per (system, model, n_states):

* the **reference** is the model of the first lag of the grid; it orders its states by
  decreasing population, the mean probability over the validation frames
  (:func:`gdyn.states.population_order`; ties keep the network's order);
* every other model is mapped onto the reference by the Hungarian assignment
  (:func:`gdyn.states.hungarian_order`, ``scipy.optimize.linear_sum_assignment``) that maximises the
  overlap of the two models' probabilities on the same validation frames
  (:func:`gdyn.states.overlap_matrix`), i.e. the expected fraction of (frame, target set) rows on which
  the two assign the same state.

The permutation is applied to the network's output layer (:func:`permute_output_layer`),
so ``model.pt``, :meth:`GDyNetModel.transform` and every ``probs_*.npz`` come out aligned,
and recorded in the model directory's ``alignment.json`` (docs/contracts.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gdyn.errors import InputError

__all__ = [
    "ALIGNMENT_RULE",
    "POPULATION_RULE",
    "ReferenceProbs",
    "match_rows",
    "output_layer",
    "permute_output_layer",
    "read_reference",
]

POPULATION_RULE = (
    "reference model: states ordered by decreasing population (mean probability over the "
    "validation frames)"
)
ALIGNMENT_RULE = (
    "Hungarian assignment (scipy.optimize.linear_sum_assignment) maximising the overlap "
    "O[a, j] = mean over common validation rows of p_ref[a] * p_model[j] with the reference"
)


class ReferenceProbs:
    """A reference model's probabilities: ``probs`` (F, n_sets, S) with the raw trajectory
    name (``sources[traj]``) and raw frame index of each row (a ``probs_*.npz``)."""

    def __init__(self, probs: np.ndarray, sources: Sequence[str], traj: np.ndarray,
                 frame: np.ndarray, where: str = "reference") -> None:
        self.probs = np.asarray(probs)
        self.sources = [str(s) for s in sources]
        self.traj = np.asarray(traj, dtype=np.int64)
        self.frame = np.asarray(frame, dtype=np.int64)
        self.where = where

    @property
    def n_states(self) -> int:
        return int(self.probs.shape[2])

    def keys(self) -> np.ndarray:
        """One ``"source:frame"`` string per row (what matches rows across models)."""
        names = np.asarray(self.sources, dtype=object)[self.traj]
        return np.array([f"{s}:{f}" for s, f in zip(names, self.frame, strict=True)])


def read_reference(path: str | Path) -> ReferenceProbs:
    """A ``probs_{part}.npz`` (docs/contracts.md) as :class:`ReferenceProbs`, checked."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("probs", "traj", "sources", "frame") if k not in z.files]
            if missing:
                raise InputError(f"{path}: key {missing[0]!r}: missing (expected a probs file)")
            probs, traj, frame = z["probs"], z["traj"], z["frame"]
            sources = [str(s) for s in z["sources"]]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected the reference model's "
                         "probs_val.npz)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
    if probs.ndim != 3 or len(traj) != len(probs) or len(frame) != len(probs):
        raise InputError(
            f"{path}: key 'probs': expected (F, n_sets, n_states) with F = len(traj) = "
            f"len(frame), got {probs.shape}, {len(traj)}, {len(frame)}"
        )
    if len(probs) and (traj.min() < 0 or traj.max() >= len(sources)):
        raise InputError(f"{path}: key 'traj': expected indices into 'sources' "
                         f"(0..{len(sources) - 1}), got {traj.min()}..{traj.max()}")
    return ReferenceProbs(probs, sources, traj, frame, str(path))


def match_rows(reference: ReferenceProbs, model: ReferenceProbs) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i_ref, i_model)`` of the (trajectory, frame) rows both hold."""
    ref_keys, model_keys = reference.keys(), model.keys()
    common, i_ref, i_model = np.intersect1d(ref_keys, model_keys, return_indices=True)
    if not len(common):
        raise InputError(
            f"{reference.where}: no (trajectory, frame) row in common with {model.where} "
            f"(expected probabilities of the same validation frames; reference sources "
            f"{', '.join(reference.sources)}, model sources {', '.join(model.sources)})"
        )
    return i_ref, i_model












def output_layer(module: torch.nn.Module, n_states: int) -> torch.nn.Linear:
    """The network's output layer: its last ``nn.Linear`` with ``n_states`` outputs.

    Every model kind of :data:`gdyn.models.REGISTRY` ends in such a layer followed by a
    softmax over states (``GDyNetModule.out``, ``VAMPNetModule.net[-1]``); a variant that
    does not fails :func:`permute_output_layer`'s check instead of mislabelling states.
    """
    layers = [m for m in module.modules()
              if isinstance(m, torch.nn.Linear) and m.out_features == n_states]
    if not layers:
        raise ValueError(f"{type(module).__name__}: no nn.Linear with {n_states} outputs "
                         "(states cannot be permuted)")
    return layers[-1]


def permute_output_layer(
    module: torch.nn.Module, order: Sequence[int], check: Any = None
) -> None:
    """Make output ``a`` of ``module`` what output ``order[a]`` was (in place).

    ``check``: an optional ``(batch, before)`` pair, the model input of a few rows and the
    outputs it gave before; the permuted model must give ``before[:, order]``.
    """
    order_t = torch.as_tensor(np.asarray(order, dtype=np.int64))
    layer = output_layer(module, len(order_t))
    with torch.no_grad():
        layer.weight.copy_(layer.weight[order_t].clone())
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[order_t].clone())
    if check is not None:
        batch, before = check
        was = module.training
        module.eval()
        with torch.no_grad():
            after = module(batch).float().cpu().numpy()
        module.train(was)
        expected = np.asarray(before)[..., order_t.numpy()]
        if not np.allclose(after.reshape(expected.shape), expected, atol=1e-5):
            raise ValueError(f"{type(module).__name__}: permuting the output layer did not "
                             "permute the state probabilities (an output layer that is not "
                             "the last nn.Linear before a softmax?)")
