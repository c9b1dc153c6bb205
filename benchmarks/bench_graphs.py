"""Graph construction: atom-frames per second against the original gdynet's method, and
peak memory of the full ``gdyn graphs`` store path against trajectory length.

    python benchmarks/bench_graphs.py [--frames 100] [--rss-frames 250] [--quick]

Systems (all periodic):
  toy        the paper's toy cell: 5 atoms (4 S on fcc sites + 1 Li) in a 6.5 A cube
  liquid     2,000 Lennard-Jones argon atoms at liquid density (0.0213 / A^3, T = 100 K),
             orthogonal cube, frames 0.2 ps apart from a short OpenMM run
  triclinic  the same liquid simulated in a triclinic cell of the same volume

Ours: ``gdyn.graph.NeighbourSearch.frames`` in blocks of 64 frames, one thread (exactly
what each worker of ``gdyn graphs`` runs): the compiled cell-list kernel
(``gdyn.graph.kernel``) for the liquids, the batched image brute force for the toy; "seeded"
is the same with ``tie_seeds`` = frame index, as ``gdyn graphs`` calls it. "vesin alone" is
vesin's half pair list at our final cutoff (the pair search the previous version was built
on), when vesin is installed. Baselines do what the original gdynet
preprocessing did (txie-93/gdynet, gdynet/preprocess.py), re-implemented here:
  kdtree     orthogonal cells with cutoff < L/2 (its 'kdtree' backend): a periodic KD-tree
             per frame (scipy's cKDTree with boxsize, which is faster than the original's
             image-replaying subclass), a ball query, then per atom minimum-image distances
             and a Python ``sorted`` of (index, distance) tuples, keeping M after the atom.
  direct     everything else (its 'direct' backend, pymatgen get_all_neighbors): per atom
             a quadratic numpy search over all atoms x all images in range, Python tuples,
             ``sorted`` by distance, keep M. The toy (cutoff > L/2) and the triclinic cell
             can only use this one.
Both baselines get a tight radius (the largest true M-th distance over the timed frames
+ 1 %); the original used a fixed 7 A, so this favours the baselines.

Times are CPU seconds of this process (``time.process_time``) so that other jobs sharing
the machine do not distort single-core rates; wall-clock rates are printed beside them.
Ours is timed REPEATS times (unseeded and seeded alternating) and the medians are used.
Results are printed as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gdyn.graph import NeighbourSearch

ROOT = Path(__file__).resolve().parents[1]
TOY_L = 6.5
LIQUID_DENSITY = 0.0213  # atoms / A^3: liquid argon near its triple point
REPEATS = 3  # timings of ours per row (median)
TRICLINIC_SHAPE = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.2, 0.25, 1.0]])


# --------------------------------------------------------------------------------------
# Systems


def toy_frames(n_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """4 S on fcc sites with thermal noise + 1 Li on a random walk, 6.5 A cube."""
    rng = np.random.default_rng(seed)
    fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) * TOY_L
    sulfur = fcc[None] + rng.normal(0, 0.15, (n_frames, 4, 3))
    li = (rng.random(3) * TOY_L + rng.normal(0, 0.3, (n_frames, 3)).cumsum(0))[:, None]
    lattices = np.repeat((np.eye(3) * TOY_L)[None], n_frames, axis=0)
    return np.concatenate([sulfur, li], axis=1), lattices


def liquid_frames(
    n_frames: int, n_atoms: int = 2000, shape: np.ndarray | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Lennard-Jones argon liquid from OpenMM (CPU, 1 thread): coords (F, N, 3) A."""
    import openmm as mm
    import openmm.unit as u

    shape = np.eye(3) if shape is None else np.asarray(shape, dtype=float)
    volume = n_atoms / LIQUID_DENSITY
    lattice = shape * (volume / abs(np.linalg.det(shape))) ** (1 / 3)
    n_side = math_ceil_cbrt(n_atoms)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    start = ((grid[:n_atoms] + 0.5) / n_side) @ lattice
    system = mm.System()
    system.setDefaultPeriodicBoxVectors(*[mm.Vec3(*row) * 0.1 for row in lattice])
    force = mm.NonbondedForce()
    force.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(0.85)
    for _ in range(n_atoms):
        system.addParticle(39.95)
        force.addParticle(0.0, 0.34, 0.998)  # sigma 3.4 A, epsilon 120 K
    system.addForce(force)
    integrator = mm.LangevinMiddleIntegrator(100 * u.kelvin, 5 / u.picosecond, 0.004 * u.picosecond)
    integrator.setRandomNumberSeed(seed + 1)
    platform_ = mm.Platform.getPlatformByName("CPU")
    context = mm.Context(system, integrator, platform_, {"Threads": "1"})
    context.setPositions(start * 0.1)
    mm.LocalEnergyMinimizer.minimize(context, 10, 200)
    context.setVelocitiesToTemperature(100 * u.kelvin, seed + 2)
    integrator.step(3000)  # 12 ps: melts the start lattice
    frames = []
    for _ in range(n_frames):
        integrator.step(50)
        state = context.getState(getPositions=True)
        frames.append(state.getPositions(asNumpy=True).value_in_unit(u.angstrom))
    lattices = np.repeat(lattice[None], n_frames, axis=0)
    return np.asarray(frames, dtype=np.float64), lattices


def math_ceil_cbrt(n: int) -> int:
    k = round(n ** (1 / 3))
    return k if k**3 >= n else k + 1


# --------------------------------------------------------------------------------------
# Baselines (the original gdynet preprocessing, see the module docstring)


def baseline_kdtree(coords: np.ndarray, lattice: np.ndarray, m: int, radius: float):
    """Original 'kdtree' backend: periodic KD-tree ball query + Python sorting per atom."""
    from scipy.spatial import cKDTree

    box = np.diagonal(lattice)
    wrapped = np.mod(coords, box)
    tree = cKDTree(wrapped, boxsize=box)
    index, distance = [], []
    for i, nbrs in enumerate(tree.query_ball_point(wrapped, radius)):
        delta = np.abs(wrapped[i] - wrapped[nbrs])
        delta = np.where(delta > 0.5 * box, delta - box, delta)
        dists = np.sqrt((delta**2).sum(axis=-1))
        pairs = sorted(zip(nbrs, dists, strict=True), key=lambda x: x[1])
        if pairs[0][0] != i or len(pairs) < m + 1:
            raise RuntimeError("kdtree baseline: radius too small")
        index.append([j for j, _ in pairs[1 : m + 1]])
        distance.append([d for _, d in pairs[1 : m + 1]])
    return np.array(index, dtype=np.int32), np.array(distance, dtype=np.float32)


def baseline_kdtree_original(coords: np.ndarray, lattice: np.ndarray, m: int, radius: float):
    """The original 'kdtree' backend literally: its own periodic KD-tree, which queries a
    plain cKDTree once per relevant mirror image of every point from Python, then the same
    per-atom Python sorting. (scipy's boxsize did not exist when gdynet was written.)"""
    from scipy.spatial import cKDTree

    box = np.diagonal(lattice)
    wrapped = coords - np.floor(coords / box) * box
    tree = cKDTree(wrapped)
    index, distance = [], []
    for i, x in enumerate(wrapped):
        images = [x]
        for k in range(3):  # mirror images across each face the ball reaches
            shift = np.zeros(3)
            shift[k] = box[k]
            extra = []
            if abs(x[k]) < radius:
                extra.extend(y + shift for y in images)
            if abs(box[k] - x[k]) < radius:
                extra.extend(y - shift for y in images)
            images.extend(extra)
        nbrs = []
        for y in images:
            nbrs.extend(tree.query_ball_point(y, radius))
        delta = np.abs(x - wrapped[nbrs])
        delta = np.where(delta > 0.5 * box, delta - box, delta)
        dists = np.sqrt((delta**2).sum(axis=-1))
        pairs = sorted(zip(nbrs, dists, strict=True), key=lambda p: p[1])
        if pairs[0][0] != i or len(pairs) < m + 1:
            raise RuntimeError("kdtree baseline: radius too small")
        index.append([j for j, _ in pairs[1 : m + 1]])
        distance.append([d for _, d in pairs[1 : m + 1]])
    return np.array(index, dtype=np.int32), np.array(distance, dtype=np.float32)


def baseline_direct(coords: np.ndarray, lattice: np.ndarray, m: int, radius: float):
    """Original 'direct' backend (pymatgen get_all_neighbors): quadratic over images."""
    recip = np.linalg.inv(lattice).T  # rows: reciprocal vectors / 2 pi
    n_max = np.ceil(radius * np.linalg.norm(recip, axis=1)).astype(int) + 1
    shifts = np.array(list(itertools.product(*[range(-k, k + 1) for k in n_max])), dtype=np.float64)
    images = shifts @ lattice
    frac = coords @ np.linalg.inv(lattice)
    wrapped = coords - np.floor(frac) @ lattice
    all_points = (wrapped[None, :, :] + images[:, None, :]).reshape(-1, 3)
    ids = np.tile(np.arange(len(coords)), len(shifts))
    index, distance = [], []
    for centre in wrapped:
        d = np.linalg.norm(all_points - centre, axis=1)
        within = np.flatnonzero((d < radius) & (d > 1e-8))
        neighbours = sorted(((int(ids[k]), float(d[k])) for k in within), key=lambda x: x[1])
        if len(neighbours) < m:
            raise RuntimeError("direct baseline: radius too small")
        index.append([j for j, _ in neighbours[:m]])
        distance.append([dd for _, dd in neighbours[:m]])
    return np.array(index, dtype=np.int32), np.array(distance, dtype=np.float32)


BASELINES = {
    "kdtree": baseline_kdtree,
    "kdtree-original": baseline_kdtree_original,
    "direct": baseline_direct,
}


# --------------------------------------------------------------------------------------
# Timing


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(CPU seconds, wall seconds, result) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def ours(coords: np.ndarray, lattices: np.ndarray, m: int, seeded: bool = False):
    search = NeighbourSearch(m)
    index = np.empty((len(coords), coords.shape[1], m), np.int32)
    dist = np.empty((len(coords), coords.shape[1], m), np.float32)
    for lo in range(0, len(coords), 64):
        hi = min(len(coords), lo + 64)
        seeds = np.arange(lo, hi) if seeded else None
        index[lo:hi], dist[lo:hi] = search.frames(coords[lo:hi], lattices[lo:hi], None, seeds)
    return index, dist, search.n_retries, search.cutoff


def vesin_alone(coords: np.ndarray, lattices: np.ndarray, cutoff: float) -> float:
    """CPU seconds of vesin's half pair list alone at ``cutoff`` for every frame (the pair
    search the previous, vesin-based version was built on); NaN without vesin."""
    try:
        import vesin
    except ImportError:
        return float("nan")

    calc = vesin.NeighborList(cutoff=cutoff, full_list=False, n_threads=1)
    calc.compute(coords[0], lattices[0], True, "ijd", copy=False)
    c0 = time.process_time()
    for x, lat in zip(coords, lattices, strict=True):
        calc.compute(np.ascontiguousarray(x), np.ascontiguousarray(lat), True, "ijd", copy=False)
    return time.process_time() - c0


def compare(
    name: str,
    coords: np.ndarray,
    lattices: np.ndarray,
    m: int,
    baseline: str,
    baseline_seconds: float,
) -> dict:
    n_frames, n_atoms = coords.shape[:2]
    ours(coords[:4], lattices[:4], m)  # warm-up (imports, compilation), not timed
    ours(coords[:4], lattices[:4], m, seeded=True)
    # Unseeded and seeded runs alternate, REPEATS times each; medians (the machine is shared).
    runs = [
        (timed(lambda: ours(coords, lattices, m)), timed(lambda: ours(coords, lattices, m, True)))
        for _ in range(REPEATS)
    ]
    cpu = float(np.median([plain[0] for plain, _ in runs]))
    wall = float(np.median([plain[1] for plain, _ in runs]))
    s_cpu = float(np.median([seeded[0] for _, seeded in runs]))
    index, dist, retries, cutoff = runs[0][0][2]
    floor = vesin_alone(coords, lattices, cutoff) if n_atoms >= 100 else float("nan")
    radius = float(dist[..., -1].max()) * 1.01
    base_fn = BASELINES[baseline]
    base_fn(coords[0], lattices[0], m, radius)  # warm-up (imports), not timed
    b_cpu = b_wall = 0.0
    b_frames = 0
    agree = True
    while b_frames < n_frames and (b_frames == 0 or b_cpu < baseline_seconds):
        f = b_frames
        c, w, (b_index, b_dist) = timed(lambda f=f: base_fn(coords[f], lattices[f], m, radius))
        b_cpu, b_wall, b_frames = b_cpu + c, b_wall + w, b_frames + 1
        agree &= bool(np.allclose(b_dist, dist[f], rtol=2e-6, atol=1e-6))
        # Neighbour ids must match wherever a row has no float32 distance ties; the last
        # column may tie with the (M+1)-th, which the baselines break by float64 order.
        untied = (np.diff(dist[f], axis=1) > 0).all(axis=1)
        agree &= bool((b_index[untied, :-1] == index[f][untied, :-1]).all())
    row = {
        "system": name,
        "atoms": n_atoms,
        "M": m,
        "frames": n_frames,
        "ours_cpu_rate": n_frames * n_atoms / cpu,
        "ours_wall_rate": n_frames * n_atoms / wall,
        "ours_seeded_cpu_rate": n_frames * n_atoms / s_cpu,
        "retries": retries,
        "vesin_alone_cpu_rate": n_frames * n_atoms / floor,
        "baseline": baseline,
        "baseline_frames": b_frames,
        "baseline_cpu_rate": b_frames * n_atoms / b_cpu,
        "baseline_wall_rate": b_frames * n_atoms / b_wall,
        "distances_agree": agree,
        "radius_A": radius,
    }
    row["speedup_cpu"] = row["ours_cpu_rate"] / row["baseline_cpu_rate"]
    row["speedup_wall"] = row["ours_wall_rate"] / row["baseline_wall_rate"]
    return row


# --------------------------------------------------------------------------------------
# Full store path: threads and peak memory


def write_split(path: Path, coords: np.ndarray, lattices: np.ndarray, n_frames: int) -> None:
    """A split piece of ``n_frames`` frames: the given frames cycled with small noise."""
    rng = np.random.default_rng(n_frames)
    reps = -(-n_frames // len(coords))
    tiled = np.concatenate([coords] * reps)[:n_frames]
    tiled = tiled + rng.normal(0, 0.02, tiled.shape)
    np.savez(
        path,
        traj_coords=tiled,
        lattices=np.concatenate([lattices] * reps)[:n_frames],
        atom_types=np.full(coords.shape[1], 18),
        target_index=np.arange(0, coords.shape[1], 100),
    )


# Runs gdyn in a fresh interpreter and reports that interpreter's own peak RSS (VmHWM of
# its address space). ru_maxrss from wait4 would include the benchmark's own pages that a
# forked child holds before exec.
_CHILD = (
    "import re, sys\n"
    "from gdyn.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print('VmHWM_kB', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_store(
    split: Path, out: Path, m: int, threads: int, extra: list[str]
) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one ``gdyn graphs`` run in a fresh process."""
    cmd = [
        sys.executable,
        "-c",
        _CHILD,
        "graphs",
        str(split),
        str(out),
        "--n-neighbors",
        str(m),
        "--threads",
        str(threads),
        "--quiet",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"gdyn graphs failed: {proc.stderr}")
    peak_kb = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("VmHWM_kB")]
    return wall, int(peak_kb[-1]) / 1024


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.node() or 'host'}: nproc {os.cpu_count()}, CPU '{model}', "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {_version('numba')}, vesin {_version('vesin')}, load average {load:.2f}"
    )


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per system for ours")
    parser.add_argument("--toy-frames", type=int, default=4096)
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=3.0,
        help="CPU seconds of baseline frames per row (at least one frame)",
    )
    parser.add_argument("--rss-frames", type=int, default=250, help="F for the F vs 4F memory test")
    parser.add_argument("--atoms", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--json", type=Path, default=None, help="also write rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.toy_frames, args.atoms = 8, 64, 300
        args.baseline_seconds, args.rss_frames = 0.2, 16
    print(f"machine: {machine()}", flush=True)

    t0 = time.perf_counter()
    systems = {
        "toy": (toy_frames(args.toy_frames), ("direct",)),
        "liquid": (liquid_frames(args.frames, args.atoms), ("kdtree", "kdtree-original")),
        "triclinic": (liquid_frames(args.frames, args.atoms, TRICLINIC_SHAPE), ("direct",)),
    }
    print(f"systems generated in {time.perf_counter() - t0:.1f} s", flush=True)

    rows = []
    for name, ((coords, lattices), baselines) in systems.items():
        for m in (12, 20):
            for baseline in baselines:
                row = compare(name, coords, lattices, m, baseline, args.baseline_seconds)
                rows.append(row)
                print(json.dumps(row), flush=True)

    print(
        "\n| system | atoms | M | ours atom-frames/s (CPU) | ours (wall) | vesin alone (CPU) "
        "| ours seeded (CPU) | baseline | baseline atom-frames/s (CPU) | speedup (CPU) "
        "| speedup (wall) | results agree |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['system']} | {r['atoms']} | {r['M']} | {r['ours_cpu_rate']:.3g} | "
            f"{r['ours_wall_rate']:.3g} | {r['vesin_alone_cpu_rate']:.3g} | "
            f"{r['ours_seeded_cpu_rate']:.3g} | "
            f"{r['baseline']} ({r['baseline_frames']} frames) | {r['baseline_cpu_rate']:.3g} | "
            f"{r['speedup_cpu']:.0f}x | {r['speedup_wall']:.0f}x | {r['distances_agree']} |"
        )

    # Full store path: threads, then peak RSS for F and 4F frames.
    coords, lattices = systems["liquid"][0]
    store_rows = []
    with tempfile.TemporaryDirectory(prefix="bench_graphs_") as tmp:
        tmpdir = Path(tmp)
        for n_frames in (args.rss_frames, 4 * args.rss_frames):
            split = tmpdir / f"split{n_frames}.npz"
            write_split(split, coords, lattices, n_frames)
            for threads in (1, 2):
                for mode, extra in (("all rows", ["--all-rows"]), ("n_conv 3", ["--n-conv", "3"])):
                    if n_frames != args.rss_frames and (threads, mode) != (1, "all rows"):
                        continue
                    out = tmpdir / f"store{n_frames}-{threads}-{mode[0]}"
                    wall, rss = run_store(split, out, 20, threads, extra)
                    meta = json.loads((out / "meta.json").read_text())
                    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
                    store_rows.append((n_frames, threads, mode, meta["n_rows"], wall, rss, size))
                    print(
                        json.dumps(
                            {
                                "frames": n_frames,
                                "threads": threads,
                                "mode": mode,
                                "rows": meta["n_rows"],
                                "wall_s": wall,
                                "peak_rss_MiB": rss,
                                "store_MiB": size,
                            }
                        ),
                        flush=True,
                    )
    print(
        "\n| frames | threads | rows | wall s | atom-frames/s (wall) | peak RSS MiB | store MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for n_frames, threads, mode, n_rows, wall, rss, size in store_rows:
        print(
            f"| {n_frames} | {threads} | {mode}: {n_rows} | {wall:.1f} | "
            f"{n_frames * args.atoms / wall:.3g} | {rss:.0f} | {size:.0f} |"
        )
    print(f"\nmachine at the end: {machine()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "store": store_rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
