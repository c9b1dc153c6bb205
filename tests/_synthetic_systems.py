"""Small synthetic trajectories shaped like the paper's Si-Au and PEO/LiTFSI systems, in the
Materials Cloud ``.npz`` format, with the workflow's split pieces, probabilities and Koopman
summary around them (for the picture panels and the representative configurations).

* Si-Au: a diamond-Si(001) slab (crystalline, 2 x 2 x 2 conventional cubes) under a
  liquid-like Au-Si layer (23 % Si, random positions at least 2.3 A apart); targets are
  the liquid Si and the top two solid layers, as in the paper.
* PEO/LiTFSI: two PEO chains (C, H, O, hydroxyl ends), TFSI anions (N, S, O, C, F) and Li,
  with covalent geometry close enough for bonds to be recognised.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SI_A = 5.431  # diamond Si lattice constant (A)
Z = {"H": 1, "Li": 3, "C": 6, "N": 7, "O": 8, "F": 9, "Si": 14, "S": 16, "Au": 79}


def _random_fill(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int,
                 existing: np.ndarray, d_min: float) -> np.ndarray:
    """``n`` random points in the box [lo, hi) at least ``d_min`` from each other and from
    ``existing`` (periodic in x and y with the box's x/y lengths)."""
    out: list[np.ndarray] = []
    period = (hi - lo)[:2]
    for _ in range(200 * n):
        if len(out) == n:
            break
        p = lo + rng.random(3) * (hi - lo)
        others = np.vstack([existing, *out]) if len(out) or len(existing) else np.zeros((0, 3))
        d = others - p
        d[:, :2] -= period * np.round(d[:, :2] / period)
        if not len(others) or np.linalg.norm(d, axis=1).min() >= d_min:
            out.append(p)
    if len(out) != n:
        raise RuntimeError("could not place the liquid atoms")
    return np.asarray(out)


def siau_frames(n_frames: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """A Si-Au-like slab: crystalline Si at the bottom, liquid Au-Si above (raw npz keys),
    plus ``region`` (n_targets,) 0 liquid-interface, 1 solid, 2 solid-interface, 3 liquid
    (the synthetic answer of each target)."""
    rng = np.random.default_rng(seed)
    basis = np.array([[0, 0, 0], [0, 2, 2], [2, 0, 2], [2, 2, 0],
                      [1, 1, 1], [1, 3, 3], [3, 1, 3], [3, 3, 1]]) / 4.0
    cubes = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    solid = ((cubes[:, None, :] + basis[None]).reshape(-1, 3)) * SI_A
    lx = 2 * SI_A
    solid_top = solid[:, 2].max()
    lz = 2 * SI_A + 14.0
    liquid = _random_fill(rng, np.array([0.0, 0.0, solid_top + 2.0]),
                          np.array([lx, lx, lz - 1.2]), 64, solid, 2.3)
    is_si_liquid = rng.random(len(liquid)) < 0.23
    coords0 = np.vstack([solid, liquid])
    types = np.r_[np.full(len(solid), Z["Si"]), np.where(is_si_liquid, Z["Si"], Z["Au"])]
    n_solid = len(solid)
    top_layers = np.flatnonzero(solid[:, 2] >= solid_top - SI_A / 4 - 0.01)
    liquid_si = n_solid + np.flatnonzero(is_si_liquid)
    targets = np.r_[top_layers, liquid_si]
    z_liq = coords0[liquid_si, 2]
    region = np.r_[np.where(solid[top_layers, 2] >= solid_top - 0.01, 2, 1),
                   np.where(z_liq < solid_top + 5.0, 0, 3)]
    noise = rng.normal(0.0, 0.05, (n_frames, len(types), 3))
    drift = np.cumsum(rng.normal(0.0, 0.15, (n_frames, len(types), 3)), axis=0)
    drift[:, :n_solid] = 0.0
    lattice = np.diag([lx, lx, lz])
    return {
        "traj_coords": (coords0 + noise + drift).astype(np.float32),
        "lattices": np.repeat(lattice[None], n_frames, 0),
        "atom_types": types.astype(np.int64),
        "target_index": targets.astype(np.int64),
        "region": region.astype(np.int64),
    }


def _peo_chain(start: np.ndarray, n_units: int) -> tuple[list[int], list[np.ndarray]]:
    """A zigzag HO-(CH2-CH2-O)n-H chain along x from ``start``: element numbers, positions."""
    zs: list[int] = []
    pos: list[np.ndarray] = []
    x = start.astype(float).copy()
    step = np.array([1.25, 0.0, 0.0])
    up = np.array([0.0, 0.0, 0.72])
    zs.append(Z["O"])  # hydroxyl O and its H
    pos.append(x.copy())
    zs.append(Z["H"])
    pos.append(x + np.array([-0.6, 0.0, 0.75]))
    sign = 1.0
    for _ in range(n_units):
        for el in ("C", "C", "O"):
            x = x + step + sign * up
            sign = -sign
            zs.append(Z[el])
            pos.append(x.copy())
            if el == "C":
                for dy in (0.9, -0.9):
                    zs.append(Z["H"])
                    pos.append(x + np.array([0.0, dy, 0.6 * sign]))
    return zs, pos


def _tfsi(centre: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
    """N(SO2CF3)2 around ``centre``: 15 atoms with covalent bond lengths."""
    zs = [Z["N"]]
    pos = [centre.copy()]
    for sx in (1.0, -1.0):
        s = centre + np.array([1.45 * sx, 0.6, 0.0])
        zs.append(Z["S"])
        pos.append(s)
        for oz in (1.2, -1.2):
            zs.append(Z["O"])
            pos.append(s + np.array([0.3 * sx, 0.6, oz]))
        c = s + np.array([0.9 * sx, 1.55, 0.0])
        zs.append(Z["C"])
        pos.append(c)
        for f in ([0.9, 0.6, 0.6], [0.9, 0.6, -0.6], [0.0, 1.3, 0.0]):
            zs.append(Z["F"])
            pos.append(c + np.array([f[0] * sx, f[1], f[2]]))
    return zs, pos


def peo_frames(n_frames: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """A PEO/LiTFSI-like cell: 2 PEO chains, 2 TFSI and 4 Li (C/H/O/Li/N/S/F).

    Li 0 sits between the O of one chain, Li 1 between the O of a TFSI, Li 2 near a chain
    and a TFSI, Li 3 near the hydroxyl end of the other chain.
    """
    rng = np.random.default_rng(seed)
    length = 22.0
    zs: list[int] = []
    pos: list[np.ndarray] = []
    for start in (np.array([2.0, 4.0, 5.0]), np.array([2.0, 15.0, 14.0])):
        z, p = _peo_chain(start, 4)
        zs += z
        pos += p
    tfsi_centres = [np.array([8.0, 9.0, 17.0]), np.array([15.0, 17.0, 6.0])]
    for c in tfsi_centres:
        z, p = _tfsi(c)
        zs += z
        pos += p
    li = np.array([[6.0, 4.0, 7.2], [8.0, 10.8, 18.6], [12.5, 6.5, 9.5], [2.0, 13.0, 14.8]])
    first_li = len(zs)
    zs += [Z["Li"]] * 4
    pos += list(li)
    coords0 = np.asarray(pos)
    noise = rng.normal(0.0, 0.03, (n_frames, len(zs), 3))
    return {
        "traj_coords": (coords0 + noise).astype(np.float32),
        "lattices": np.repeat((np.eye(3) * length)[None], n_frames, 0),
        "atom_types": np.asarray(zs, dtype=np.int64),
        "target_index": np.arange(first_li, first_li + 4, dtype=np.int64),
    }


def write_analysis_inputs(tmp: Path, trajectories: dict[str, dict[str, np.ndarray]],
                          probs: dict[str, np.ndarray], fi_ps: float = 20.0,
                          offset: int = 3) -> list[str]:
    """Test split pieces (frames [offset, F) of each raw trajectory, ``probs[name]`` on
    each of them), one probs_test.npz at tau* and a summary.json with ``state_order`` =
    identity; returns the CLI arguments ``--test ... --probs ... --summary ...``."""
    pieces = []
    rows_p, rows_t, rows_f = [], [], []
    for k, (name, raw) in enumerate(trajectories.items()):
        path = tmp / "split" / "test" / f"{name}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = {key: raw[key] for key in ("atom_types", "target_index")}
        keys |= {key: raw[key][offset:] for key in ("traj_coords", "lattices")}
        np.savez(path, **keys, frame_interval_ps=np.float64(fi_ps),
                 frame_offset=np.int64(offset), source=np.str_(name))
        pieces.append(str(path))
        p = probs[name]
        assert p.shape[0] == raw["traj_coords"].shape[0] - offset, (name, p.shape)
        rows_p.append(p.astype(np.float32))
        rows_t.append(np.full(p.shape[0], k, np.int64))
        rows_f.append(np.arange(p.shape[0], dtype=np.int64) + offset)
    lag_ps = 2 * fi_ps
    probs_path = tmp / "models" / "probs_test.npz"
    probs_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(probs_path, probs=np.concatenate(rows_p), traj=np.concatenate(rows_t),
             sources=np.array(list(trajectories)), frame=np.concatenate(rows_f),
             lag_ps=np.float64(lag_ps), frame_interval_ps=np.float64(fi_ps))
    n_states = next(iter(probs.values())).shape[2]
    summary = {"tau_star_ps": lag_ps, "probs_test": str(probs_path),
               "state_order": list(range(n_states))}
    (tmp / "summary.json").write_text(json.dumps(summary))
    return ["--test", *pieces, "--probs", str(probs_path), "--summary", str(tmp / "summary.json")]


def crisp_probs(states: np.ndarray, n_states: int, certainty: float = 0.94) -> np.ndarray:
    """(F, n, S) probabilities that put ``certainty`` on ``states`` (F, n) and share the rest."""
    rest = (1.0 - certainty) / (n_states - 1)
    p = np.full((*states.shape, n_states), rest)
    np.put_along_axis(p, states[..., None], certainty, axis=-1)
    return p
