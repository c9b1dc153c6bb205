"""Training GDyNets and VAMPnets: the estimator API and the ``gdyn train`` stage.

``GDyNet`` / ``VAMPNet`` estimators fit a :class:`GDyNetModel` (:mod:`.estimators`);
:func:`train` is the workflow's entry (split pieces + graph stores -> model directory).
Modules: :mod:`.settings` (defaults and checks), :mod:`.data` (pieces, graphs),
:mod:`.batches` (lag pairs, epoch shuffle, batches), :mod:`.onthefly` (graphs built inside
training, ``graph.store: false``), :mod:`.loop` (fit, checkpoints, prediction),
:mod:`.seeds` (every seed of a model, dead seeds, the kept one), :mod:`.align` (state order
and alignment to a reference model), :mod:`.outputs` (the model directory),
:mod:`.estimators`. Importing this package imports torch.
"""

from gdyn.models import MODEL_KINDS
from gdyn.models import build as build_model
from gdyn.train.align import ReferenceProbs, read_reference
from gdyn.train.data import (
    Graphs,
    PairIndex,
    Piece,
    epoch_batches,
    epoch_permutation,
    epoch_seed,
    fractional_targets,
    graph_batch,
    graphs_in_memory,
    load_part,
    load_piece,
    max_distance,
    vampnet_batch,
)
from gdyn.train.estimators import Estimator, GDyNet, GDyNetModel, VAMPNet, train
from gdyn.train.loop import (
    CHECKPOINT,
    Interrupted,
    Problem,
    assemble,
    fingerprint,
    fit,
    pick_device,
    predict_part,
    prepare,
    score_probs,
)
from gdyn.train.outputs import load_model, model_config, read_model_dir, write_outputs
from gdyn.train.seeds import AllSeedsDead, SeedsFit, dead_reason, fit_seeds
from gdyn.train.settings import DEFAULTS, WORKFLOW_KEYS, resolve_settings, seed_list

__all__ = [
    "CHECKPOINT",
    "DEFAULTS",
    "MODEL_KINDS",
    "WORKFLOW_KEYS",
    "AllSeedsDead",
    "Estimator",
    "GDyNet",
    "GDyNetModel",
    "Graphs",
    "Interrupted",
    "PairIndex",
    "Piece",
    "Problem",
    "ReferenceProbs",
    "SeedsFit",
    "VAMPNet",
    "assemble",
    "build_model",
    "dead_reason",
    "epoch_batches",
    "epoch_permutation",
    "epoch_seed",
    "fingerprint",
    "fit",
    "fit_seeds",
    "fractional_targets",
    "graph_batch",
    "graphs_in_memory",
    "load_model",
    "load_part",
    "load_piece",
    "max_distance",
    "model_config",
    "pick_device",
    "predict_part",
    "prepare",
    "read_model_dir",
    "read_reference",
    "resolve_settings",
    "score_probs",
    "seed_list",
    "train",
    "vampnet_batch",
    "write_outputs",
]
