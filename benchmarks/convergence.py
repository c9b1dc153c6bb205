"""The stopping rule's verdict against training 3x longer (issue 21, DEVELOPERS.md).

    python benchmarks/convergence.py --results /path/to/results [--lags 2 10 40]
        [--seeds 0 1] [--trajs 16] [--max-epochs 30] [--out convergence.json]

For every (lag, seed) a 2-state GDyNet is trained on the toy's split pieces and graph stores
of a finished default run (``results/split/toy``, ``results/graphs/toy``) with the
stopping rule (``train.patience`` / ``train.min_delta`` defaults, at most ``--max-epochs``),
then again with the rule off for 3x the epochs the first run took (the best validation
epoch kept in both, as always). The slowest implied timescale of each model comes from its
validation memberships at its own lag (``gdyn.koopman.estimate.estimate_koopman``). The verdict's
error rate is the fraction of runs the rule called converged whose timescale moved by more
than 5 % with 3x the training. Training settings are the default config's (config.yaml,
toy system); one torch thread. Prints one row per run and the summary; ``--out`` writes
them as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from gdyn.koopman.eigen import spectrum
from gdyn.koopman.estimate import estimate_koopman
from gdyn.train.estimators import train

ROOT = Path(__file__).resolve().parents[1]
MOVE = 0.05  # a timescale change above this fraction counts as "not converged"


def toy_settings() -> dict:
    """The default config's training settings of the toy (workflow keys dropped)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train_cfg = dict(cfg["systems"]["toy"]["train"])
    for key in ("lags_ps", "models"):
        train_cfg.pop(key, None)
    return train_cfg


def timescale(model_dir: Path, lag_ps: float) -> float:
    """Slowest implied timescale (ps) from the model's validation memberships."""
    z = np.load(model_dir / "probs_val.npz")
    lag_frames = round(lag_ps / float(z["frame_interval_ps"]))
    k, _ = estimate_koopman(z["probs"].astype(np.float64), z["traj"], z["frame"], lag_frames)
    lam = np.abs(spectrum(k).eigenvalues[1])
    return float(-lag_ps / math.log(lam)) if 0 < lam < 1 else float("nan")


def run(results: Path, lag: float, seed: int, settings: dict, trajs: int, work: Path) -> dict:
    """Rule run and 3x run of one (lag, seed); their epochs, verdict and timescales."""
    paths, graphs = {}, {}
    for part in ("train", "val", "test"):
        files = sorted((results / "split" / "toy" / part).glob("*.npz"))[:trajs]
        paths[part] = files
        graphs[part] = [results / "graphs" / "toy" / part / f.stem for f in files]
    out = {"lag_ps": lag, "seed": seed}
    s = {**settings, "seed": seed, "checkpoint_every_s": 0}
    t0 = time.perf_counter()
    a = train("gdynet", work / f"rule-{lag:g}-{seed}", 2, lag, paths, graphs, s,
              progress=False)
    out["rule_seconds"] = round(time.perf_counter() - t0, 1)
    out.update(epochs_run=a["epochs_run"], best_epoch=a["best_epoch"],
               converged=bool(a["training_converged"]), val_vamp2=a["best_val_vamp2"],
               timescale_ps=timescale(work / f"rule-{lag:g}-{seed}", lag))
    longer = 3 * a["epochs_run"]
    t0 = time.perf_counter()
    b = train("gdynet", work / f"long-{lag:g}-{seed}", 2, lag, paths, graphs,
              {**s, "epochs": longer, "patience": longer + 1}, progress=False)
    out["long_seconds"] = round(time.perf_counter() - t0, 1)
    out.update(long_epochs=longer, long_best_epoch=b["best_epoch"],
               long_val_vamp2=b["best_val_vamp2"],
               long_timescale_ps=timescale(work / f"long-{lag:g}-{seed}", lag),
               val_curve=[round(m["val_vamp2"], 5) for m in b["metrics"]])
    out["moved"] = abs(out["long_timescale_ps"] / out["timescale_ps"] - 1.0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--lags", type=float, nargs="+", default=[2.0, 10.0, 40.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--trajs", type=int, default=16, help="Li trajectories used per part")
    ap.add_argument("--max-epochs", type=int, default=None,
                    help="train.epochs of the rule run (default: the config's)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = toy_settings()
    if args.max_epochs:
        settings["epochs"] = args.max_epochs
    rows = []
    with tempfile.TemporaryDirectory(prefix="gdyn-conv-") as tmp:
        for lag in args.lags:
            for seed in args.seeds:
                row = run(args.results, lag, seed, settings, args.trajs, Path(tmp))
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "val_curve"}),
                      flush=True)
    conv = [r for r in rows if r["converged"]]
    wrong = [r for r in conv if r["moved"] > MOVE]
    summary = {
        "settings": {k: settings.get(k) for k in ("epochs", "patience", "min_delta",
                                                   "learning_rate", "batch_size",
                                                   "max_pairs_per_epoch")},
        "runs": len(rows), "converged": len(conv), "converged_but_moved": len(wrong),
        "error_rate": (len(wrong) / len(conv)) if conv else None,
        "max_move_converged": max((r["moved"] for r in conv), default=None),
    }
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
