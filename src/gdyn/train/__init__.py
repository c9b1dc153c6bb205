"""Training GDyNets and VAMPnets: the estimator API and the ``gdyn train`` stage.

``GDyNet`` / ``VAMPNet`` estimators fit a :class:`GDyNetModel` (:mod:`.estimators`);
:func:`train` is the workflow's entry (split pieces + graph stores -> model directory).
Modules: :mod:`.settings` (:class:`TrainSettings`: the ``train`` section, checked), :mod:`.data` (pieces, graphs),
:mod:`.batches` (lag pairs, epoch shuffle, batches), :mod:`.onthefly` (graphs built inside
training, ``graph.store: false``), :mod:`.loop` (fit, checkpoints, prediction),
:mod:`.seeds` (every seed of a model, dead seeds, the kept one), :mod:`.align` (state order
and alignment to a reference model), :mod:`.outputs` (the model directory),
:mod:`.estimators`. Importing this package imports torch. The package exports the API's
estimators and what ``gdyn train`` uses; the rest is imported from its module
(``from gdyn.train.settings import WORKFLOW_KEYS``).
"""

from gdyn.train.estimators import GDyNet, GDyNetModel, VAMPNet, train
from gdyn.train.loop import pick_device
from gdyn.train.settings import TrainSettings

__all__ = ["GDyNet", "GDyNetModel", "TrainSettings", "VAMPNet", "pick_device", "train"]
