"""The estimator API (deeptime style): an estimator ``fit`` s a :class:`GDyNetModel`.

::

    est = GDyNet(n_states=2, lag_ps=10.0, n_neighbors=12, epochs=20)  # TrainSettings fields
    model = est.fit(train, val=None)     # Trajectory, .npz path, or a list of them
    probs = model.transform(traj)        # (F, n_sets, n_states) float32, every frame
    model.save("dir"); model = GDyNetModel.load("dir")
    VAMPNet(n_states, lag_ps, **settings).fit(...)  # the same GDyNetModel, kind "vampnet"

:meth:`Estimator.fit` builds the graphs it needs in memory, for the frames on the
``frame_stride`` grid only, exactly as :func:`gdyn.graph.build_store` would store them
(rows pruned to the receptive field of the ``n_conv`` layers unless ``prune=False``), so
a model fitted here equals one trained by ``gdyn train`` on the same data, settings and
seed. ``gdyn train`` goes through the same estimator: :meth:`Estimator.fit_pieces` opens
split pieces and their graph stores and checkpoints into the model directory, and
:func:`train` writes the model directory (:mod:`gdyn.train.outputs`).

The frame interval comes from each trajectory's ``frame_interval_ps`` extra, else from
the estimator's ``frame_interval_ps`` argument; ``frame_offset`` (raw index of the first
frame; default 0) aligns the stride grid and seeds the graph's tie rule, ``source`` names
the trajectory (default: the file name, else ``traj{i}``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gdyn.errors import InputError
from gdyn.models import spec
from gdyn.settings import default
from gdyn.train.align import ReferenceProbs, read_reference
from gdyn.train.batches import PairIndex
from gdyn.train.data import (
    Piece,
    attach_graphs,
    graphs_in_memory,
    piece_from_trajectory,
    set_grid,
)
from gdyn.train.loop import (
    CHECKPOINT,
    Problem,
    as_lag_ps,
    assemble,
    check_model,
    evaluating,
    pick_device,
    predict_frames,
    predict_part,
    prepare,
)
from gdyn.train.memberships import MembershipMap, fit_memberships
from gdyn.train.outputs import (
    metrics_frame,
    model_config,
    read_model_dir,
    write_model_dir,
    write_outputs,
)
from gdyn.train.seeds import fit_seeds
from gdyn.train.settings import API_ALL_SEEDS_DEAD, TrainSettings, as_train_settings
from gdyn.train.warmstart import read_warm_start
from gdyn.trajectory import Trajectory, load_trajectory, validate_trajectory

__all__ = ["Estimator", "GDyNet", "GDyNetModel", "VAMPNet", "train"]

log = logging.getLogger(__name__)

TrajectoryLike = Trajectory | str | os.PathLike
_INTERVAL_HINT = " (or pass frame_interval_ps= to the estimator)"


def _as_trajectory(traj: TrajectoryLike) -> Trajectory:
    if isinstance(traj, Trajectory):
        return traj
    if isinstance(traj, str | os.PathLike):
        return load_trajectory(traj, mmap=True, validate=False)
    raise InputError(
        f"trajectory: expected a gdyn.trajectory.Trajectory or an .npz path, got "
        f"{type(traj).__name__}"
    )


def _as_list(trajs: TrajectoryLike | Sequence[TrajectoryLike] | None) -> list[TrajectoryLike]:
    if trajs is None:
        return []
    if isinstance(trajs, Trajectory | str | os.PathLike):
        return [trajs]
    return list(trajs)


def _name(traj: Trajectory, i: int) -> str:
    return Path(traj.path).stem if traj.path is not None else f"traj{i}"


class GDyNetModel:
    """A trained GDyNet (or VAMPnet): state probabilities of the target sets.

    Attributes
    ----------
    module : torch.nn.Module
        The network (``gdyn.models`` registry class of :attr:`kind`).
    config : dict
        What ``config.json`` holds (docs/contracts.md); :attr:`kind`, :attr:`n_states`,
        :attr:`lag_ps`, :attr:`frame_interval_ps`, :attr:`settings`, :attr:`dims` read it.
    metrics : pandas.DataFrame or None
        Per-epoch ``seed, epoch, train_vamp2, val_vamp2, seconds`` of every seed (None when
        unknown).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        config: Mapping[str, Any],
        metrics: pd.DataFrame | None = None,
    ) -> None:
        self.module = module
        self.config = dict(config)
        self.metrics = metrics

    @property
    def kind(self) -> str:
        """Model kind, a key of ``gdyn.models.REGISTRY``."""
        return str(self.config["model"])

    @property
    def n_states(self) -> int:
        return int(self.config["n_states"])

    @property
    def lag_ps(self) -> float:
        return float(self.config["lag_ps"])

    @property
    def frame_interval_ps(self) -> float:
        return float(self.config["frame_interval_ps"])

    @property
    def frame_stride(self) -> int:
        return int(self.config.get("frame_stride", self.settings.frame_stride))

    @property
    def settings(self) -> TrainSettings:
        """The training settings (``config.json``'s ``settings``)."""
        return TrainSettings.from_mapping(self.config["settings"])

    @property
    def dims(self) -> dict[str, Any]:
        """Data dimensions the network was built for."""
        return dict(self.config["dims"])

    @property
    def inputs(self) -> str:
        """Input kind (``"graphs"`` or ``"positions"``)."""
        return spec(self.kind).inputs

    @property
    def membership_map(self) -> MembershipMap:
        """The affine map from the network's outputs to the memberships
        (:mod:`gdyn.train.memberships`; ``config.json`` ``memberships``, else the identity)."""
        return MembershipMap.from_dict(self.config.get("memberships"), self.n_states,
                                       "config.json")

    @property
    def training_converged(self) -> bool | None:
        """Whether the stopping rule ended training (None for models trained before it)."""
        return self.config.get("training_converged")

    def memberships(self, raw: np.ndarray) -> np.ndarray:
        """The memberships of raw network outputs (..., n_states), float32.

        The one place the membership map is applied: :meth:`transform`,
        :meth:`predict_part` and the workflow's probs files all go through it.
        """
        return self.membership_map.apply(raw)

    def __repr__(self) -> str:
        return (f"GDyNetModel(kind={self.kind!r}, n_states={self.n_states}, "
                f"lag_ps={self.lag_ps:g}, frame_interval_ps={self.frame_interval_ps:g})")

    def _piece(self, traj: Trajectory) -> Piece:
        where = str(traj.path) if traj.path is not None else "trajectory"
        return piece_from_trajectory(traj, where, _name(traj, 0), self.frame_interval_ps)

    def grid(self, traj: TrajectoryLike) -> np.ndarray:
        """Local frames of ``traj`` on the model's ``frame_stride`` grid (raw frame numbers
        divisible by the stride): the frames ``gdyn train`` writes probabilities for."""
        piece = self._piece(_as_trajectory(traj))
        set_grid([piece], self.frame_stride)
        return piece.grid_frames()

    def transform(
        self,
        traj: TrajectoryLike,
        frames: np.ndarray | Sequence[int] | None = None,
        *,
        prune: bool = default("graph", "prune"),
        device: Any = None,
        raw: bool = False,
    ) -> np.ndarray:
        """State memberships of the target sets of ``traj``.

        Parameters
        ----------
        traj : Trajectory or path
            A trajectory in the gdyn format (e.g. a split piece).
        frames : array of int, optional
            Local frame indices to evaluate, in the order wanted. Default: every frame
            (``frame_stride`` applies to training only); ``frames=model.grid(traj)`` gives
            the rows of the workflow's ``probs_*.npz`` for this piece, bit for bit.
        prune : bool
            Graph rows limited to the receptive field of the targets (as the workflow's
            pruned stores; exact for the targets). False computes every atom's row.
        device : torch.device, optional
            Default: the module's device.
        raw : bool
            The network's outputs instead of the memberships (:meth:`memberships`).

        Returns
        -------
        ndarray
            ``probs`` (len(frames), n_sets, n_states) float32; rows sum to one.
        """
        t = _as_trajectory(traj)
        graph_inputs = self.inputs == "graphs"
        m = int(self.dims["n_neighbors"]) if graph_inputs else None
        piece = self._piece(t)
        validate_trajectory(t, piece.where, n_neighbors=m)
        frames = (np.arange(t.n_frames, dtype=np.int64) if frames is None
                  else np.asarray(frames, dtype=np.int64).reshape(-1))
        if frames.size and (frames.min() < 0 or frames.max() >= t.n_frames):
            raise InputError(
                f"{piece.where}: frames: expected local frame indices in [0, {t.n_frames}), "
                f"got {frames.min()}..{frames.max()}"
            )
        if graph_inputs:
            n_conv = self.settings.n_conv
            graphs = graphs_in_memory(t, frames, m, n_conv if prune else None,
                                      piece.frame_offset, piece.where)
            attach_graphs(piece, graphs, n_conv)
        if device is None:
            device = next(self.module.parameters()).device
        with evaluating(self.module):
            blocks = predict_frames(self.module, self.inputs, self.n_states, [piece], 0,
                                    frames, device)
        if not blocks:
            return np.empty((0, piece.target_sets.shape[0], self.n_states), dtype=np.float32)
        out = np.concatenate(blocks)
        return out if raw else self.memberships(out)

    def predict_part(
        self, problem: Problem, part: str, raw: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``probs`` (memberships, or the network's outputs with ``raw``), piece index and
        local frame of every grid frame of a problem's part (what ``probs_{part}.npz``
        holds; see :func:`gdyn.train.loop.predict_part`)."""
        device = next(self.module.parameters()).device
        probs, piece, frame = predict_part(self.module, problem, part, device)
        return (probs if raw else self.memberships(probs)), piece, frame

    def save(self, directory: str | Path) -> None:
        """Write ``model.pt``, ``metrics.csv`` (when known) and ``config.json`` atomically:
        a model directory :meth:`load` (and the workflow) reads."""
        write_model_dir(directory, self.module, self.config, self.metrics)

    @classmethod
    def load(cls, directory: str | Path) -> GDyNetModel:
        """A model directory (``gdyn train``'s or :meth:`save`'s), on CPU in eval mode."""
        module, config, metrics = read_model_dir(directory)
        return cls(module, config, metrics)


class Estimator:
    """Trains one model kind of ``gdyn.models.REGISTRY`` by maximising VAMP-2.

    Parameters
    ----------
    n_states : int
        Number of states (>= 2).
    lag_ps : float or str
        Lag time in ps (or a label such as ``"10ps"``); a multiple of the frame interval
        and of ``frame_stride`` frames.
    kind : str
        Model kind (set by :class:`GDyNet` / :class:`VAMPNet`).
    n_neighbors : int, optional
        M, neighbours per atom of the graphs built in memory (graph-input kinds).
    prune : bool
        Graph rows limited to the targets' receptive field (as the workflow's stores).
    frame_interval_ps : float, optional
        For trajectories without a ``frame_interval_ps`` extra.
    device : str or torch.device, optional
        Default CUDA when available, else CPU.
    progress : bool
        tqdm progress bars on stderr.
    settings : TrainSettings or mapping, optional
        Training settings (:class:`gdyn.train.settings.TrainSettings`, or a mapping of its
        fields: the schema's defaults, but ``all_seeds_dead: keep``); keyword arguments
        override them (:func:`dataclasses.replace`).
    """

    kind: str = ""

    def __init__(
        self,
        n_states: int,
        lag_ps: float | str,
        *,
        kind: str | None = None,
        n_neighbors: int | None = None,
        prune: bool = default("graph", "prune"),
        frame_interval_ps: float | None = None,
        device: Any = None,
        progress: bool = False,
        settings: TrainSettings | Mapping[str, Any] | None = None,
        **training_settings: Any,
    ) -> None:
        self.settings = as_train_settings(settings, API_ALL_SEEDS_DEAD, **training_settings)
        self.kind = kind or type(self).kind
        check_model(self.kind, n_states)
        self.n_states = int(n_states)
        self.lag_ps = as_lag_ps(lag_ps)
        if n_neighbors is not None and (isinstance(n_neighbors, bool) or int(n_neighbors) < 1):
            raise InputError(f"n_neighbors: expected an integer >= 1, got {n_neighbors!r}")
        self.n_neighbors = None if n_neighbors is None else int(n_neighbors)
        self.prune = bool(prune)
        self.frame_interval_ps = frame_interval_ps
        self.device = device
        self.progress = progress
        self.problem_: Problem | None = None  # inputs of the last fit
        self.result_: dict[str, Any] | None = None  # the kept seed's fit result + seed records
        self.seeds_: Any = None  # gdyn.train.seeds.SeedsFit of the last fit

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, n_states={self.n_states}, "
                f"lag_ps={self.lag_ps:g}, n_neighbors={self.n_neighbors})")

    # -- inputs ----------------------------------------------------------------------

    def _pieces(self, trajs: Any, part: str) -> list[Piece]:
        m = self.n_neighbors if spec(self.kind).inputs == "graphs" else None
        pieces = []
        for i, item in enumerate(_as_list(trajs)):
            t = _as_trajectory(item)
            where = str(t.path) if t.path is not None else f"{part} trajectory {i}"
            validate_trajectory(t, where, n_neighbors=m)
            pieces.append(piece_from_trajectory(t, where, _name(t, i), self.frame_interval_ps,
                                                _INTERVAL_HINT))
        return pieces

    def _attach_graphs(self, piece: Piece) -> None:
        n_conv = self.settings.n_conv
        graphs = graphs_in_memory(piece.trajectory, piece.grid_frames(), self.n_neighbors,
                                  n_conv if self.prune else None, piece.frame_offset,
                                  piece.where)
        attach_graphs(piece, graphs, n_conv)

    # -- fitting ---------------------------------------------------------------------

    def fit(
        self,
        train: TrajectoryLike | Sequence[TrajectoryLike],
        val: TrajectoryLike | Sequence[TrajectoryLike] | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        reference: str | Path | ReferenceProbs | None = None,
    ) -> GDyNetModel:
        """Train on ``train`` (lag pairs never straddle trajectories).

        Every seed of the ``seeds`` setting (else ``seed``) is trained; the live one with
        the best validation VAMP-2 is kept (:mod:`gdyn.train.seeds`) and its states are
        ordered (:mod:`gdyn.train.align`).

        Parameters
        ----------
        train, val : Trajectory, path, or a list of them
            ``val`` None: no validation, the last epoch is kept; else the epoch with the
            best full-data validation VAMP-2.
        checkpoint_dir : path, optional
            Write ``checkpoint.pt`` there and resume from it (bit-identical on CPU).
        reference : path or ReferenceProbs, optional
            Another model's probabilities on the same validation frames (its
            ``probs_val.npz``): states are mapped onto its states. None: states by
            decreasing population.

        Returns
        -------
        GDyNetModel
        """
        graph_inputs = spec(self.kind).inputs == "graphs"
        if graph_inputs and self.n_neighbors is None:
            raise InputError(f"{self.kind}: n_neighbors: expected an integer >= 1 (M, "
                             "neighbours per atom of the graphs), got None")
        parts = {"train": self._pieces(train, "train"), "val": self._pieces(val, "val")}
        if not parts["train"]:
            raise InputError("train: expected at least one trajectory, got none")
        problem = assemble(self.kind, self.n_states, self.lag_ps, parts, self.settings,
                           self._attach_graphs if graph_inputs else None)
        return self._fit(problem, checkpoint_dir, reference=reference)

    def fit_pieces(
        self,
        part_paths: Mapping[str, Sequence[Path]],
        part_graphs: Mapping[str, Sequence[Path] | None] | None = None,
        *,
        graph: Mapping[str, Any] | None = None,
        checkpoint_dir: str | Path | None = None,
        reference: str | Path | ReferenceProbs | None = None,
        init_from: str | Path | None = None,
    ) -> GDyNetModel:
        """Train on the workflow's split pieces and graph stores (``gdyn train``).

        ``part_paths`` / ``part_graphs`` map each part (train, val, test) to its piece
        files / store directories (matched by trajectory name). ``graph`` (the system's
        ``graph`` config section) with ``store: false`` builds the graphs on the fly
        instead of reading stores. With ``checkpoint_dir`` the run resumes from (and
        keeps) ``checkpoint.pt`` there; ``reference`` as in :meth:`fit`; ``init_from``: a ``model.pt`` of the same
        architecture to start every seed from (:mod:`gdyn.train.warmstart`).
        """
        problem = prepare(self.kind, self.n_states, self.lag_ps, part_paths, part_graphs or {},
                          self.settings, graph)
        if init_from is not None:
            problem = dataclasses.replace(problem, init=read_warm_start(init_from))
        return self._fit(problem, checkpoint_dir, reference)

    def _fit(
        self, problem: Problem, checkpoint_dir: str | Path | None,
        reference: str | Path | ReferenceProbs | None = None,
    ) -> GDyNetModel:
        if reference is not None and not isinstance(reference, ReferenceProbs):
            reference = read_reference(reference)
        device = torch.device(self.device) if self.device is not None else pick_device()
        log.info("%s s%d lag %g ps (%d frames, stride %d) on %s: %d train pairs, seeds %s",
                 self.kind, self.n_states, problem.lag_ps, problem.lag_frames,
                 self.settings.frame_stride, device,
                 PairIndex(problem.parts["train"], problem.lag_frames).n_pairs,
                 self.settings.seed_list)
        outdir = None if checkpoint_dir is None else Path(checkpoint_dir)
        fitted = fit_seeds(problem, self.settings, outdir, device, self.progress, reference)
        result = fitted.result
        # Memberships: the crispest affine map of the kept model's outputs on its scored
        # frames (validation, else training; never test), in the aligned state order.
        result["memberships"] = fit_memberships(fitted.kept.probs,
                                                fitted.kept.score_part).to_dict()
        if not result["training_converged"]:
            warnings.warn(
                f"{self.kind} s{self.n_states} lag {problem.lag_ps:g} ps: training did not "
                f"converge in {result['epochs_run']} epochs (the validation VAMP-2 still rose "
                f"by >= {self.settings.min_delta:g} within the last "
                f"{self.settings.patience} epochs); its timescales and states may move "
                "with more training: raise epochs", UserWarning, stacklevel=3)
        self.problem_, self.result_, self.seeds_ = problem, result, fitted
        settings = dataclasses.replace(self.settings, seed=fitted.kept.seed)
        return GDyNetModel(result["model"], model_config(problem, settings, result),
                           metrics_frame(result["metrics"]))


class GDyNet(Estimator):
    """GDyNet (paper Eqs. 7-10) on periodic M-nearest-neighbour graphs; see :class:`Estimator`."""

    kind = "gdynet"

    def __init__(self, n_states: int, lag_ps: float | str, n_neighbors: int = 12,
                 **kwargs: Any) -> None:
        super().__init__(n_states, lag_ps, n_neighbors=n_neighbors, **kwargs)


class VAMPNet(Estimator):
    """The global VAMPnet baseline on wrapped target positions; see :class:`Estimator`."""

    kind = "vampnet"


def train(
    kind: str,
    outdir: str | Path,
    n_states: int,
    lag: str | float,
    part_paths: Mapping[str, Sequence[Path]],
    part_graphs: Mapping[str, Sequence[Path] | None] | None = None,
    settings: TrainSettings | Mapping[str, Any] | None = None,
    device: Any = None,
    progress: bool = True,
    reference: str | Path | None = None,
    graph: Mapping[str, Any] | None = None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """``gdyn train``: train one model on split pieces and write its model directory.

    Trains every seed of ``settings`` and keeps the best (:mod:`gdyn.train.seeds`; every
    seed dead fails the job unless ``settings.all_seeds_dead`` is ``"keep"``); its
    states are ordered by population, or mapped onto ``reference`` (the reference lag's
    ``probs_val.npz``; :mod:`gdyn.train.align`). ``graph``: the system's ``graph`` config
    section; with ``store: false`` the graphs are built on the fly (no ``part_graphs``).
    ``init_from``: start from that ``model.pt`` (the reference lag's; a warm start).
    Resumes from ``outdir/checkpoint.pt`` and ``outdir/seed{n}.pt`` (removed on success).
    Writes ``model.pt``, ``config.json``, ``metrics.csv``, ``alignment.json`` and
    ``probs_{train,val,test}.npz`` (docs/contracts.md). Process-wide settings (threads,
    deterministic kernels) are the caller's.

    Returns
    -------
    dict
        The kept seed's :func:`gdyn.train.loop.fit` result (``model``, ``best_epoch``,
        ``resumed``, ``device``) with ``metrics`` of every seed, ``best_val_vamp2``,
        ``test_vamp2``, ``seed``, ``seeds`` (one record per seed), ``dead_seeds``,
        ``seed_spread``, ``alignment``, plus ``gdynet_model``, the :class:`GDyNetModel`.
    """
    # The workflow fails on a model whose every seed is dead unless told to keep it (the
    # schema's default; the API's estimators keep it).
    settings = as_train_settings(settings)
    est = Estimator(n_states, lag, kind=kind, device=device, progress=progress,
                    settings=settings)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    model = est.fit_pieces(part_paths, part_graphs, graph=graph, checkpoint_dir=outdir,
                           reference=reference,
                           init_from=init_from)
    # Parts the kept seed's scoring predicted with the final weights are not predicted again.
    write_outputs(outdir, model, est.problem_, est.seeds_.predictions)
    (outdir / CHECKPOINT).unlink(missing_ok=True)
    for seed in est.settings.seed_list:
        (outdir / f"seed{seed}.pt").unlink(missing_ok=True)
    return {**est.result_, "gdynet_model": model}
