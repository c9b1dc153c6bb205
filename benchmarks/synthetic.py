"""Real-size synthetic trajectories in the paper's file format (no MD: seeded numpy).

    python benchmarks/synthetic.py peo  OUTDIR [--frames 8001] [--trajectories 5] [--seed 0]
                                         [--chains 20] [--salt 50]
    python benchmarks/synthetic.py siau OUTDIR [--frames 1251] [--seed 0]

Each file is a Materials Cloud-style ``.npz`` (``traj_coords`` (F, N, 3) float32 Angstrom,
``lattices`` (F, 3, 3), ``atom_types`` (N,), ``target_index`` (n,)), plus ``site_label``
(F, n) int8, the ground truth of the two-state dynamics below. Like the paper's files they
carry no ``frame_interval_ps``: the config gives ``duration_ps`` (PEO) or
``frame_interval_ps`` (Si-Au). Files are written frame block by frame block through a
memory-mapped temporary, so memory stays ~100 MB whatever the size.

PEO/LiTFSI (the paper's Figs. 4-5 system): 20 chains HO-(CH2-CH2-O)50-H (degree of
polymerisation 50) and 50 LiTFSI, Li/EO = 50/1000 = 0.05: C 2100, H 4040, O 1220, Li 50,
N 50, S 100, F 300 = 7,860 atoms in a 43.3 A cube (1.2 g/cm3); 50 Li targets; 5
trajectories x 8,001 frames (10 ps: 80 ns each). Each Li has two sites: an "ether" site
inside a crown of 5 chain O atoms at 2.1 A, and a "TFSI" site next to its own anion (two
sulfonyl O at 2.0 A, the N at 3.0 A, S and F further out). It hops between them as a
two-state Markov chain with mean dwell times 3,000 ps (ether) and 1,500 ps (TFSI): the
populations are 2/3 and 1/3 and the relaxation time 1 / (1/3000 + 1/1500) = 1,000 ps,
inside the paper config's lag grid (100-2000 ps). Every other atom vibrates around its
own (random) position with 0.3 A Gaussian noise; the sites' atoms keep their geometry.

Si-Au (Fig. 3): a Si(110)/Si-Au liquid slab of 2,000 atoms: two crystalline Si films of
400 atoms (a diamond-like lattice, 5.431 A) and 1,200 liquid atoms with 23.4 % Si (281 Si,
919 Au) in a 21.7 x 21.7 x 75 A cell, 1,251 frames (20 ps: 25 ns). Targets: the liquid Si
and the two film layers next to the liquid (all Si within 5 A of an interface), ~560
atoms. Each target switches between a "solid" environment (its lattice site, 0.15 A
noise) and a "liquid" one (a random walk among the Au, 0.6 A per frame) with mean dwell
times 4,000 ps (solid) and 2,000 ps (liquid): relaxation time 1,333 ps.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# PEO/LiTFSI composition (see the module docstring).
N_CHAINS, DP, N_SALT = 20, 50, 50
PEO_L_A = 43.3
PEO_FRAME_PS = 10.0
PEO_DWELL_PS = (3000.0, 1500.0)  # ether, TFSI
SIAU_FRAME_PS = 20.0
SIAU_DWELL_PS = (4000.0, 2000.0)  # solid, liquid
BLOCK_BYTES = 64 * 2**20  # frames generated and written per block


def two_state_chain(rng: np.random.Generator, n_frames: int, n: int, dwell_ps: tuple,
                    frame_ps: float) -> np.ndarray:
    """(F, n) int8 states of n independent two-state Markov chains, started stationary.

    Leaves state 0 with probability frame / dwell0 per frame and state 1 with frame /
    dwell1: relaxation time 1 / (1/dwell0 + 1/dwell1) for frames much shorter than dwells.
    """
    p_leave = np.array([frame_ps / dwell_ps[0], frame_ps / dwell_ps[1]])
    pi1 = p_leave[0] / p_leave.sum()
    state = (rng.random(n) < pi1).astype(np.int8)
    out = np.empty((n_frames, n), dtype=np.int8)
    for f in range(n_frames):
        out[f] = state
        flip = rng.random(n) < p_leave[state]
        state = np.where(flip, 1 - state, state).astype(np.int8)
    return out


def _directions(k: int, rng: np.random.Generator) -> np.ndarray:
    """k roughly even unit vectors (a random rotation of a Fibonacci sphere)."""
    i = np.arange(k) + 0.5
    phi, z = np.pi * (1 + 5**0.5) * i, 1 - 2 * i / k
    v = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], 1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return v @ q


def peo_structure(rng: np.random.Generator, n_chains: int = N_CHAINS,
                  n_salt: int = N_SALT) -> dict:
    """Atom types, base positions, Li site geometry of the PEO/LiTFSI box.

    Fewer chains and salt pairs give a smaller box at the same density (a surrogate of
    the paper's shape with fewer atoms; each Li needs 5 chain O for its crown).
    """
    n_atoms = n_chains * (3 + 7 * DP) + 16 * n_salt
    box = PEO_L_A * (n_atoms / (N_CHAINS * (3 + 7 * DP) + 16 * N_SALT)) ** (1 / 3)
    types: list[int] = []
    for _ in range(n_chains):
        types += [8, 1]  # HO- end
        for _ in range(DP):
            types += [6, 1, 1, 6, 1, 1, 8]  # -CH2-CH2-O-
        types += [1]  # -H end
    chain_o = [i for i, t in enumerate(types) if t == 8]
    salt_start = len(types)
    for _ in range(n_salt):
        types += [3, 7, 16, 16, 8, 8, 8, 8, 6, 6, 9, 9, 9, 9, 9, 9]  # Li N S2 O4 C2 F6
    types_a = np.array(types, dtype=np.int64)
    n = len(types_a)
    base = rng.random((n, 3)) * box
    li = salt_start + 16 * np.arange(n_salt)
    # Two sites per Li, 8 A apart, spread over the box (a jittered grid keeps sites apart).
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cells = rng.permutation(len(grid))[:n_salt]
    centres = (grid[cells] + 0.5 + rng.uniform(-0.15, 0.15, (n_salt, 3))) * box / 4
    offset = _directions(n_salt, rng) * 4.0
    ether, tfsi = (centres - offset) % box, (centres + offset) % box
    crown = rng.choice(chain_o, size=(n_salt, 5), replace=False)
    for k in range(n_salt):
        base[crown[k]] = ether[k] + _directions(5, rng) * 2.1
        a = li[k]  # anion atoms: N, S, S, O x4, C x2, F x6
        d = _directions(16, rng)
        base[a + 4 : a + 6] = tfsi[k] + d[:2] * 2.0  # two sulfonyl O bind the Li
        base[a + 1] = tfsi[k] + d[2] * 3.0  # N
        base[a + 2 : a + 4] = tfsi[k] + d[3:5] * 3.2  # S
        base[a + 6 : a + 8] = tfsi[k] + d[5:7] * 4.0  # the other O
        base[a + 8 : a + 10] = tfsi[k] + d[7:9] * 4.6  # C
        base[a + 10 : a + 16] = tfsi[k] + d[9:15] * 5.2  # F
    pinned = np.zeros(n, dtype=bool)
    pinned[crown.reshape(-1)] = True
    for a in li:
        pinned[a + 1 : a + 16] = True
    # Keep the sites' first shells clean: other atoms move out of 2.6 A of every site.
    sites = np.concatenate([ether, tfsi])
    for _ in range(100):
        d = (base[:, None] - sites[None] + box / 2) % box - box / 2
        bad = ~pinned & (np.linalg.norm(d, axis=-1).min(axis=1) < 2.6)
        bad[li] = False
        if not bad.any():
            break
        base[bad] = rng.random((int(bad.sum()), 3)) * box
    return {"types": types_a, "base": base % box, "li": li, "sites": (ether, tfsi),
            "pinned": pinned, "lattice": np.eye(3) * box}


def siau_structure(rng: np.random.Generator) -> dict:
    """Atom types, base positions and targets of the Si(110)/Si-Au slab."""
    lx = ly = 21.7
    lz = 75.0
    film = 400
    # A diamond-like lattice (8-atom cubic cell, a = 5.431) cut to 4 x 4 x 3 cells per film.
    a = 5.431
    basis = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.25, .25, .25],
                      [.25, .75, .75], [.75, .25, .75], [.75, .75, .25]])
    cells = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(4), indexing="ij"),
                     -1).reshape(-1, 3)
    pts = ((cells[:, None] + basis[None]) * a).reshape(-1, 3)
    lattice_pts = pts[np.argsort(pts[:, 2], kind="stable")][:film]  # whole layers from z = 0
    lattice_pts[:, :2] *= lx / (4 * a)
    thick = float(lattice_pts[:, 2].max())
    film_lo = lattice_pts + np.array([0.0, 0.0, 2.0])
    film_hi = lattice_pts + np.array([0.0, 0.0, lz - thick - 2.0])
    n_liq = 1200
    liq_si = round(0.234 * n_liq)
    z_lo, z_hi = thick + 4.0, lz - thick - 4.0
    liquid = rng.random((n_liq, 3)) * [lx, ly, z_hi - z_lo] + [0, 0, z_lo]
    base = np.concatenate([film_lo, film_hi, liquid])
    types = np.array([14] * (2 * film + liq_si) + [79] * (n_liq - liq_si), dtype=np.int64)
    near = ((base[:, 2] > z_lo - 5.0) & (base[:, 2] < z_lo)) | (
        (base[:, 2] < z_hi + 5.0) & (base[:, 2] > z_hi))
    liquid_si = np.arange(2 * film, 2 * film + liq_si)
    targets = np.unique(np.concatenate([np.flatnonzero(near & (types == 14)), liquid_si]))
    return {"types": types, "base": base, "targets": targets,
            "lattice": np.diag([lx, ly, lz]), "z_range": (z_lo, z_hi)}


def _write_npz(path: Path, arrays: dict, coords_npy: Path) -> None:
    """Write the .npz (ZIP_STORED, zip64) with ``traj_coords`` streamed from a .npy file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("traj_coords.npy", "w", force_zip64=True) as out, open(coords_npy, "rb") as f:
            while chunk := f.read(1 << 24):
                out.write(chunk)
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asarray(value), allow_pickle=False)
    os.replace(tmp, path)


def peo_trajectory(path: Path, n_frames: int, seed: int, structure: dict) -> dict:
    """One PEO-sized trajectory; returns its ground-truth summary."""
    rng = np.random.default_rng(seed)
    base, types, li = structure["base"], structure["types"], structure["li"]
    ether, tfsi = structure["sites"]
    n = len(types)
    labels = two_state_chain(rng, n_frames, len(li), PEO_DWELL_PS, PEO_FRAME_PS)
    noise = np.where(structure["pinned"], 0.1, 0.3)[:, None].astype(np.float32)
    step = max(1, BLOCK_BYTES // (n * 12))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmpdir:
        npy = Path(tmpdir) / "coords.npy"
        coords = np.lib.format.open_memmap(npy, "w+", np.float32, (n_frames, n, 3))
        for lo in range(0, n_frames, step):
            hi = min(n_frames, lo + step)
            block = base.astype(np.float32)[None] + noise * rng.standard_normal(
                (hi - lo, n, 3), dtype=np.float32)
            site = np.where(labels[lo:hi, :, None] == 0, ether[None], tfsi[None])
            block[:, li] = site + 0.2 * rng.standard_normal((hi - lo, len(li), 3))
            coords[lo:hi] = block
        coords.flush()
        del coords
        lattices = np.broadcast_to(structure["lattice"].astype(np.float32), (n_frames, 3, 3))
        _write_npz(path, {"lattices": lattices, "atom_types": types, "target_index": li,
                          "site_label": labels}, npy)
    return {"file": str(path), "frames": n_frames, "atoms": n, "targets": len(li),
            "tfsi_population": float(labels.mean())}


def siau_trajectory(path: Path, n_frames: int, seed: int, structure: dict) -> dict:
    """The Si-Au-sized trajectory; returns its ground-truth summary."""
    rng = np.random.default_rng(seed)
    base, types, targets = structure["base"], structure["types"], structure["targets"]
    lat = structure["lattice"]
    z_lo, z_hi = structure["z_range"]
    n = len(types)
    labels = two_state_chain(rng, n_frames, len(targets), SIAU_DWELL_PS, SIAU_FRAME_PS)
    is_liquid = (base[:, 2] > z_lo) & (base[:, 2] < z_hi)
    liquid = np.flatnonzero(is_liquid)
    noise = np.where(is_liquid, 0.0, 0.15)[:, None]  # the films vibrate about their sites
    # Liquid atoms random-walk in x, y (periodic) and reflect in z inside the liquid.
    walk = base.copy()
    solid_site = base[targets]
    liquid_home = rng.random((len(targets), 3)) * [lat[0, 0], lat[1, 1], z_hi - z_lo] + [0, 0, z_lo]
    step = max(1, BLOCK_BYTES // (n * 12))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmpdir:
        npy = Path(tmpdir) / "coords.npy"
        coords = np.lib.format.open_memmap(npy, "w+", np.float32, (n_frames, n, 3))
        for lo in range(0, n_frames, step):
            hi = min(n_frames, lo + step)
            block = np.empty((hi - lo, n, 3), dtype=np.float32)
            for k in range(hi - lo):
                walk[liquid] += rng.normal(0, 0.6, size=(len(liquid), 3))
                z = walk[liquid, 2]
                z = np.where(z < z_lo, 2 * z_lo - z, z)
                walk[liquid, 2] = np.where(z > z_hi, 2 * z_hi - z, z)
                frame = walk + rng.normal(0, 1, size=(n, 3)) * noise
                liquid_home += rng.normal(0, 0.6, size=liquid_home.shape) * [1, 1, 0]
                state = labels[lo + k]
                frame[targets] = np.where(state[:, None] == 0,
                                          solid_site + rng.normal(0, 0.15, solid_site.shape),
                                          liquid_home)
                block[k] = frame
            coords[lo:hi] = block
        coords.flush()
        del coords
        lattices = np.broadcast_to(lat.astype(np.float32), (n_frames, 3, 3))
        _write_npz(path, {"lattices": lattices, "atom_types": types, "target_index": targets,
                          "site_label": labels}, npy)
    return {"file": str(path), "frames": n_frames, "atoms": n, "targets": len(targets),
            "liquid_population": float(labels.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("system", choices=["peo", "siau"])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--trajectories", type=int, default=5, help="PEO only (paper: 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chains", type=int, default=N_CHAINS,
                    help=f"PEO only: polymer chains (paper {N_CHAINS})")
    ap.add_argument("--salt", type=int, default=N_SALT,
                    help=f"PEO only: LiTFSI pairs, the Li targets (paper {N_SALT}); with "
                    "--chains 1 --salt 10: a 513-atom box of the same density")
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    info = []
    if args.system == "peo":
        structure = peo_structure(rng, args.chains, args.salt)
        for t, letter in zip(range(args.trajectories), "abcdefghij", strict=False):
            info.append(peo_trajectory(args.outdir / f"peo-traj-{letter}.npz",
                                       args.frames or 8001, args.seed * 100 + t + 1, structure))
    else:
        info.append(siau_trajectory(args.outdir / "siau-traj.npz", args.frames or 1251,
                                    args.seed * 100 + 1, siau_structure(rng)))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
