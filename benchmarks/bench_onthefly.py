"""Graphs on the fly against the graph store: cost per training step, and training memory.

    python benchmarks/bench_onthefly.py step [--systems toy siau] [--steps 30] [--rounds 3]
    python benchmarks/bench_onthefly.py memory [--cases ...]

step: one process, the same lag pairs, side by side in interleaved rounds: a training step
  (batch assembly + forward + -VAMP-2 + backward + Adam) with the batch's graphs read from
  a graph store (``gdyn.graph.build_store``), searched per batch on the fly
  (``graph.store: false, cache_mb: 0``), or searched once and kept (``cache_mb`` large).
  Reported: CPU ms per step (``time.process_time``: the machine is shared) split into
  batch assembly and model, and wall ms per step when the next batch is assembled in a
  worker thread (``gdyn.train.loop.ahead``) as ``fit`` does. Data: toy cells (5 atoms,
  M = 12, batch 256 pairs as config.yaml) and the Si-Au-sized slab of
  ``benchmarks/synthetic.py`` (2,000 atoms, 457 targets, M = 20, batch 4 pairs).
memory: peak anonymous RSS of ``gdyn.train.train`` (graphs on the fly, nothing kept, every
  atom a row) in a fresh process per case, against N, M and the batch: the data behind
  the ``mem_mb`` model of the training rules (workflow/rules/common.smk, ``train_mem_mb``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import _rss_anon_kib  # noqa: E402  (the same RssAnon reader)


def _piece(path: Path, coords: np.ndarray, lattices: np.ndarray, types: np.ndarray,
           targets: np.ndarray, offset: int, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, traj_coords=coords.astype(np.float32), lattices=lattices.astype(np.float32),
             atom_types=types, target_index=targets, frame_interval_ps=np.float64(1.0),
             frame_offset=np.int64(offset), source=np.str_(source))
    return path


def toy_data(root: Path, n_traj: int = 8, n_frames: int = 2000) -> dict:
    """Toy cells: a diffusing Li among the 4 S on exact FCC sites."""
    rng = np.random.default_rng(0)
    a = 6.5
    s_sites = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    out: dict = {"m": 12, "batch": 256, "paths": {p: [] for p in ("train", "val", "test")}}
    for t in range(n_traj):
        li = np.cumsum(rng.normal(0, 0.3, (n_frames, 3)), 0) + a / 2
        coords = np.concatenate([li[:, None], np.broadcast_to(s_sites, (n_frames, 4, 3))], 1)
        lat = np.broadcast_to(np.eye(3) * a, (n_frames, 3, 3))
        for part in out["paths"]:
            out["paths"][part].append(_piece(root / part / f"li{t}.npz", coords, lat,
                                             np.array([3, 16, 16, 16, 16]), np.array([0]),
                                             0, f"li{t}"))
    return out


def siau_data(root: Path, n_frames: int = 200) -> dict:
    """The Si-Au-sized slab of benchmarks/synthetic.py (one trajectory as every part)."""
    import synthetic

    rng = np.random.default_rng(0)
    st = synthetic.siau_structure(rng)
    raw = root / "raw.npz"
    synthetic.siau_trajectory(raw, n_frames, 1, st)
    d = np.load(raw)
    out: dict = {"m": 20, "batch": 4, "paths": {}}
    for part in ("train", "val", "test"):
        out["paths"][part] = [_piece(root / part / "siau.npz", d["traj_coords"], d["lattices"],
                                     d["atom_types"], d["target_index"], 0, "siau")]
    return out


def _stores(data: dict, root: Path) -> dict:
    from gdyn.graph import build_store
    from gdyn.trajectory import load_trajectory

    stores = {}
    for part, paths in data["paths"].items():
        stores[part] = []
        for p in paths:
            d = root / "graphs" / part / p.stem
            build_store(load_trajectory(p), d, data["m"], n_conv=3, progress=False)
            stores[part].append(d)
    return stores


def step(args: argparse.Namespace) -> None:
    import torch

    from gdyn.cli.train import tune_malloc
    from gdyn.models import build
    from gdyn.models.vamp import vamp2_loss
    from gdyn.train import loop as gl
    from gdyn.train.batches import PairIndex, epoch_permutation
    from gdyn.train.settings import TrainSettings

    torch.set_num_threads(1)
    tune_malloc()
    for system in args.systems:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            root = Path(tmp)
            data = toy_data(root) if system == "toy" else siau_data(root)
            stores = _stores(data, root)
            settings = TrainSettings.from_mapping({"batch_size": data["batch"]})
            graph = {"n_neighbors": data["m"], "store": False}
            variants = {
                "store": gl.prepare("gdynet", 2, 1.0, data["paths"], stores, settings),
                "on the fly, per batch": gl.prepare("gdynet", 2, 1.0, data["paths"], {},
                                                    settings, {**graph, "cache_mb": 0}),
                "on the fly, kept": gl.prepare("gdynet", 2, 1.0, data["paths"], {}, settings,
                                               {**graph, "cache_mb": 4096}),
            }
            problem = variants["store"]
            pairs = PairIndex(problem.parts["train"], problem.lag_frames)
            perm = epoch_permutation(pairs.n_pairs, 1, 0)
            b = data["batch"]
            specs = []
            for k in range(args.steps):
                piece, t = pairs.lookup(perm[np.arange(k * b, (k + 1) * b) % pairs.n_pairs])
                specs.append((np.concatenate([piece, piece]),
                              np.concatenate([t, t + problem.lag_frames])))
            torch.manual_seed(0)
            model = build("gdynet", 2, settings.to_dict(), problem.dims)
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            times: dict[str, list] = {v: [] for v in variants}

            def model_step(batch, model=model, opt=opt) -> None:
                out = model(batch)
                loss = vamp2_loss(out[: len(out) // 2], out[len(out) // 2 :], 1e-3, "regularize")
                opt.zero_grad()
                loss.backward()
                opt.step()

            for prob in variants.values():  # warm-up (first touches, cutoff learning)
                model_step(prob.batch("train", *specs[0]))
            for _ in range(args.rounds):
                for name, prob in variants.items():
                    t_batch = t_model = 0.0
                    for spec in specs:
                        c0 = time.process_time()
                        batch = prob.batch("train", *spec)
                        c1 = time.process_time()
                        model_step(batch)
                        t_batch += c1 - c0
                        t_model += time.process_time() - c1
                    w0 = time.perf_counter()
                    make = lambda k, prob=prob, specs=specs: prob.batch("train", *specs[k])  # noqa: E731
                    for _, batch in gl.ahead(make, range(len(specs))):
                        model_step(batch)
                    wall = time.perf_counter() - w0
                    times[name].append((t_batch / len(specs), t_model / len(specs),
                                        wall / len(specs)))
            n_rows = len(problem.parts["train"][0].graphs.rows)
            print(f"\n{system}: {problem.parts['train'][0].n_atoms} atoms ({n_rows} rows), "
                  f"M = {data['m']}, batch {b} pairs, {args.steps} steps x {args.rounds} "
                  f"rounds, medians")
            print("| graphs | batch assembly CPU ms | model step CPU ms | step CPU ms | "
                  "step wall ms, assembly in a worker thread |")
            print("|---|---|---|---|---|")
            for name, rows in times.items():
                a = np.median(np.array(rows), axis=0) * 1e3
                print(f"| {name} | {a[0]:.2f} | {a[1]:.1f} | {a[0] + a[1]:.1f} | {a[2]:.1f} |")


def memory_child(args: argparse.Namespace) -> None:
    """One case in a fresh process: a short gdyn.train.train with graphs on the fly."""
    import torch

    from gdyn import train as gt
    from gdyn.cli.train import tune_malloc

    torch.set_num_threads(1)
    tune_malloc()
    case = json.loads(args.case)
    root = Path(args.root)
    paths = {p: sorted((root / p).glob("*.npz")) for p in ("train", "val", "test")}
    # A model this short may be dead: keep it (the job is measured, not the model).
    settings = {"batch_size": case["batch"], "epochs": 1,
                "max_pairs_per_epoch": 8 * case["batch"], "all_seeds_dead": "keep"}
    # Every atom a row (no pruning): the model's edges are exactly 2 x batch x N x M.
    graph = {"n_neighbors": case["m"], "store": False, "cache_mb": 0, "prune": False}
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_anon_kib())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as out:
        gt.train("gdynet", out, 2, 1.0, paths, None, settings, progress=False, graph=graph)
    stop.set()
    thread.join()
    print(json.dumps({"peak_kib": peak[0]}))


def liquid_data(root: Path, n_atoms: int, n_frames: int) -> None:
    """A diffusing liquid at 0.1 atoms/A^3 with 1 % targets (every part the same piece)."""
    rng = np.random.default_rng(n_atoms)
    side = (n_atoms / 0.1) ** (1 / 3)
    coords = rng.random((n_atoms, 3)) * side + np.cumsum(
        rng.normal(0, 0.2, (n_frames, n_atoms, 3)), 0)
    lat = np.broadcast_to(np.eye(3) * side, (n_frames, 3, 3))
    types = rng.choice([1, 6, 8], n_atoms)
    targets = np.arange(0, n_atoms, 100)
    for part in ("train", "val", "test"):
        _piece(root / part / "liq.npz", coords, lat, types, targets, 0, "liq")


def memory(args: argparse.Namespace) -> None:
    print("| N atoms | M | batch pairs | edges per step (2 x batch x N x M) | peak anon RSS MB |")
    print("|---|---|---|---|---|")
    results = []
    for spec in args.cases:
        n, m, batch = (int(x) for x in spec.split(":"))
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            liquid_data(Path(tmp), n, 8 * batch + 2)  # 8 full batches of lag pairs
            case = json.dumps({"m": m, "batch": batch})
            out = subprocess.run([sys.executable, __file__, "_memory_child", "--root", tmp,
                                  "--case", case], capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            edges = 2 * batch * n * m
            results.append((edges, res["peak_kib"] / 1024))
            print(f"| {n:,} | {m} | {batch} | {edges:,} | {res['peak_kib'] / 1024:.0f} |",
                  flush=True)
    x, y = np.array(results).T
    slope, icept = np.polyfit(x, y, 1)
    print(f"\nleast squares: peak MB = {icept:.0f} + {slope * 1e6:.1f} per million edges; "
          f"largest residual {np.abs(y - icept - slope * x).max():.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("step")
    s.add_argument("--systems", nargs="+", default=["toy", "siau"])
    s.add_argument("--steps", type=int, default=30)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--tmp", default=None)
    m = sub.add_parser("memory")
    m.add_argument("--cases", nargs="+", default=[
        "500:12:16", "500:12:64", "2000:20:2", "2000:20:4", "2000:20:8", "8000:20:2",
        "8000:20:4"])
    m.add_argument("--tmp", default=None)
    c = sub.add_parser("_memory_child")
    c.add_argument("--root", required=True)
    c.add_argument("--case", required=True)
    args = ap.parse_args()
    {"step": step, "memory": memory, "_memory_child": memory_child}[args.mode](args)


if __name__ == "__main__":
    main()
