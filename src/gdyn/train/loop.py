"""The training loop: one model maximising VAMP-2 (paper Eq. 5) over lag pairs.

(Slightly over ~600 lines: fit, checkpoints and the bounded prediction share the
prefetch and device helpers kept here; splitting prediction out is the next cut.)

:func:`prepare` opens the workflow's inputs (split pieces and graph stores),
:func:`assemble` derives lag frames, frame grid and model dimensions from any pieces, and
:func:`fit` trains. Each epoch ends with the full-data validation VAMP-2; the best
epoch's weights are kept (the last epoch's without validation data). ``epochs`` is the
maximum: the stopping rule of :mod:`gdyn.train.stopping` (``patience``, ``min_delta``)
ends a run whose validation VAMP-2 has stopped improving, and says whether it converged.

With a checkpoint directory, a checkpoint (``checkpoint.pt``) is written after every epoch
and every ``checkpoint_every_s`` seconds; a killed run started again resumes from it and
finishes with bit-identical weights on CPU (everything random is a pure function of seed,
epoch and batch index). Ctrl-C (KeyboardInterrupt, which ``gdyn train`` also raises on
SIGTERM and SIGHUP) first writes a checkpoint at the last consistent (epoch, batch). Process-wide torch settings (threads, deterministic kernels) are
the caller's: ``gdyn train`` sets them (:mod:`gdyn.cli.train`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gdyn.config import lag_to_frames
from gdyn.errors import InputError
from gdyn.files import atomic_path
from gdyn.layout import PARTS, parse_lag
from gdyn.models import ModelSpec, build, module_class, spec
from gdyn.models.vamp import CovarianceAccumulator, vamp2_loss
from gdyn.settings import with_defaults
from gdyn.train.batches import (
    PairIndex,
    epoch_batches,
    epoch_permutation,
    frame_size,
    make_batch,
)
from gdyn.train.data import Piece, data_summary, load_part, set_grid
from gdyn.train.onthefly import on_the_fly
from gdyn.train.settings import TrainSettings
from gdyn.train.stopping import curve, stopping_state
from gdyn.train.warmstart import WarmStart, apply_warm_start

__all__ = [
    "AHEAD",
    "CHECKPOINT",
    "Interrupted",
    "Problem",
    "ahead",
    "as_lag_ps",
    "assemble",
    "check_model",
    "evaluating",
    "fingerprint",
    "fit",
    "pick_device",
    "predict_frames",
    "predict_part",
    "prepare",
    "score_probs",
]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
# How an epoch orders its pairs (gdyn.train.data.epoch_permutation), part of the fingerprint.
SHUFFLE = "default_rng(epoch_seed).permutation"

# Edges (rows x M) per prediction chunk: bounds memory whatever the system size.
PREDICT_EDGES = 2**16
# Batches made ahead of the one being used (gdyn.train.loop.ahead): the bound on batches in
# flight in training and prediction.
AHEAD = 1
def ahead(
    make: Callable[[int], Any], items: range, depth: int = AHEAD
) -> Iterator[tuple[int, Any]]:
    """``(i, make(i))`` for ``i`` in ``items``, the next ``depth`` items made in a worker
    thread while the caller uses ``make(i)``.

    Batch assembly (gathering from graph stores, or searching neighbours when graphs are
    built on the fly) overlaps the model's step: numpy, the numba graph kernel and torch
    release the GIL. At most ``depth`` items are made ahead of the one the caller holds,
    whatever the speeds of worker and caller, so a slow caller (a long step, a slow disk
    under the caller) never makes batches pile up in memory.
    ``make`` must be a pure function of ``i``, so results do not depend on the thread.
    """
    depth = max(1, int(depth))
    if len(items) <= 1:
        for i in items:
            yield i, make(i)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gdyn-batch") as pool:
        pending: deque = deque()
        nxt = 0
        try:
            for i in items:
                # Submit up to ``depth`` items beyond i; a new one only when one is taken.
                while nxt < len(items) and len(pending) <= depth:
                    pending.append(pool.submit(make, items[nxt]))
                    nxt += 1
                value = pending.popleft().result()
                yield i, value
                del value  # the caller's reference is the only one while it works
        finally:  # the caller stopped early (or raised): make nothing more
            for future in pending:
                future.cancel()


def _after_step() -> None:
    """Called after every optimiser step, before its checkpoint: does nothing. The resume
    tests replace it with one that raises :class:`Interrupted` (a crash mid-epoch)."""


class Interrupted(RuntimeError):
    """A training run stopped mid-epoch (the resume tests raise it from the step hook)."""


@dataclass
class Problem:
    """Everything one training run needs besides the settings."""

    kind: str
    n_states: int
    lag_ps: float
    lag_frames: int
    frame_interval_ps: float
    parts: dict[str, list[Piece]]
    dims: dict[str, Any]
    init: WarmStart | None = None  # starting weights (gdyn.train.warmstart); None: random

    @property
    def inputs(self) -> str:
        """The model's input kind (``gdyn.models.INPUT_KINDS``)."""
        return spec(self.kind).inputs

    def batch(self, part: str, piece_ids: np.ndarray, frames: np.ndarray) -> Any:
        """Model input of the given (piece, local frame) pairs of ``part``."""
        return make_batch(self.inputs, self.parts[part], piece_ids, frames)


# --------------------------------------------------------------------------------------
# Inputs


def as_lag_ps(lag: str | float) -> float:
    """A lag as ps: a label such as ``"10ps"`` or a number."""
    return parse_lag(lag) if isinstance(lag, str) else float(lag)


def check_model(kind: str, n_states: int) -> ModelSpec:
    """The registry entry of ``kind``; an unknown kind or n_states < 2 raise InputError."""
    entry = spec(kind)
    if int(n_states) < 2:
        raise InputError(f"--n-states: expected an integer >= 2, got {n_states}")
    return entry


def assemble(
    kind: str,
    n_states: int,
    lag_ps: float,
    parts: dict[str, list[Piece]],
    settings: TrainSettings,
    attach: Callable[[Piece], None] | None = None,
) -> Problem:
    """Derive lag frames, frame grid and model dimensions from opened pieces.

    ``attach(piece)`` runs on every piece once its frame grid is set, before the
    dimensions are read (the API builds in-memory graphs there).
    """
    entry = check_model(kind, n_states)
    intervals = {p.frame_interval_ps for ps in parts.values() for p in ps}
    fi = next(iter(intervals))
    if any(not math.isclose(x, fi, rel_tol=1e-6) for x in intervals):
        raise InputError(
            f"split pieces: key 'frame_interval_ps': expected one value for all pieces, got "
            f"{sorted(intervals)}"
        )
    lag_frames = lag_to_frames(lag_ps, fi)
    stride = int(settings.frame_stride)
    if lag_frames % stride:
        raise InputError(
            f"--settings: key 'frame_stride': expected a divisor of the lag ({lag_frames} frames "
            f"= {lag_ps:g} ps), got {stride}"
        )
    for pieces in parts.values():
        set_grid(pieces, stride)
    ks = {p.target_sets.shape[1] for ps in parts.values() for p in ps}
    if len(ks) > 1:
        raise InputError(
            f"split pieces: key 'target_index': expected one set size k, got {sorted(ks)}"
        )
    if attach is not None:
        for pieces in parts.values():
            for p in pieces:
                attach(p)
    dims = module_class(kind).dims_from_data(data_summary(entry.inputs, parts["train"]))
    return Problem(kind, int(n_states), lag_ps, lag_frames, fi, parts, dims)


def prepare(
    kind: str,
    n_states: int,
    lag: str | float,
    part_paths: Mapping[str, Sequence[Path]],
    part_graphs: Mapping[str, Sequence[Path] | None],
    settings: TrainSettings,
    graph: Mapping[str, Any] | None = None,
) -> Problem:
    """Open every split piece (and graph store) of the workflow and :func:`assemble` them.

    ``graph`` is the system's ``graph`` config section: with ``store: false`` a graph-input
    model takes no stores and builds its graphs on the fly (:mod:`gdyn.train.onthefly`;
    up to ``cache_mb`` of them are kept in memory); missing keys take the schema's defaults.
    """
    entry = check_model(kind, n_states)
    lag_ps = as_lag_ps(lag)
    graph_inputs = entry.inputs == "graphs"
    graph = None if graph is None else with_defaults("graph", graph)
    live = graph_inputs and graph is not None and graph["store"] is False
    parts: dict[str, list[Piece]] = {}
    for part in PARTS:
        graphs = part_graphs.get(part) if graph_inputs and not live else None
        if graph_inputs and not live and not graphs:
            raise InputError(f"--{part}-graphs: expected graph stores for {kind}, got none "
                             "(or graph settings with store: false)")
        parts[part] = load_part(part, [Path(p) for p in part_paths.get(part, [])], graphs,
                                int(settings.n_conv))
    attach = None
    if live:
        if "n_neighbors" not in graph:
            raise InputError(f"--graph: key 'n_neighbors': expected an integer >= 1, got "
                             f"none in {dict(graph)}")
        n_conv = int(settings.n_conv) if graph["prune"] else None
        cache = int(float(graph["cache_mb"]) * 2**20)
        attach = on_the_fly(parts["train"], graph["n_neighbors"], n_conv, cache)
    return assemble(kind, n_states, lag_ps, parts, settings, attach)


# --------------------------------------------------------------------------------------
# Checkpoints


def fingerprint(problem: Problem, settings: TrainSettings) -> str:
    """Hash of everything that makes a checkpoint valid for this run."""
    files: list[list[Any]] = []
    for part, pieces in problem.parts.items():
        for p in pieces:
            paths = ([p.path] if p.path is not None else []) + list(
                p.graphs.files if p.graphs is not None else ()
            )
            for f in paths:
                st = f.stat()
                files.append([part, str(f), st.st_size, st.st_mtime_ns])
            # API inputs (in memory, or a window of a file): frames and shape stand in.
            if not p.split_piece:
                files.append([part, f"<trajectory> {p.source}", p.frame_offset,
                              list(p.coords.shape)])
            if p.graphs is not None and not p.graphs.files:
                files.append([part, f"<graphs> {p.source}", int(p.graphs.rows.size)])
    # The seed list and the dead-seed policy do not change one seed's run; the shuffle
    # tag invalidates checkpoints of the former Feistel shuffle.
    run = {k: v for k, v in settings.to_dict().items() if k not in ("seeds", "all_seeds_dead")}
    blob = json.dumps(
        [problem.kind, problem.n_states, problem.lag_frames, run, problem.dims, files,
         SHUFFLE] + ([problem.init.digest] if problem.init is not None else []),
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a damaged checkpoint only costs the time to redo it
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("ignoring checkpoint %s: it belongs to other inputs or settings", path)
        return None
    return state


# --------------------------------------------------------------------------------------
# Prediction and scores


def pick_device() -> torch.device:
    """CUDA when available (CUDA_VISIBLE_DEVICES, e.g. from Slurm, is respected), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode without gradients; restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def predict_frames(
    model: torch.nn.Module,
    inputs: str,
    n_states: int,
    pieces: Sequence[Piece],
    pid: int,
    frames: np.ndarray,
    device: Any,
) -> list[np.ndarray]:
    """State probabilities of ``frames`` of piece ``pid``: a list of (F, n_sets, n_states)
    float32 blocks in frame order, one block (none without frames); run under
    :func:`evaluating`.

    Frames go through the model in chunks of about :data:`PREDICT_EDGES` edges, so a
    prediction's result does not depend on anything but the piece and the frames.
    """
    chunk = max(1, PREDICT_EDGES // max(frame_size(inputs, pieces[pid]), 1))

    def make(lo: int) -> Any:
        # Every chunk has the same shape (a short one is padded with copies of its last
        # frame, whose rows are dropped): a BLAS may take another code path for another
        # row count, and a frame's probabilities must not depend on which frames are
        # predicted with it (GDyNetModel.transform(frames=...) equals the full prediction).
        fr = frames[lo : lo + chunk]
        fr = np.concatenate([fr, np.repeat(fr[-1:], chunk - len(fr))])
        return make_batch(inputs, pieces, np.full(len(fr), pid), fr)

    # Each chunk's probabilities are copied into one array for all frames and its tensors
    # dropped at once: a list of per-chunk tensors would keep thousands of small blocks
    # alive between the chunks' large temporaries, which fragments the heap (the process
    # kept growing through a long prediction).
    out: np.ndarray | None = None
    for lo, batch in ahead(make, range(0, len(frames), chunk)):
        probs = model(batch.to(device)).float().cpu()
        n = len(frames[lo : lo + chunk])
        if out is None:
            out = np.empty((len(frames), probs.shape[0] // chunk, n_states), dtype=np.float32)
        out[lo : lo + n] = probs.reshape(chunk, -1, n_states)[:n].numpy()
        del probs, batch
    return [] if out is None else [out]


def predict_part(
    model: torch.nn.Module, problem: Problem, part: str, device: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State probabilities of every grid frame of every piece of ``part``.

    Returns ``probs`` (F, n_sets, n_states) float32, ``piece`` (F,) and local ``frame`` (F,).
    """
    pieces = problem.parts[part]
    out_p, out_piece, out_frame = [], [], []
    with evaluating(model):
        for pid, p in enumerate(pieces):
            frames = p.grid_frames()
            out_p += predict_frames(model, problem.inputs, problem.n_states, pieces, pid,
                                    frames, device)
            out_piece.append(np.full(len(frames), pid, dtype=np.int64))
            out_frame.append(frames)
    n_sets = {a.shape[1] for a in out_p}
    if len(n_sets) > 1:
        raise InputError(
            f"--{part}: expected the same number of target sets in every piece, got "
            f"{sorted(n_sets)}"
        )
    return np.concatenate(out_p), np.concatenate(out_piece), np.concatenate(out_frame)


def score_probs(
    probs: np.ndarray, piece: np.ndarray, frame: np.ndarray, lag_frames: int,
    settings: TrainSettings,
) -> float:
    """Full-data VAMP-2 of predicted probabilities over all lag pairs within each piece."""
    acc = CovarianceAccumulator(probs.shape[2])
    for pid in np.unique(piece):
        sel = np.flatnonzero(piece == pid)
        f = frame[sel]
        # Row of frame f + lag within this piece, if present (frames are sorted).
        j = np.searchsorted(f, f + lag_frames)
        ok = j < len(f)
        ok[ok] &= f[j[ok]] == f[ok] + lag_frames
        if ok.any():
            x = probs[sel[ok]].reshape(-1, probs.shape[2])
            y = probs[sel[j[ok]]].reshape(-1, probs.shape[2])
            acc.update(x, y)
    if acc.n < 2:
        return float("nan")
    return acc.score(settings.vamp_epsilon, settings.vamp_mode)


def _validation_score(
    model: torch.nn.Module, problem: Problem, settings: TrainSettings, device: Any
) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Full-data validation VAMP-2 and the predictions it was computed from."""
    if not problem.parts.get("val"):
        return float("nan"), None
    prediction = predict_part(model, problem, "val", device)
    return score_probs(*prediction, problem.lag_frames, settings), prediction


# --------------------------------------------------------------------------------------
# Training


def fit(
    problem: Problem,
    settings: TrainSettings,
    outdir: Path | None,
    device: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, keeping the best validation epoch; resumes from ``outdir/checkpoint.pt``.

    Parameters
    ----------
    problem : Problem
        Inputs (:func:`prepare` or :func:`assemble`); a ``val`` part without pieces
        means no validation (the last epoch is kept).
    settings : TrainSettings
        The training settings.
    outdir : Path or None
        Checkpoint directory; None writes no checkpoints.
    device : torch.device, optional
        Default :func:`pick_device`.
    progress : bool
        tqdm progress bar on stderr.

    Returns
    -------
    dict
        ``model`` (best weights loaded), ``metrics`` (list of rows), ``best_epoch``,
        ``best_val_vamp2``, ``resumed`` (the epoch/batch it resumed at, or None),
        ``device``, ``steps`` (optimiser steps taken in this call), ``epochs_run``,
        ``training_converged`` (the stopping rule fired by the last allowed epoch) and
        ``val_prediction``:
        :func:`predict_part` of ``val`` with the best weights when this call computed it
        (the best epoch's validation), else None.
    """
    device = device or pick_device()
    eps, mode = float(settings.vamp_epsilon), str(settings.vamp_mode)
    pairs = PairIndex(problem.parts["train"], problem.lag_frames)
    if pairs.n_pairs < 2:
        raise InputError(
            f"--train: expected at least 2 (t, t + {problem.lag_ps:g} ps) pairs within the "
            f"pieces, got {pairs.n_pairs} (pieces shorter than the lag?)"
        )
    val_pairs = PairIndex(problem.parts.get("val", []), problem.lag_frames).n_pairs
    if not problem.parts.get("val"):
        log.info("no validation data: the last epoch is kept")
    elif val_pairs < 2:
        # Caught before any epoch (issue 26): otherwise every epoch's validation VAMP-2 is
        # NaN, every seed is dead and the message blames seeds and learning rate.
        frames = [p.n_frames for p in problem.parts["val"]]
        raise InputError(
            f"--val: expected at least 2 (t, t + {problem.lag_ps:g} ps) pairs within the "
            f"validation pieces, got {val_pairs} (pieces of {frames} frames, lag "
            f"{problem.lag_frames} frames): the validation window is too short for this "
            "lag; lengthen split/val or shorten train/lags_ps"
        )

    torch.manual_seed(int(settings.seed))
    model = build(problem.kind, problem.n_states, settings.to_dict(), problem.dims)
    if problem.init is not None:
        apply_warm_start(model, problem.init)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(settings.learning_rate))
    digest = fingerprint(problem, settings)
    ckpt_path = None if outdir is None else Path(outdir) / CHECKPOINT
    state = None if ckpt_path is None else _load_checkpoint(ckpt_path, digest)
    metrics: list[dict[str, Any]] = []
    best_state, best_score, best_epoch = None, -math.inf, -1
    best_prediction = None  # validation predictions of the best epoch, if computed here
    start_epoch, start_batch, run_sum, run_n, epoch_secs = 0, 0, 0.0, 0, 0.0
    resumed = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        metrics = list(state["metrics"])
        best_state, best_score = state["best_state"], state["best_score"]
        best_epoch = state["best_epoch"]
        start_epoch, start_batch = int(state["epoch"]), int(state["batch"])
        run_sum, run_n = float(state["run_sum"]), int(state["run_n"])
        epoch_secs = float(state["epoch_secs"])
        resumed = (start_epoch, start_batch)
        log.info("resuming from %s at epoch %d, batch %d", ckpt_path, start_epoch + 1, start_batch)

    def checkpoint(epoch: int, batch: int) -> None:
        if ckpt_path is None:
            return
        _save_checkpoint(ckpt_path, {
            "fingerprint": digest, "epoch": epoch, "batch": batch,
            "model": model.state_dict(), "optimizer": opt.state_dict(), "metrics": metrics,
            "best_state": best_state, "best_score": best_score, "best_epoch": best_epoch,
            "run_sum": run_sum, "run_n": run_n, "epoch_secs": epoch_secs,
        })

    steps = 0
    every = float(settings.checkpoint_every_s)
    n_epochs = int(settings.epochs)
    patience, min_delta = int(settings.patience), float(settings.min_delta)

    def stopped() -> bool:  # a pure function of the metrics: a resumed run decides alike
        return stopping_state(curve(metrics), patience, min_delta).stop

    model.train()
    # Ctrl-C (KeyboardInterrupt) writes a checkpoint at the last safe point, the (epoch,
    # batch) the saved state resumes at; None while a step or the end-of-epoch bookkeeping
    # is half done (the previous checkpoint then stands). A resume stays bit-identical.
    safe: tuple[int, int] | None = (start_epoch, start_batch)
    t0 = time.perf_counter()
    try:
        for epoch in range(start_epoch, n_epochs):
            if stopped():
                break
            perm = epoch_permutation(pairs.n_pairs, settings.seed, epoch)
            bounds = epoch_batches(pairs.n_pairs, settings)
            t0 = time.perf_counter()
            last_ckpt = t0
            bar = tqdm(total=len(bounds), initial=start_batch,
                       desc=f"epoch {epoch + 1}/{n_epochs}", file=sys.stderr, mininterval=2.0,
                       disable=not progress, leave=False)

            def make(b: int, perm: np.ndarray = perm, bounds: list = bounds) -> Any:
                lo, hi = bounds[b]
                piece, t = pairs.lookup(perm[lo:hi])
                return problem.batch("train", np.concatenate([piece, piece]),
                                     np.concatenate([t, t + problem.lag_frames]))

            # The next batch is assembled in a worker thread during this step; the
            # generator's thread ends with it (also when the body raises).
            for b, batch in ahead(make, range(start_batch, len(bounds))):
                bar.update(1)
                out = model(batch.to(device))
                half = out.shape[0] // 2
                loss = vamp2_loss(out[:half], out[half:], eps, mode)
                opt.zero_grad(set_to_none=True)
                ok = bool(torch.isfinite(loss))
                if ok:
                    loss.backward()
                    # eigh's gradient is infinite for degenerate eigenvalues: never feed Adam NaN.
                    ok = bool(torch.isfinite(torch.stack(
                        [g.abs().max() for g in (q.grad for q in model.parameters()) if g is not None]
                    )).all())
                if ok:
                    safe = None  # the step and its counters change together
                    opt.step()
                    run_sum += -loss.item()
                    run_n += 1
                else:  # a degenerate batch (e.g. every pair in one state): skip the step
                    log.warning("epoch %d batch %d: non-finite VAMP-2 or gradient, step skipped",
                                epoch + 1, b)
                safe = (epoch, b + 1)
                steps += 1
                if run_n:
                    bar.set_postfix(vamp2=f"{run_sum / run_n:.4f}", refresh=False)
                _after_step()
                now = time.perf_counter()
                if now - last_ckpt >= every and b + 1 < len(bounds):
                    epoch_secs += now - t0
                    t0 = last_ckpt = now
                    checkpoint(epoch, b + 1)
            bar.close()
            val, prediction = _validation_score(model, problem, settings, device)
            train_score = run_sum / run_n if run_n else float("nan")
            safe = None  # metrics, best state and counters change together
            epoch_secs += time.perf_counter() - t0
            metrics.append({"epoch": epoch + 1, "train_vamp2": train_score, "val_vamp2": val,
                            "seconds": round(epoch_secs, 3)})
            log.info("epoch %d/%d: train VAMP-2 %.4f, val VAMP-2 %.4f (%.1f s)",
                     epoch + 1, n_epochs, train_score, val, epoch_secs)
            if (math.isfinite(val) and val > best_score) or (
                not math.isfinite(best_score) and not math.isfinite(val)
            ):
                best_score = val if math.isfinite(val) else -math.inf
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                best_epoch = epoch + 1
                best_prediction = prediction
            start_batch, run_sum, run_n, epoch_secs = 0, 0.0, 0, 0.0
            safe, t0 = (epoch + 1, 0), time.perf_counter()  # consistent again
            checkpoint(epoch + 1, 0)
    except KeyboardInterrupt:
        if safe is not None and ckpt_path is not None:
            epoch_secs += time.perf_counter() - t0
            checkpoint(*safe)
            log.warning("interrupted: checkpoint %s written at epoch %d, batch %d; the same "
                        "command resumes from it", ckpt_path, safe[0] + 1, safe[1])
        raise
    model.load_state_dict(best_state)
    converged = stopped()
    if converged:
        log.info("stopping rule: no val VAMP-2 gain of %g in %d epochs; stopped after epoch "
                 "%d (best %d)", min_delta, patience, len(metrics), best_epoch)
    return {
        "model": model,
        "metrics": metrics,
        "best_epoch": best_epoch,
        "best_val_vamp2": best_score if math.isfinite(best_score) else float("nan"),
        "resumed": resumed,
        "device": str(device),
        "steps": steps,
        "epochs_run": len(metrics),
        "training_converged": converged,
        "val_prediction": best_prediction,
    }
