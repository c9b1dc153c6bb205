"""Several seeds per model: train each, report dead ones, keep the best, align its states.

One training job of the workflow (one model kind, state count and lag) trains every seed
of ``train.seeds`` in turn on inputs opened once (:func:`fit_seeds`): the kept model must
be known before the job writes its probabilities, and Slurm parallelism stays across state
counts and lags. For each seed it scores the best epoch's model on the validation frames
(the training frames when there is no validation data) and on the test frames, and decides
whether the model is **dead** (:func:`dead_reason`):

* its validation VAMP-2 is not finite, or
* its outputs are constant: no state probability has a standard deviation of at least
  :data:`DEAD_SPREAD` (1e-6) over the validation rows (the network ignores its input: a
  saturated softmax with zero gradient), or
* its validation VAMP-2 is within :data:`DEAD_VAMP2` (1e-3) of 1, the value of constant
  features: no singular value above ~0.03, no process resolved at this lag, or
* **nothing resolved at this lag** (a null, issue 22): its validation VAMP-2 is not above
  the VAMP-2 of the same predictions with the frames shuffled in time within each piece
  (:data:`NULL_SHUFFLES` = 19 shuffles, so "above all of them" is a one-sided test at
  1/20 = 5 %): time-shuffled pairs are independent, so their score is what the network's
  features give without any dynamics (1 plus the finite-sample bias of that many pairs).

The thresholds are those of a *collapsed* model in the Koopman stage
(``gdyn.koopman.selection.CONSTANT_SD`` and ``COLLAPSE_VAMP2``; this layer may not import
it, a test keeps them equal), so a dead seed and a collapsed model mean the same thing.

The kept seed is the live one with the best validation VAMP-2 (ties: the first in the
list). When every seed is dead and every one only because nothing is resolved at this lag
(the null), that is a result about the lag, not a failed training: the best seed is kept,
flagged ``kept_dead`` and ``nothing_resolved``, with a warning, and the DAG goes on with
the other lags. Otherwise, when every seed is dead, ``all_seeds_dead`` decides: ``"fail"`` raises
:class:`AllSeedsDead` (one line naming the model and seeds; ``gdyn train``, i.e. the
workflow, defaults to it), ``"keep"`` keeps the best one, flagged ``kept_dead``, with a
warning (the estimator API's default, as deeptime's estimators return a poor fit rather
than raise; and smoke tests that train for seconds). The kept model's states are then aligned
(:mod:`gdyn.train.align`): ordered by population when it is the reference, else mapped
onto the reference's states; every live seed's agreement with the same reference is
recorded, so seeds that found other states show.

A killed job resumes: a finished seed leaves ``seed{n}.pt`` (its best weights and metrics)
in the checkpoint directory and the running one ``checkpoint.pt``; both carry the
fingerprint of their inputs and settings.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gdyn.errors import InputError
from gdyn.files import atomic_path
from gdyn.layout import lag_label
from gdyn.models import build
from gdyn.states import (
    agreement,
    hard_agreement,
    hungarian_order,
    overlap_matrix,
    population_order,
)
from gdyn.train.align import (
    ALIGNMENT_RULE,
    POPULATION_RULE,
    ReferenceProbs,
    match_rows,
    permute_output_layer,
)
from gdyn.train.batches import PairIndex, frame_size
from gdyn.train.loop import (
    CHECKPOINT,
    PREDICT_EDGES,
    Problem,
    evaluating,
    fingerprint,
    fit,
    predict_frames,
    predict_part,
    score_probs,
)
from gdyn.train.settings import TrainSettings
from gdyn.train.stopping import curve, stopping_state

__all__ = [
    "DEAD_SPREAD",
    "DEAD_VAMP2",
    "AllSeedsDead",
    "SeedRun",
    "SeedsFit",
    "dead_reason",
    "fit_seeds",
    "seed_settings",
    "spread_summary",
]

log = logging.getLogger(__name__)

DEAD_SPREAD = 1e-6  # = gdyn.koopman.selection.CONSTANT_SD
DEAD_VAMP2 = 1e-3  # = gdyn.koopman.selection.COLLAPSE_VAMP2
ALL_SEEDS_DEAD = ("fail", "keep")
# Time shuffles of the null (19: "above every shuffle" has a 5 % false-dead rate).
NULL_SHUFFLES = 19
NOTHING_RESOLVED = "nothing resolved at this lag"


class AllSeedsDead(InputError):
    """Every seed of a model is dead (the CLI prints the one-line reason, exit 2)."""


def seed_settings(settings: TrainSettings, seed: int) -> TrainSettings:
    """The settings of one seed's run: ``seed`` set, the ``seeds`` list dropped, so a
    seed's checkpoint stays valid when other seeds are added to the list."""
    return replace(settings, seed=int(seed), seeds=None)


def null_vamp2(
    probs: np.ndarray, piece: np.ndarray, frame: np.ndarray, lag_frames: int,
    settings: TrainSettings, n: int = NULL_SHUFFLES, seed: int = 0,
) -> np.ndarray:
    """VAMP-2 of ``probs`` with its rows shuffled in time within each piece, ``n`` times.

    The frames (and so the lag pairs) stay; which prediction sits at which frame is
    permuted, so every pair is two unrelated frames of the same piece.
    """
    rng = np.random.default_rng(seed)
    piece = np.asarray(piece)
    groups = [np.flatnonzero(piece == p) for p in np.unique(piece)]
    out = np.empty(n)
    for k in range(n):
        perm = np.arange(len(piece))
        for idx in groups:
            perm[idx] = idx[rng.permutation(idx.size)]
        out[k] = score_probs(probs[perm], piece, frame, lag_frames, settings)
    return out


def dead_reason(probs: np.ndarray, vamp2: float, part: str = "validation",
                null: np.ndarray | None = None) -> str | None:
    """Why a model is dead (see the module docstring), or None when it is alive.

    Parameters
    ----------
    probs : ndarray (F, n_sets, S)
        The model's probabilities on the scored frames.
    vamp2 : float
        Its VAMP-2 there.
    part : str
        Names the frames in the reason.
    null : ndarray, optional
        :func:`null_vamp2` of the same predictions (the time-shuffled null).
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p.reshape(-1, p.shape[-1])
    spread = float(p.std(axis=0).max()) if len(p) else 0.0
    if not math.isfinite(vamp2):
        return f"{part} VAMP-2 is not finite ({vamp2})"
    if spread < DEAD_SPREAD:
        return (f"constant outputs (largest standard deviation of a state probability over "
                f"the {part} rows {spread:.2g} < {DEAD_SPREAD:g})")
    if vamp2 < 1.0 + DEAD_VAMP2:
        return (f"{part} VAMP-2 {vamp2:.5f} < 1 + {DEAD_VAMP2:g}: constant features score 1, "
                "no process is resolved")
    if null is not None:
        top = float(np.nanmax(null)) if np.isfinite(null).any() else math.nan
        if math.isfinite(top) and vamp2 <= top:
            return (f"{NOTHING_RESOLVED}: {part} VAMP-2 {vamp2:.5f} not above the "
                    f"time-shuffled null (max {top:.5f} over {len(null)} shuffles)")
    return None


def spread_summary(values: list[float]) -> dict[str, Any]:
    """``min``, ``median``, ``max`` and ``n`` of the finite values (None when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not v.size:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max()),
            "n": int(v.size)}


@dataclass
class SeedRun:
    """One seed's trained model and its scores."""

    seed: int
    fit: dict[str, Any]  # gdyn.train.loop.fit's result (the seed's best weights loaded)
    score_part: str  # "val", or "train" without validation data
    probs: np.ndarray  # (F, n_sets, S) on score_part, raw output order
    keys: ReferenceProbs  # the same rows with their (trajectory, frame) names
    val_vamp2: float
    test_vamp2: float
    spread: float
    dead: str | None
    agreement: float | None = None  # hard agreement with the reference after alignment
    # predict_part results of the seed's model, raw output order, by part (score part, test)
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False)

    def record(self) -> dict[str, Any]:
        """The seed's entry of ``config.json`` ``seeds``."""
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "seed": self.seed,
            "best_epoch": self.fit["best_epoch"],
            "epochs_run": self.fit["epochs_run"],
            "training_converged": self.fit["training_converged"],
            "val_vamp2": num(self.val_vamp2),
            "test_vamp2": num(self.test_vamp2),
            "output_spread": self.spread,
            "dead": self.dead is not None,
            "dead_reason": self.dead,
            "agreement": self.agreement,
        }


@dataclass
class SeedsFit:
    """Every seed's run, the kept one, and the kept model's state alignment."""

    runs: list[SeedRun]
    kept: SeedRun
    alignment: dict[str, Any]
    kept_dead: bool = False
    metrics: list[dict[str, Any]] = field(default_factory=list)
    nothing_resolved: bool = False

    @property
    def predictions(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The kept model's predictions made while scoring (``predict_part`` results by
        part), when they are exactly the final model's: its states kept the network's
        order (the permuted output layer holds the same values). Else empty: permuted
        outputs may differ in the last bit, so the parts are predicted again."""
        n = self.kept.probs.shape[-1]
        if self.alignment["permutation"] != list(range(n)):
            return {}
        return dict(self.kept.predictions)

    @property
    def result(self) -> dict[str, Any]:
        """The kept seed's :func:`gdyn.train.loop.fit` result, with the seed records."""
        live = [r for r in self.runs if r.dead is None]
        return {
            **self.kept.fit,
            "metrics": self.metrics,
            "best_val_vamp2": (self.kept.val_vamp2 if self.kept.score_part == "val"
                               else float("nan")),
            "test_vamp2": self.kept.test_vamp2,
            "score_part": self.kept.score_part,
            "seed": self.kept.seed,
            "seeds": [r.record() for r in self.runs],
            "unconverged_seeds": [r.seed for r in self.runs
                                  if not r.fit["training_converged"]],
            "dead_seeds": [r.seed for r in self.runs if r.dead is not None],
            "kept_dead": self.kept_dead,
            "nothing_resolved": self.nothing_resolved,
            "seed_spread": {
                "val_vamp2": spread_summary([r.val_vamp2 for r in live]),
                "test_vamp2": spread_summary([r.test_vamp2 for r in live]),
            },
            "alignment": self.alignment,
        }


# --------------------------------------------------------------------------------------


def _score_part(problem: Problem) -> str:
    val = problem.parts.get("val") or []
    if val and PairIndex(val, problem.lag_frames).n_pairs >= 2:
        return "val"
    return "train"


def _keys(problem: Problem, part: str, probs: np.ndarray, piece: np.ndarray,
          frame: np.ndarray) -> ReferenceProbs:
    pieces = problem.parts[part]
    offsets = np.array([p.frame_offset for p in pieces], dtype=np.int64)
    return ReferenceProbs(probs, [p.source for p in pieces], piece, offsets[piece] + frame,
                          f"{part} frames of this model")


def _current(model: torch.nn.Module, problem: Problem, part: str,
             known: tuple[np.ndarray, np.ndarray, np.ndarray], device: Any) -> bool:
    """Whether ``known`` (a :func:`predict_part` result of ``part``) is ``model``'s: its
    first prediction chunk is made again and must match exactly."""
    probs, piece, frame = known
    pieces = problem.parts[part]
    if not len(frame):
        return True
    first = frame[piece == piece[0]][: max(1, PREDICT_EDGES // max(
        frame_size(problem.inputs, pieces[piece[0]]), 1))]
    with evaluating(model):
        again = predict_frames(model, problem.inputs, problem.n_states, pieces,
                               int(piece[0]), first, device)[0]
    return bool(np.array_equal(again, probs[: len(first)]))


def _score(model: torch.nn.Module, problem: Problem, part: str, settings: TrainSettings,
           device: Any, known: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`predict_part` of ``part`` and its VAMP-2. ``known``: that prediction, made
    already with the same weights (fit's best-epoch validation), is not made again (after
    a check of its first chunk)."""
    if known is None or not _current(model, problem, part, known, device):
        known = predict_part(model, problem, part, device)
    probs, piece, frame = known
    return probs, piece, frame, score_probs(probs, piece, frame, problem.lag_frames, settings)


def _load_done(path: Path, digest: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a damaged file only costs the time to redo the seed
        log.warning("ignoring unreadable %s (%s)", path, exc)
        return None
    return state if state.get("fingerprint") == digest else None


def _run_seed(
    problem: Problem, settings: TrainSettings, seed: int, outdir: Path | None, device: Any,
    progress: bool,
) -> dict[str, Any]:
    """One seed's :func:`fit`, or its finished result from ``seed{n}.pt``."""
    s = seed_settings(settings, seed)
    done_path = None if outdir is None else outdir / f"seed{seed}.pt"
    digest = fingerprint(problem, s)
    if done_path is not None and (state := _load_done(done_path, digest)) is not None:
        model = build(problem.kind, problem.n_states, s.to_dict(), problem.dims).to(device)
        model.load_state_dict(state["best_state"])
        log.info("seed %d: finished earlier, loaded from %s", seed, done_path)
        metrics = list(state["metrics"])
        converged = stopping_state(curve(metrics), int(s.patience),
                                   float(s.min_delta)).stop
        return {"model": model, "metrics": metrics,
                "best_epoch": state["best_epoch"], "best_val_vamp2": state["best_score"],
                "resumed": "finished", "device": str(device), "steps": 0,
                "epochs_run": len(metrics), "training_converged": converged}
    res = fit(problem, s, outdir, device, progress)
    if done_path is not None:
        with atomic_path(done_path) as tmp:
            torch.save({"fingerprint": digest, "best_epoch": res["best_epoch"],
                        "best_score": res["best_val_vamp2"], "metrics": res["metrics"],
                        "best_state": {k: v.detach().cpu()
                                       for k, v in res["model"].state_dict().items()}}, tmp)
        (outdir / CHECKPOINT).unlink(missing_ok=True)
    return res


def fit_seeds(
    problem: Problem,
    settings: TrainSettings,
    outdir: Path | None = None,
    device: Any = None,
    progress: bool = True,
    reference: ReferenceProbs | None = None,
) -> SeedsFit:
    """Train every seed of ``settings``, keep the best live one and align its states.

    Parameters
    ----------
    problem : Problem
        The opened inputs (:func:`gdyn.train.loop.prepare` / ``assemble``).
    settings : TrainSettings
        The training settings; ``seeds`` (else ``[seed]``) lists the seeds and
        ``all_seeds_dead`` says what to do when every one is dead.
    outdir : Path, optional
        Checkpoint directory (``checkpoint.pt``, ``seed{n}.pt``); None: no checkpoints.
    device : torch.device
    progress : bool
        tqdm bars.
    reference : ReferenceProbs, optional
        The reference model's probabilities on the validation frames: the kept model's
        states are mapped onto it. None: this model is the reference (population order).

    Returns
    -------
    SeedsFit
        The kept seed's model has its output layer permuted into the aligned order.
    """
    seeds = settings.seed_list
    part = _score_part(problem)
    has_test = bool(problem.parts.get("test"))
    label = f"{problem.kind} s{problem.n_states} lag {lag_label(problem.lag_ps)}"
    runs: list[SeedRun] = []
    metrics: list[dict[str, Any]] = []
    for seed in seeds:
        res = _run_seed(problem, settings, seed, outdir, device, progress)
        model = res["model"]
        # The best epoch's validation predictions (when this call made them) are the
        # kept weights' predictions on the same frames: scored without predicting again.
        known = res.pop("val_prediction", None)
        known = known if part == "val" else None
        probs, piece, frame, val = _score(model, problem, part, settings, device, known)
        predictions = {part: (probs, piece, frame)}
        test = float("nan")
        if has_test:
            *test_prediction, test = _score(model, problem, "test", settings, device)
            predictions["test"] = tuple(test_prediction)
        p2 = probs.reshape(-1, probs.shape[-1]).astype(np.float64)
        spread = float(p2.std(axis=0).max()) if len(p2) else 0.0
        null = null_vamp2(probs, piece, frame, problem.lag_frames, settings, seed=seed)
        dead = dead_reason(probs, val, "validation" if part == "val" else "training", null)
        runs.append(SeedRun(seed, res, part, probs, _keys(problem, part, probs, piece, frame),
                            val, test, spread, dead, predictions=predictions))
        # The seed's stopping verdict on each of its rows (metrics.csv stays one table).
        verdict = {"epochs_run": res["epochs_run"], "best_epoch": res["best_epoch"],
                   "training_converged": res["training_converged"]}
        metrics += [{"seed": seed, **row, **verdict} for row in res["metrics"]]
        if not res["training_converged"]:
            log.warning("%s seed %d: not converged: the validation VAMP-2 still rose by "
                        ">= %g within the last %d of %d epochs (raise train.epochs)", label,
                        seed, settings.min_delta, settings.patience, res["epochs_run"])
        if dead:
            log.warning("%s seed %d is dead: %s", label, seed, dead)
        else:
            log.info("%s seed %d: %s VAMP-2 %.4f, test VAMP-2 %.4f", label, seed, part, val,
                     test)
    live = [r for r in runs if r.dead is None]
    kept_dead = not live
    nothing = kept_dead and all(str(r.dead).startswith(NOTHING_RESOLVED) for r in runs)
    if nothing:
        log.warning("%s: %s (every seed: VAMP-2 within the time-shuffled null); keeping the "
                    "best seed, flagged", label, NOTHING_RESOLVED)
        live = runs
    elif kept_dead:
        reasons = "; ".join(f"seed {r.seed}: {r.dead}" for r in runs)
        if settings.all_seeds_dead != "keep":
            raise AllSeedsDead(f"{label}: every seed is dead, no model to keep ({reasons}); "
                               + _dead_advice(problem, part, runs[0].probs))
        log.warning("%s: every seed is dead (%s); keeping the best one as all_seeds_dead: "
                    "keep asks", label, reasons)
        live = runs
    best = max(live, key=lambda r: r.val_vamp2 if math.isfinite(r.val_vamp2) else -math.inf)
    ties = [r.seed for r in live if r is not best and r.val_vamp2 == best.val_vamp2]
    if ties:
        log.info("%s: seeds %s tie with seed %d; the first listed is kept", label, ties,
                 best.seed)
    alignment = _align(problem, best, live, reference)
    log.info("%s: kept seed %d (%s VAMP-2 %.4f); states %s", label, best.seed, part,
             best.val_vamp2, alignment["rule"])
    return SeedsFit(runs, best, alignment, kept_dead, metrics, nothing_resolved=nothing)


# Fewer scored samples (lag pairs x target sets) per state than this: the data, not the
# seeds, are the likely cause of dead models (the Koopman stage's near-empty rule asks for
# 10 effective transitions per state, gdyn.koopman.selection.DEFAULT_MIN_SAMPLES).
MIN_SAMPLES_PER_STATE = 10


def _dead_advice(problem: Problem, part: str, probs: np.ndarray) -> str:
    """What to try when every seed is dead: longer data when they are too short."""
    pairs = PairIndex(problem.parts[part], problem.lag_frames).n_pairs
    n_sets = int(probs.shape[1]) if probs.ndim == 3 else 1
    frames = [p.n_frames for p in problem.parts[part]]
    if pairs * n_sets < MIN_SAMPLES_PER_STATE * problem.n_states:
        which = "validation" if part == "val" else "training"
        return (f"the data are too short: the {which} pieces ({frames} frames) hold "
                f"{pairs} (t, t + {problem.lag_ps:g} ps) pairs x {n_sets} target sets, fewer "
                f"than {MIN_SAMPLES_PER_STATE} per state of {problem.n_states}; use longer "
                "trajectories or split windows, or shorter lags (or all_seeds_dead: keep)")
    return ("try other train.seeds, another learning_rate or more epochs (or "
            "all_seeds_dead: keep)")


def _align(problem: Problem, best: SeedRun, live: list[SeedRun],
           reference: ReferenceProbs | None) -> dict[str, Any]:
    """Permute ``best``'s output layer into the aligned order; record every live seed's
    agreement with the reference (the kept model itself when it is the reference)."""
    n = best.probs.shape[-1]
    if reference is None:
        order = population_order(best.probs)
        target = ReferenceProbs(best.probs[..., order], best.keys.sources, best.keys.traj,
                                best.keys.frame, "kept seed")
        overlap = None
        rule = POPULATION_RULE
    else:
        if reference.n_states != n:
            raise InputError(f"{reference.where}: key 'probs': expected {n} states (as this "
                             f"model), got {reference.n_states}")
        target = reference
        i_ref, i_mod = match_rows(reference, best.keys)
        overlap = overlap_matrix(reference.probs[i_ref], best.probs[i_mod])
        order = hungarian_order(overlap)
        hard = hard_agreement(reference.probs[i_ref], best.probs[i_mod], order)
        rule = ALIGNMENT_RULE
    for r in live:
        i_ref, i_mod = match_rows(target, r.keys)
        o = overlap_matrix(target.probs[i_ref], r.probs[i_mod])
        r.agreement = hard_agreement(target.probs[i_ref], r.probs[i_mod], hungarian_order(o))
    # The permuted network must give the permuted probabilities (first frames scored).
    model = best.fit["model"]
    pieces = problem.parts[best.score_part]
    frames = pieces[0].grid_frames()[:4]
    batch = problem.batch(best.score_part, np.zeros(len(frames), dtype=np.int64), frames)
    batch = batch.to(next(model.parameters()).device)
    with evaluating(model):
        before = model(batch).float().cpu().numpy()
    permute_output_layer(model, order, check=(batch, before))
    best.probs = best.probs[..., order]
    pops = best.probs.reshape(-1, n).astype(np.float64).mean(axis=0)
    out: dict[str, Any] = {
        "rule": rule,
        "reference": None if reference is None else reference.where,
        "permutation": order.tolist(),
        "populations": pops.tolist(),
        "frames": best.score_part,
        "n_rows": int(best.probs.shape[0] * best.probs.shape[1]),
    }
    if overlap is not None:
        out["overlap"] = overlap.tolist()  # [reference state, raw model output]
        out["agreement"] = agreement(overlap, order)
        out["hard_agreement"] = hard
        out["n_rows"] = int(len(i_ref) * best.probs.shape[1])
    return out
