"""Steinhardt q3 of the target atoms and its distribution per learned state (Supp. Fig. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gdyn.analysis.inputs import Piece, element_number
from gdyn.errors import InputError
from gdyn.settings import default


def _upper_triangular(lattice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation Q, box matrix R) with lattice^T = Q R, R upper triangular, diag(R) > 0:
    freud wants its box vectors (columns of R) in this orientation."""
    q, r = np.linalg.qr(lattice.T)
    sign = np.sign(np.diag(r))
    sign[sign == 0] = 1
    return q * sign, sign[:, None] * r


def steinhardt_q3(positions: np.ndarray, lattice: np.ndarray, n_neighbors: int) -> np.ndarray:
    """q3 of every point from its ``n_neighbors`` nearest periodic neighbours (freud)."""
    import freud

    rot, box_matrix = _upper_triangular(np.asarray(lattice, dtype=np.float64))
    box = freud.box.Box.from_matrix(box_matrix)
    pts = box.wrap((np.asarray(positions, dtype=np.float64) @ rot).astype(np.float32))
    ql = freud.order.Steinhardt(l=3)
    ql.compute((box, pts), neighbors={"num_neighbors": int(n_neighbors), "exclude_ii": True})
    return np.asarray(ql.particle_order, dtype=np.float64)


def q3_distribution(
    pieces: Sequence[Piece], element: str, n_neighbors: int, n_bins: int,
    stride: int = default("structure", "q3", "stride"),
) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres on [0, 1], density (S, n_bins)): p_i-weighted histogram of the
    targets' q3, normalised to unit area per state. Neighbours are atoms of ``element``."""
    from tqdm import tqdm

    z = element_number(element, "structure/q3/element")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    n_states = pieces[0].probs.shape[2]
    hist = np.zeros((n_states, n_bins))
    for pc in pieces:
        if pc.target_sets.shape[1] != 1:
            raise InputError(f"{pc.path}: key 'target_index': q3 needs single-atom targets, "
                             f"got sets of {pc.target_sets.shape[1]}")
        atoms = np.flatnonzero(np.asarray(pc.atom_types) == z)
        rows = np.searchsorted(atoms, pc.target_sets[:, 0])
        if atoms.size == 0 or not np.array_equal(atoms[np.minimum(rows, atoms.size - 1)],
                                                 pc.target_sets[:, 0]):
            raise InputError(f"{pc.path}: key 'target_index': expected targets of element "
                             f"{element} (structure/q3/element)")
        w = pc.weights()
        for f in tqdm(range(0, pc.n_frames, stride), desc=f"q3 {pc.source}", leave=False):
            if not pc.valid[f].any():
                continue
            q3 = steinhardt_q3(np.asarray(pc.coords[f, atoms]), np.asarray(pc.lattices[f]),
                               n_neighbors)[rows]
            for i in range(n_states):
                hist[i] += np.histogram(q3, bins=edges, weights=w[f, :, i])[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        dens = hist / (hist.sum(axis=1, keepdims=True) * np.diff(edges)[None])
    return 0.5 * (edges[1:] + edges[:-1]), dens


def q3_table(pieces: Sequence[Piece], element: str, n_neighbors: int, n_bins: int,
             stride: int = default("structure", "q3", "stride")) -> Any:
    """q3.csv rows (state, q3, density) of :func:`q3_distribution`."""
    import pandas as pd

    q, dens = q3_distribution(pieces, element, n_neighbors, n_bins, stride)
    return pd.concat([pd.DataFrame({"state": i, "q3": q, "density": dens[i]})
                      for i in range(dens.shape[0])], ignore_index=True)
