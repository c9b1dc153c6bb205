"""Representative configuration of each learned state (Fig. 4b): a frame where the state's
probability is highest for some target, with the target's first solvation shell.

The rule (:func:`representative_frames`): for state i, the (test frame, target set) with the
largest p_i over every scored row of every test piece; ties go to the first piece (in
``--test`` order), then the earliest frame, then the lowest target-set index. The shell
(:func:`shell_members`) is every atom within ``shell_radius_A`` of the target set's centre
(minimum image), the target's own atoms included; its radius is, in this order, the
config's ``structure/representative/shell_radius_A``, the state's first-solvation-shell
edge r* from ``charge.csv`` (Supp. Note 3), or :data:`DEFAULT_SHELL_RADIUS_A`, and at
most just under half the cell's smallest width (so the shell is one piece).

Output ``representative.extxyz``: frame i is state i's configuration, the whole cell
translated so that the target's centre sits at the cell centre and folded into the cell
(the shell is then in one piece), with per-atom ``shell`` and ``target`` flags (1/0) and
the info keys ``state``, ``probability``, ``source``, ``frame`` (raw frame index),
``target_set``, ``shell_radius_A`` and ``shell_radius_from``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.analysis.geometry import minimum_image, set_centres
from gdyn.analysis.inputs import Piece, as_pieces
from gdyn.errors import InputError

# Shell radius when neither the config nor charge.csv gives one: past the first minimum of
# the Li-O and Li-N RDFs of PEO/LiTFSI (first peaks at ~2.1 A).
DEFAULT_SHELL_RADIUS_A = 3.0
RULE = ("the frame and target where the state's probability is highest over all test "
        "frames and targets (ties: first piece, earliest frame, lowest target index)")


@dataclass(frozen=True)
class Representative:
    """Where state ``state`` is most certain: piece ``piece`` (index into the pieces), its
    frame ``frame``, target set ``target``, with probability ``probability``."""

    state: int
    piece: int
    frame: int
    target: int
    probability: float


def representative_frames(pieces: Sequence[Piece]) -> list[Representative]:
    """One :class:`Representative` per state: the row with the highest probability of it.

    Parameters
    ----------
    pieces : list of Piece
        Test pieces with their probabilities (F, n_sets, S); NaN rows are never chosen.

    Returns
    -------
    list of Representative
        In state order. Ties go to the first piece, then the earliest frame, then the lowest
        target-set index (the first maximum in that order).
    """
    if not pieces:
        raise InputError("representative: expected at least one test piece, got none")
    n_states = pieces[0].probs.shape[2]
    out = []
    for i in range(n_states):
        best: Representative | None = None
        for k, pc in enumerate(pieces):
            p = np.where(np.isfinite(pc.probs[..., i]), pc.probs[..., i], -np.inf)
            if p.size == 0:
                continue
            flat = int(np.argmax(p))  # first maximum in (frame, target) order
            f, t = np.unravel_index(flat, p.shape)
            value = float(p[f, t])
            if math.isfinite(value) and (best is None or value > best.probability):
                best = Representative(i, k, int(f), int(t), value)
        if best is None:
            raise InputError(f"representative: state {i}: no scored (frame, target) row in "
                             f"the test pieces ({', '.join(pc.source for pc in pieces)})")
        out.append(best)
    return out


def shell_members(coords: np.ndarray, lattice: np.ndarray, centre: np.ndarray,
                  radius_A: float) -> np.ndarray:
    """Indices of the atoms within ``radius_A`` of ``centre`` (minimum image), ascending."""
    delta = minimum_image(np.asarray(coords, dtype=np.float64) - centre, lattice)
    return np.flatnonzero(np.linalg.norm(delta, axis=1) <= radius_A)


def shell_radii(n_states: int, settings: Mapping[str, Any],
                charge_csv: str | Path | None) -> tuple[list[float], str]:
    """Shell radius of each state and where it came from (config, charge.csv r*, default)."""
    block = settings.get("representative") or {}
    if not isinstance(block, Mapping):
        raise InputError("--settings: key 'structure/representative': expected a mapping, "
                         f"got {type(block).__name__}")
    if block.get("shell_radius_A") is not None:
        r = float(block["shell_radius_A"])
        if not r > 0:
            raise InputError("--settings: key 'structure/representative/shell_radius_A': "
                             f"expected a positive number, got {block['shell_radius_A']!r}")
        return [r] * n_states, "config structure/representative/shell_radius_A"
    if charge_csv is not None:
        import pandas as pd

        table = pd.read_csv(charge_csv)
        if not {"state", "r_star_A"} <= set(table.columns):
            raise InputError(f"{charge_csv}: expected columns 'state', 'r_star_A', "
                             f"got {', '.join(map(str, table.columns))}")
        r_star = table.groupby("state")["r_star_A"].first()
        missing = [i for i in range(n_states) if i not in r_star.index]
        if missing:
            raise InputError(f"{charge_csv}: column 'state': expected states 0..{n_states - 1}, "
                             f"missing {missing}")
        radii = [float(r_star[i]) for i in range(n_states)]
        if not all(math.isfinite(r) and r > 0 for r in radii):
            raise InputError(f"{charge_csv}: column 'r_star_A': expected positive radii, "
                             f"got {radii}")
        return radii, f"r* of {Path(charge_csv).name} (first solvation shell edge)"
    return [DEFAULT_SHELL_RADIUS_A] * n_states, "default"


def configuration_atoms(piece: Piece, rep: Representative, shell_radius_A: float,
                        radius_from: str = "") -> Any:
    """ase.Atoms of one representative frame, centred on the target, with its shell.

    The whole cell, translated so that the target set's centre is at the cell centre and
    folded into the cell; per-atom ``shell`` (1: within ``shell_radius_A`` of the centre, or
    a member of the target set) and ``target`` (1: a member); info keys as in the module
    docstring.
    """
    from ase import Atoms

    lattice = np.asarray(piece.lattices[rep.frame], dtype=np.float64)
    coords = np.asarray(piece.coords[rep.frame], dtype=np.float64)
    sets = np.asarray(piece.target_sets)
    centre = set_centres(coords[None], lattice[None], sets[rep.target : rep.target + 1])[0, 0]
    half_width = 0.5 / np.linalg.norm(np.linalg.inv(lattice), axis=0).max()  # half face width
    if shell_radius_A >= half_width:  # keep the shell in one piece around the target
        shell_radius_A = 0.999 * half_width
        radius_from = f"{radius_from}, clamped to half the cell's smallest width".lstrip(", ")
    members = set(shell_members(coords, lattice, centre, shell_radius_A).tolist())
    members |= set(sets[rep.target].tolist())
    shell = np.zeros(coords.shape[0], dtype=np.int64)
    shell[sorted(members)] = 1
    target = np.zeros(coords.shape[0], dtype=np.int64)
    target[sets[rep.target]] = 1
    mid = 0.5 * lattice.sum(axis=0)
    moved = coords - centre + mid
    frac = moved @ np.linalg.inv(lattice)
    moved = (frac - np.floor(frac)) @ lattice
    atoms = Atoms(numbers=np.asarray(piece.atom_types), positions=moved, cell=lattice, pbc=True)
    atoms.new_array("shell", shell)
    atoms.new_array("target", target)
    atoms.info.update({
        "state": rep.state,
        "probability": rep.probability,
        "source": piece.source,
        "frame": int(rep.frame + piece.frame_offset),
        "target_set": rep.target,
        "shell_radius_A": float(shell_radius_A),
        "shell_radius_from": radius_from,
    })
    return atoms


def representative_configurations(
    trajectories: Any, probs: Any = None,
    shell_radius_A: float | Sequence[float] = DEFAULT_SHELL_RADIUS_A, radius_from: str = "",
) -> list[Any]:
    """Each state's representative configuration as ase.Atoms, in state order.

    Parameters
    ----------
    trajectories : Trajectory, Piece or a list of them
        The test data (as for :func:`gdyn.analysis.inputs.as_pieces`).
    probs : ndarray (F, n_sets, S) or a list of them, optional
        State probabilities aligned with each trajectory (not needed for pieces).
    shell_radius_A : float or sequence of float
        Shell radius, one for all states or one per state.
    radius_from : str
        Where the radius came from (written to the ``shell_radius_from`` info key).

    Returns
    -------
    list of ase.Atoms
        :func:`configuration_atoms` of :func:`representative_frames`, state i at index i.
    """
    pieces = as_pieces(trajectories, probs)
    reps = representative_frames(pieces)
    radii = ([float(shell_radius_A)] * len(reps) if np.ndim(shell_radius_A) == 0
             else [float(r) for r in shell_radius_A])  # type: ignore[union-attr]
    if len(radii) != len(reps):
        raise InputError(f"shell_radius_A: expected one radius or {len(reps)} (one per state), "
                         f"got {len(radii)}")
    return [configuration_atoms(pieces[r.piece], r, radii[r.state], radius_from) for r in reps]
