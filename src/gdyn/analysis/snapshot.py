"""One frame's per-atom state probabilities as extended XYZ (for OVITO) and a PNG (Figs. 2c, 3b)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gdyn.analysis.inputs import Piece
from gdyn.errors import InputError
from gdyn.files import atomic_path


def snapshot_atoms(piece: Piece, frame: int) -> Any:
    """ase.Atoms of one frame with per-atom ``state_prob_<i>`` (NaN for non-targets) and
    ``state`` (argmax, -1 for non-targets); members of a target set share its values."""
    from ase import Atoms

    f = frame if frame >= 0 else piece.n_frames + frame
    if not 0 <= f < piece.n_frames:
        raise InputError(
            f"structure/snapshot_frame: expected a frame in [-{piece.n_frames}, "
            f"{piece.n_frames}) of {piece.path}, got {frame}"
        )
    atoms = Atoms(numbers=np.asarray(piece.atom_types), positions=np.asarray(piece.coords[f]),
                  cell=np.asarray(piece.lattices[f]), pbc=True)
    n_states = piece.probs.shape[2]
    prob = np.full((atoms.get_global_number_of_atoms(), n_states), np.nan)
    for s, members in enumerate(piece.target_sets):
        prob[members] = piece.probs[f, s]
    state = np.where(np.isfinite(prob).all(axis=1), np.argmax(np.nan_to_num(prob, nan=-1.0), axis=1), -1)
    for i in range(n_states):
        atoms.new_array(f"state_prob_{i}", prob[:, i])
    atoms.new_array("state", state.astype(np.int64))
    atoms.info["frame"] = int(f + piece.frame_offset)
    atoms.info["source"] = piece.source
    return atoms


def plot_snapshot(atoms: Any, png: Path, title: str) -> None:
    """x-z projection of the atoms coloured by the probability of state 0, written to ``png``.

    A bare :class:`matplotlib.figure.Figure` (no pyplot): no global figure state and no
    dependence on the process's backend.
    """
    from matplotlib.figure import Figure

    pos = atoms.get_positions()
    state = atoms.arrays["state"]
    p0 = atoms.arrays["state_prob_0"]
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    other = state < 0
    ax.scatter(pos[other, 0], pos[other, 2], s=8, c="0.8", label="other atoms")
    sc = ax.scatter(pos[~other, 0], pos[~other, 2], s=20, c=p0[~other], cmap="coolwarm",
                    vmin=0, vmax=1, edgecolors="k", linewidths=0.3)
    fig.colorbar(sc, ax=ax, label="probability of state 0")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("z (Å)")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=150)
