"""Peak anonymous memory of the prediction phase of a training job (issue 24).

    python benchmarks/bench_predict_memory.py --split DIR --graphs DIR [--part train]
        [--stride 1] [--lag 100ps]

Opens the workflow's split pieces (``DIR/{train,val,test}/*.npz``) and graph stores
(``DIR/{part}/{trajectory}``) as ``gdyn train`` does (:func:`gdyn.train.loop.prepare`),
builds an untrained GDyNet (4 states, the paper's 3 layers of 16 features; prediction
costs the same whatever the weights), sets the process up as ``gdyn train`` does (one
torch thread, :func:`gdyn.cli.train.tune_malloc`, deterministic kernels) and predicts
every grid frame of ``--part`` (:func:`gdyn.train.loop.predict_part`, what the job does
after training for probs_{part}.npz), sampling ``RssAnon`` every 0.05 s. Prints the
memory after opening the inputs and the peak while predicting.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import _rss_anon_kib  # noqa: E402  (the same RssAnon reader)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--graphs", type=Path, required=True)
    ap.add_argument("--part", default="train", choices=["train", "val", "test"])
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--lag", default="100ps")
    args = ap.parse_args()

    import torch

    from gdyn.cli.train import set_process_state
    from gdyn.models import build
    from gdyn.train.loop import predict_part, prepare
    from gdyn.train.settings import TrainSettings

    set_process_state(1)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_anon_kib())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    parts = {p: sorted((args.split / p).glob("*.npz")) for p in ("train", "val", "test")}
    graphs = {p: [args.graphs / p / f.stem for f in fs] for p, fs in parts.items()}
    settings = TrainSettings(frame_stride=args.stride, n_conv=3, atom_fea_len=16)
    problem = prepare("gdynet", 4, args.lag, parts, graphs, settings)
    torch.manual_seed(0)
    model = build("gdynet", 4, settings.to_dict(), problem.dims)
    opened = _rss_anon_kib()
    peak[0] = 0
    t = time.perf_counter()
    probs, _, _ = predict_part(model, problem, args.part, torch.device("cpu"))
    wall = time.perf_counter() - t
    stop.set()
    print(f"{args.part}: {probs.shape[0]} frames predicted in {wall:.0f} s; RssAnon after "
          f"opening the inputs {opened / 1024:.0f} MB, peak while predicting "
          f"{peak[0] / 1024:.0f} MB, at the end {_rss_anon_kib() / 1024:.0f} MB")


if __name__ == "__main__":
    main()
