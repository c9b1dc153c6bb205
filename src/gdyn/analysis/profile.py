"""Where the states are: density of each state along an axis (Fig. 3c) and the folded
target positions with their state probabilities (Figs. 2c, 3b)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gdyn.analysis.geometry import fold_fractional, set_centres
from gdyn.analysis.inputs import Piece

# Rows in positions-*.csv (contract: at most 20000, subsampled evenly).
MAX_POSITION_ROWS = 20_000
AXES = {"x": 0, "y": 1, "z": 2}


def state_profile(pieces: Sequence[Piece], axis: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, density (S, n_bins)): expected number of targets of each state per
    Angstrom along ``axis``, averaged over frames (integrates to the mean state count).

    Centres are folded into the cell first; bins span the cell's extent along the axis.
    """
    k = AXES[axis]
    lo, hi = math.inf, -math.inf
    for pc in pieces:
        corners = np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(-1, 3)
        proj = np.einsum("cj,fjk->fck", corners.astype(float), np.asarray(pc.lattices))[..., k]
        lo, hi = min(lo, float(proj.min())), max(hi, float(proj.max()))
    edges = np.linspace(lo, hi, n_bins + 1)
    n_states = pieces[0].probs.shape[2]
    hist = np.zeros((n_states, n_bins))
    n_frames = 0.0
    for pc in pieces:
        lat = np.asarray(pc.lattices, dtype=np.float64)
        centres = set_centres(np.asarray(pc.coords, dtype=np.float64), lat, pc.target_sets)
        pos = np.einsum("fnj,fjk->fnk", fold_fractional(centres, lat[:, None]), lat)[..., k]
        w = pc.weights()
        for i in range(n_states):
            hist[i] += np.histogram(pos.ravel(), bins=edges, weights=w[..., i].ravel())[0]
        n_frames += pc.valid.any(axis=1).sum()
    return 0.5 * (edges[1:] + edges[:-1]), hist / (max(n_frames, 1.0) * np.diff(edges))


def profile_table(pieces: Sequence[Piece], axis: str, n_bins: int) -> Any:
    """profile.csv rows (state, axis, position_A, density) of :func:`state_profile`."""
    import pandas as pd

    pos, dens = state_profile(pieces, axis, n_bins)
    return pd.concat([pd.DataFrame({"state": i, "axis": axis, "position_A": pos,
                                    "density": dens[i]}) for i in range(dens.shape[0])],
                     ignore_index=True)


def positions_table(pieces: Sequence[Piece], max_rows: int = MAX_POSITION_ROWS) -> Any:
    """Folded fractional target positions with state probabilities, subsampled evenly."""
    import pandas as pd

    parts = []
    for pc in pieces:
        f_idx, s_idx = np.nonzero(pc.valid)
        parts.append((pc, f_idx, s_idx))
    total = sum(p[1].size for p in parts)
    keep = np.unique(np.linspace(0, total - 1, min(max_rows, total)).round().astype(np.int64))
    frames_out = []
    start = 0
    for pc, f_idx, s_idx in parts:
        sel = keep[(keep >= start) & (keep < start + f_idx.size)] - start
        start += f_idx.size
        if sel.size == 0:
            continue
        f, s = f_idx[sel], s_idx[sel]
        uf, inv = np.unique(f, return_inverse=True)
        lat = np.asarray(pc.lattices[uf], dtype=np.float64)
        centres = set_centres(np.asarray(pc.coords[uf], dtype=np.float64), lat, pc.target_sets)
        frac = fold_fractional(centres, lat[:, None])[inv, s]
        cols = {"traj": pc.source, "frame": f + pc.frame_offset, "target": s,
                "x_frac": frac[:, 0], "y_frac": frac[:, 1], "z_frac": frac[:, 2]}
        for i in range(pc.probs.shape[2]):
            cols[f"p{i}"] = pc.probs[f, s, i]
        frames_out.append(pd.DataFrame(cols))
    return pd.concat(frames_out, ignore_index=True)
