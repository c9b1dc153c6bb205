"""Training throughput, roofline, memory flatness and the cost of the toy defaults.

    python benchmarks/bench_train.py throughput [--systems toy siau peo] [--threads 1]
    python benchmarks/bench_train.py memory [--frames 10000 100000 1000000]
    python benchmarks/bench_train.py defaults [--data DIR] [--train-limit N] [--lag 10ps]

throughput: frame pairs per second of full training steps (batch assembly from memory-
  mapped graph stores, forward, -VAMP-2, backward, Adam) at the paper's system sizes on CPU
  and, when torch sees one, on CUDA; the model's FLOPs per pair are counted by
  torch.utils.flop_counter on one step and compared with the dense-matmul FLOP rate measured
  in the same run (the roofline).
memory: peak anonymous RSS (page cache of the memory-mapped inputs excluded: the kernel
  drops it at will) of a fixed number of training steps + validation against the length
  of the training trajectory.
defaults: VAMP-2 and state recovery of the toy defaults (config/config.yaml) against the
  paper's (lr 5e-4, batch 16, 10 epochs, every pair) on a small toy data set: split/ and
  graphs/ of a gdyn toy run (--data) or synthetic toy trajectories; both scored on the
  same test frames, against the geometric site labels.

Synthetic graphs have the N and M of each system (assumed sizes are printed). Results are
printed as Markdown rows for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# N atoms, M neighbours, target sets, batch pairs. toy: the paper's 5-atom cell. Si-Au and
# PEO/LiTFSI sizes are assumptions (the paper does not list N): a Si(110)/Si-Au slab of
# ~2000 atoms with ~600 liquid + interface Si targets, and a PEO/LiTFSI box of ~8000 atoms
# (H included) with 50 Li targets. Graph stores unpruned (every atom a row: worst case).
SYSTEMS = {
    "toy": {"n_atoms": 5, "m": 12, "n_targets": 1, "batch": [16, 256, 512]},
    "siau": {"n_atoms": 2000, "m": 20, "n_targets": 600, "batch": [4]},
    "peo": {"n_atoms": 8000, "m": 20, "n_targets": 50, "batch": [2]},
}
DMAX_A = 5.0  # largest neighbour distance of the synthetic graphs (26 Gaussians)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{cpu}, {os.cpu_count()} logical CPUs visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), GPU: {gpu}")


def write_store(root: Path, name: str, n_frames: int, n_atoms: int, m: int, n_targets: int,
                seed: int = 0) -> tuple[Path, Path]:
    """A synthetic split piece + unpruned graph store (random graphs, sorted distances)."""
    rng = np.random.default_rng(seed)
    split = root / "split" / f"{name}.npz"
    split.parent.mkdir(parents=True, exist_ok=True)
    types = rng.choice([1, 6, 8, 14, 79], size=n_atoms)
    coords = np.lib.format.open_memmap(root / f"{name}.coords.npy", "w+", np.float32,
                                       (n_frames, n_atoms, 3))
    gdir = root / "graphs" / name
    gdir.mkdir(parents=True, exist_ok=True)
    index = np.lib.format.open_memmap(gdir / "index.npy", "w+", np.int32, (n_frames, n_atoms, m))
    dist = np.lib.format.open_memmap(gdir / "distance.npy", "w+", np.float32,
                                     (n_frames, n_atoms, m))
    step = max(1, 2**22 // (n_atoms * m))
    for lo in range(0, n_frames, step):
        hi = min(n_frames, lo + step)
        coords[lo:hi] = rng.uniform(0, 10, size=(hi - lo, n_atoms, 3))
        index[lo:hi] = rng.integers(0, n_atoms, size=(hi - lo, n_atoms, m))
        dist[lo:hi] = np.sort(rng.uniform(1.5, DMAX_A, size=(hi - lo, n_atoms, m)), axis=-1)
    coords.flush()
    index.flush()
    dist.flush()
    np.save(gdir / "rows.npy", np.arange(n_atoms, dtype=np.int64))
    (gdir / "meta.json").write_text(json.dumps({
        "n_frames": n_frames, "n_atoms": n_atoms, "n_neighbors": m, "n_conv": 3,
        "pruned": False, "source": name}))
    # The split piece is written with np.savez from the memmap, chunk by chunk.
    np.savez(split, traj_coords=coords, lattices=np.broadcast_to(
        np.eye(3, dtype=np.float32) * 10, (n_frames, 3, 3)),
        atom_types=types, target_index=np.arange(n_targets), frame_interval_ps=np.float64(1.0),
        frame_offset=np.int64(0), source=np.str_(name))
    del coords
    (root / f"{name}.coords.npy").unlink()
    return split, gdir


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, seconds: float = 1.0, n: int = 2048) -> float:
    """Dense float32 matmul FLOP/s on ``device`` (the roofline), best of repeated runs."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = a @ b  # warm-up
    _sync(device)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            c = a @ b
        _sync(device)
        float(c[0, 0])
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t))
    return best


def _train_step(model, opt, problem, pairs, perm, batch_pairs: int, device, b: int) -> None:
    """One full training step on batch ``b`` of lag-1 pairs (as gdyn.train.loop.fit does it)."""
    from gdyn.models.vamp import vamp2_loss

    ids = (np.arange(batch_pairs) + b * batch_pairs) % pairs.n_pairs
    piece, t = pairs.lookup(perm[ids])
    batch = problem.batch("train", np.concatenate([piece, piece]),
                          np.concatenate([t, t + 1])).to(device)
    out = model(batch)
    half = out.shape[0] // 2
    loss = vamp2_loss(out[:half], out[half:])
    opt.zero_grad()
    loss.backward()
    opt.step()


def throughput(args: argparse.Namespace) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gdyn.cli.train import tune_malloc
    from gdyn.models import build as build_model
    from gdyn.train.batches import PairIndex, epoch_permutation
    from gdyn.train.loop import prepare
    from gdyn.train.settings import TrainSettings

    torch.set_num_threads(args.threads)
    tune_malloc()  # as gdyn train does
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"machine: {machine()}")
    print("| system | N | M | device | batch (pairs) | FLOPs/pair | pairs/s | model GFLOP/s "
          "| matmul GFLOP/s | % of roofline, median (range) | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for name in args.systems:
            spec = SYSTEMS[name]
            n_frames = max(64, 4 * max(spec["batch"]) + 2)
            split, gdir = write_store(Path(tmp) / name, name, n_frames, spec["n_atoms"],
                                      spec["m"], spec["n_targets"])
            parts = {p: [split] for p in ("train", "val", "test")}
            graphs = {p: [gdir] for p in ("train", "val", "test")}
            settings = TrainSettings.from_mapping({})
            problem = prepare("gdynet", 2, "1ps", parts, graphs, settings)
            pairs = PairIndex(problem.parts["train"], 1)
            for device in devices:
                peak_mem = ""
                for batch_pairs in spec["batch"]:
                    torch.manual_seed(0)
                    model = build_model("gdynet", 2, settings.to_dict(), problem.dims).to(device)
                    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
                    perm = epoch_permutation(pairs.n_pairs, 0, 0)

                    step = functools.partial(_train_step, model, opt, problem, pairs, perm,
                                             batch_pairs, device)
                    with FlopCounterMode(display=False) as counter:
                        step(0)
                    flops_pair = counter.get_total_flops() / batch_pairs
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    for b in range(3):  # warm-up
                        step(b)
                    # Rounds alternate the roofline and the model so both see the same load
                    # (the machine may be shared); medians over rounds are reported.
                    rates, speeds, n_steps = [], [], 0
                    for _ in range(args.rounds):
                        rates.append(matmul_rate(device, seconds=1.0))
                        _sync(device)
                        done, t0 = 0, time.perf_counter()
                        while time.perf_counter() - t0 < args.seconds / args.rounds or done < 2:
                            step(n_steps)
                            n_steps += 1
                            done += 1
                        _sync(device)
                        speeds.append(done * batch_pairs / (time.perf_counter() - t0))
                    if device.type == "cuda":
                        peak_mem = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}"
                    ratios = [100 * v * flops_pair / r for v, r in zip(speeds, rates, strict=True)]
                    pps, rate = float(np.median(speeds)), float(np.median(rates))
                    print(f"| {name} | {spec['n_atoms']} | {spec['m']} | {device.type} | "
                          f"{batch_pairs} | {flops_pair / 1e6:.3g} M | {pps:,.1f} | "
                          f"{pps * flops_pair / 1e9:.2f} | {rate / 1e9:.1f} | "
                          f"{np.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f}) | "
                          f"{peak_mem} |", flush=True)


# --------------------------------------------------------------------------------------
# Memory


def _rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def memory_child(args: argparse.Namespace) -> None:
    """One measurement (run in a fresh process): fixed steps on a trajectory of F frames."""
    import torch

    from gdyn.cli.train import tune_malloc
    from gdyn.train.loop import fit, prepare
    from gdyn.train.settings import TrainSettings

    torch.set_num_threads(1)
    tune_malloc()
    root = Path(args.root)
    parts = {"train": [root / "split" / "long.npz"], "val": [root / "split" / "short.npz"],
             "test": [root / "split" / "short.npz"]}
    graphs = {"train": [root / "graphs" / "long"], "val": [root / "graphs" / "short"],
              "test": [root / "graphs" / "short"]}
    settings = TrainSettings.from_mapping({"batch_size": 512, "epochs": 2,
                                    "max_pairs_per_epoch": 20480})
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_anon_kib())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    base = _rss_anon_kib()
    thread.start()
    problem = prepare("gdynet", 2, "1ps", parts, graphs, settings)
    with tempfile.TemporaryDirectory() as out:
        fit(problem, settings, Path(out), torch.device("cpu"), progress=False)
    stop.set()
    thread.join()
    print(json.dumps({"base_kib": base, "peak_kib": peak[0]}))


def memory(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    print("| train frames | graph store MiB | peak anon RSS MiB (fit: 80 steps of 512 pairs "
          "+ validation) | after imports MiB |")
    print("|---|---|---|---|")
    for n_frames in args.frames:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            write_store(Path(tmp), "long", n_frames, 5, 12, 1, seed=1)
            write_store(Path(tmp), "short", 2000, 5, 12, 1, seed=2)
            size = sum(f.stat().st_size for f in (Path(tmp) / "graphs" / "long").iterdir())
            out = subprocess.run([sys.executable, __file__, "_memory_child", "--root", tmp],
                                 capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {n_frames:,} | {size / 2**20:.0f} | {res['peak_kib'] / 1024:.0f} | "
                  f"{res['base_kib'] / 1024:.0f} |", flush=True)


# --------------------------------------------------------------------------------------
# Cost of the toy defaults


def _labelled_parts(root: Path, train_limit: int | None) -> tuple[dict, dict]:
    """Split pieces and graph stores under root/split/{part}/*.npz, root/graphs/{part}/*."""
    parts = {p: sorted((root / "split" / p).glob("*.npz")) for p in ("train", "val", "test")}
    if train_limit:
        parts["train"] = parts["train"][:train_limit]
    graphs = {p: [root / "graphs" / p / f.stem for f in files] for p, files in parts.items()}
    return parts, graphs


def _site_labels(pieces: list[Path]) -> dict[str, tuple[int, np.ndarray]]:
    from gdyn.trajectory import load_trajectory

    out = {}
    for p in pieces:
        tr = load_trajectory(p, validate=False)
        out[str(tr.extras["source"])] = (int(tr.extras["frame_offset"]),
                                         np.asarray(tr.extras["site_label"]).reshape(-1))
    return out


def defaults(args: argparse.Namespace) -> None:
    import yaml

    from gdyn import train as gt
    from gdyn.cli.train import set_process_state
    from gdyn.train.batches import PairIndex, epoch_batches
    from gdyn.train.loop import prepare, score_probs
    from gdyn.train.settings import TrainSettings

    set_process_state(args.threads)  # what gdyn train sets before training
    toy = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["systems"]["toy"]
    toy_settings = {k: v for k, v in toy["train"].items() if k not in ("lags_ps", "models")}
    # frame_stride joins the config with the schema change that allows it (see BENCHMARKS.md).
    toy_settings.setdefault("frame_stride", 10)
    paper = {"batch_size": 16, "epochs": 10, "max_pairs_per_epoch": None, "frame_stride": 1,
             "learning_rate": 5e-4}
    variants = {"toy defaults (config.yaml)": toy_settings,
                "paper defaults (lr 5e-4, batch 16, 10 epochs, every pair and frame)":
                    dict(toy_settings, **paper)}
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.data:
            root = Path(args.data)
            print(f"data: {root} (split/ and graphs/ of a gdyn toy run)")
        else:
            sys.path.insert(0, str(ROOT / "tests"))
            from test_train import toy_trajectory, write_piece

            root = Path(tmp)
            print(f"data: {args.trajectories} synthetic toy trajectories x {args.frames} frames")
            for i in range(args.trajectories):
                coords, label = toy_trajectory(args.frames, seed=100 + i, p_leave_tet=0.002,
                                               p_leave_oct=0.0004)
                cut = [0, int(0.4 * args.frames), int(0.7 * args.frames), args.frames]
                for k, part in enumerate(("train", "val", "test")):
                    lo, hi = cut[k], cut[k + 1]
                    write_piece(root, part, f"li{i:03d}", coords[lo:hi], label[lo:hi], lo)
        parts, graphs = _labelled_parts(root, args.train_limit)
        labels = _site_labels(parts["test"])
        print(f"train pieces: {len(parts['train'])}, val: {len(parts['val'])}, "
              f"test: {len(parts['test'])}; lag {args.lag}; threads {args.threads}")
        print("| settings | optimiser steps | wall s | best epoch | val VAMP-2 | test VAMP-2 "
              "(eps 1e-3 regularize) | test VAMP-2 (trunc 1e-6) | test label agreement | "
              "mean max prob |")
        print("|---|---|---|---|---|---|---|---|---|")
        plain = TrainSettings.from_mapping({"vamp_mode": "trunc", "vamp_epsilon": 1e-6})
        truth_rows = None
        for title, settings in variants.items():
            out = root / "bench-out"
            resolved = TrainSettings.from_mapping(settings)
            t0 = time.perf_counter()
            res = gt.train("gdynet", out, 2, args.lag, parts, graphs, settings,
                           progress=False)
            wall = time.perf_counter() - t0
            problem = prepare("gdynet", 2, args.lag, parts, graphs, resolved)
            n_pairs = PairIndex(problem.parts["train"], problem.lag_frames).n_pairs
            steps = resolved.epochs * len(epoch_batches(n_pairs, resolved))
            with np.load(out / "probs_test.npz") as z:
                probs, traj, frame = z["probs"], z["traj"], z["frame"]
                sources = [str(s) for s in z["sources"]]
            # Both variants are scored on the same frames (the toy stride's grid).
            keep = frame % int(toy_settings["frame_stride"]) == 0
            probs, traj, frame = probs[keep], traj[keep], frame[keep]
            truth = np.array([labels[sources[i]][1][f - labels[sources[i]][0]]
                              for i, f in zip(traj, frame, strict=True)])
            state = probs[:, 0].argmax(1)
            agree = max(np.mean(state == truth), np.mean(state != truth))
            s_reg = score_probs(probs, traj, frame, problem.lag_frames, resolved)
            s_plain = score_probs(probs, traj, frame, problem.lag_frames, plain)
            if truth_rows is None:
                onehot = np.eye(2, dtype=np.float32)[truth][:, None]
                truth_rows = (score_probs(onehot, traj, frame, problem.lag_frames, resolved),
                              score_probs(onehot, traj, frame, problem.lag_frames, plain))
            print(f"| {title} | {steps:,} | {wall:.1f} | {res['best_epoch']} | "
                  f"{res['best_val_vamp2']:.4f} | {s_reg:.4f} | {s_plain:.4f} | "
                  f"{100 * agree:.1f}% | {probs.max(-1).mean():.3f} |", flush=True)
        print(f"| site_label one-hot (ground truth) | | | | | {truth_rows[0]:.4f} | "
              f"{truth_rows[1]:.4f} | 100% | 1 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=20.0, help="timed model seconds per row")
    p.add_argument("--rounds", type=int, default=5, help="alternating roofline/model rounds")
    p.add_argument("--tmp", default=None, help="scratch directory for the graph stores")
    p = sub.add_parser("memory")
    p.add_argument("--frames", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--tmp", default=None)
    p = sub.add_parser("_memory_child")
    p.add_argument("--root", required=True)
    p = sub.add_parser("defaults")
    p.add_argument("--data", default=None, help="root with split/ and graphs/ of toy data "
                   "(default: synthetic toy data)")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N train pieces")
    p.add_argument("--trajectories", type=int, default=8)
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--lag", default="10ps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tmp", default=None)
    args = parser.parse_args()
    {"throughput": throughput, "memory": memory, "_memory_child": memory_child,
     "defaults": defaults}[args.cmd](args)


if __name__ == "__main__":
    main()
