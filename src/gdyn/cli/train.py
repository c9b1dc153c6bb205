"""``gdyn train``: one GDyNet (or global VAMPnet) per system x state count x lag time.

Argparse and the process-wide settings of a training process (torch threads, glibc
malloc tuning, deterministic kernels); the work is :func:`gdyn.train.train`, which goes
through the estimator API (:class:`gdyn.train.estimators.Estimator`). Only light modules are imported
at the top, so that ``gdyn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import signal
import sys
from pathlib import Path

from gdyn.cli._args import json_arg
from gdyn.errors import InputError
from gdyn.layout import PARTS, lag_label
from gdyn.models import MODEL_KINDS, spec

__all__ = ["register", "set_process_state", "stop_like_ctrl_c", "tune_malloc"]

log = logging.getLogger(__name__)


def tune_malloc() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    Every training step allocates and frees the same large activation tensors. glibc serves
    blocks above its mmap threshold (at most 32 MiB) with fresh mmaps and trims the heap
    eagerly, so each step page-faults its tensors in again: measured 2.5x slower steps on
    PEO-sized graphs (41 MB tensors) and 15% on the toy (BENCHMARKS.md, "Training"). A no-op
    off glibc. The process's RSS then stays at its peak, which a training job reaches anyway.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap-backed blocks
        libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
    except (OSError, AttributeError):
        pass


def set_process_state(threads: int | None) -> None:
    """Process-wide settings of a training process, before any training.

    ``threads`` torch CPU threads (None or 0: torch's default); :func:`tune_malloc`; and on
    CPU deterministic kernels, which bit-identical resumes need (CPU ones all are; this
    guards).
    """
    import torch

    from gdyn.train import pick_device

    if threads:
        torch.set_num_threads(int(threads))
    tune_malloc()
    if pick_device().type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def stop_like_ctrl_c() -> None:
    """Make SIGTERM and SIGHUP end training as Ctrl-C (SIGINT) does.

    Slurm's ``scancel`` and time limit send SIGTERM (then SIGKILL after its KillWait), as
    does ``kill``; a closed terminal sends SIGHUP. Raised as :class:`KeyboardInterrupt`,
    they make :func:`gdyn.train.loop.fit` write a checkpoint at the last safe point before
    the process exits (130, one line), so the rerun resumes instead of starting over.
    Process-wide, so only the ``gdyn train`` entry point calls it.
    """
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread / no such signal
            signal.signal(sig, interrupt)


def _cmd_train(args: argparse.Namespace) -> int:
    from gdyn.graph import DamagedStore, discard_store
    from gdyn.train import TrainSettings, train

    parts = {p: getattr(args, p) or [] for p in PARTS}
    graphs = {p: getattr(args, f"{p}_graphs") for p in PARTS}
    if spec(args.model).inputs != "graphs" and any(graphs.values()):
        log.info("%s ignores the graph stores", args.model)
    settings = TrainSettings.from_mapping(args.settings)  # None: the schema's defaults
    if args.graph is not None and not isinstance(args.graph, dict):
        raise InputError(f"--graph: expected a JSON object, got {type(args.graph).__name__}")
    set_process_state(args.threads)
    stop_like_ctrl_c()
    try:
        res = train(args.model, args.outdir, args.n_states, args.lag_ps, parts, graphs, settings,
                    reference=args.reference, graph=args.graph, init_from=args.init_from)
    except DamagedStore as exc:
        # The store is the graphs rule's output: once removed, the next run rebuilds it
        # (Snakemake takes a store that is there for up to date, whatever is in it).
        if discard_store(exc.path):
            raise InputError(f"{exc.path}: damaged graph store: {exc.problem}; removed it: "
                             "run the workflow again to rebuild it") from None
        raise
    except KeyboardInterrupt:
        ckpt = args.outdir / "checkpoint.pt"
        if ckpt.exists() or any(args.outdir.glob("seed*.pt")):
            log.warning("stopped; %s (and any finished seed*.pt) is kept: the same command "
                        "resumes from it", ckpt)
        raise
    dead = res["dead_seeds"]
    print(f"train: {args.model} s{args.n_states} lag {lag_label(args.lag_ps)}: "
          f"kept seed {res['seed']} (validation VAMP-2 {res['best_val_vamp2']:.4f}, test {res['test_vamp2']:.4f}) of "
          f"{len(res['seeds'])}; dead seeds: {dead or 'none'}; "
          f"{res['epochs_run']} epochs (best {res['best_epoch']}), "
          f"{'converged' if res['training_converged'] else 'NOT converged (raise train.epochs)'}"
          f"; states: {res['alignment']['rule']}")
    return 0


def _cmd_train_per_temperature(args: argparse.Namespace) -> int:
    from gdyn.files import read_json

    summary = read_json(args.summary)
    for key in ("analysis_lag_ps", "n_states", "probs_test"):
        if key not in summary:
            raise InputError(f"{args.summary}: key {key!r}: missing (expected the pooled "
                             "model's Koopman summary.json)")  # fmt: skip
    args.n_states = int(summary["n_states"])
    args.lag_ps = float(summary["analysis_lag_ps"])
    # map the states onto the pooled model's, on this temperature's validation frames
    args.reference = Path(summary["probs_test"]).with_name("probs_val.npz")
    args.init_from = None  # trained from scratch: the drift is the point
    return _cmd_train(args)


def _parts(p: argparse.ArgumentParser) -> None:
    for part in PARTS:
        p.add_argument(f"--{part}", nargs="+", type=Path, required=True, metavar="NPZ",
                       help=f"{part} split pieces")
        p.add_argument(f"--{part}-graphs", nargs="+", type=Path, default=None, metavar="DIR",
                       help=f"graph stores of the {part} pieces (gdynet), matched by name")
    p.add_argument("--settings", type=json_arg, default=None, metavar="JSON",
                   help="the system's `train` config section as JSON")
    p.add_argument("--graph", type=json_arg, default=None, metavar="JSON",
                   help="the system's `graph` config section as JSON; with \"store\": false "
                   "(gdynet) the graphs are built on the fly and no --*-graphs are given")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gdyn train`` and ``gdyn train-per-temperature`` to the CLI."""
    p = subparsers.add_parser(
        "train",
        help="train one GDyNet / VAMPnet at one lag time and write state probabilities",
        description="Maximise VAMP-2 over (t, t+lag) pairs of the training pieces for every "
        "seed of the settings' `seeds` (else `seed`); keep the epoch with the best validation "
        "VAMP-2, and the live seed with the best one; order or align its states; write "
        "model.pt, config.json, metrics.csv, alignment.json and probs_{train,val,test}.npz "
        "into OUTDIR. Resumes from OUTDIR/checkpoint.pt (which Ctrl-C, SIGTERM (scancel) and "
        "SIGHUP write before the process exits) and the finished seeds' OUTDIR/seed*.pt.",
    )
    p.add_argument("model", choices=MODEL_KINDS)
    p.add_argument("outdir", type=Path)
    p.add_argument("--n-states", type=int, required=True, metavar="S")
    p.add_argument("--lag-ps", type=float, required=True, metavar="PS",
                   help="lag time in ps, e.g. 10.0 (a multiple of the frame interval)")
    _parts(p)
    p.add_argument("--reference", type=Path, default=None, metavar="NPZ",
                   help="probs_val.npz of the reference model (same model kind and state "
                   "count, first lag of the grid): states are mapped onto its states by "
                   "maximum overlap; without it, states are ordered by population")
    p.add_argument("--init-from", type=Path, default=None, metavar="MODEL_PT",
                   help="start every seed from these weights (a model.pt of the same kind, "
                   "state count and widths, e.g. the reference lag's: a warm start); "
                   "default: random weights")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser(
        "train-per-temperature",
        help="temperature series: train the analysed model on one temperature's pieces alone",
        description="Train MODEL from scratch on the given (one temperature's) split pieces at "
        "the analysis lag and state count of the pooled model's Koopman SUMMARY.json, its "
        "states mapped onto the pooled model's (its probs_val.npz beside probs_test); writes "
        "the model directory OUTDIR as gdyn train does (train.per_temperature: true).",
    )
    p.add_argument("model", choices=MODEL_KINDS)
    p.add_argument("outdir", type=Path)
    p.add_argument("--summary", type=Path, required=True, metavar="SUMMARY.json",
                   help="the pooled model's Koopman summary.json")
    _parts(p)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=_cmd_train_per_temperature)
