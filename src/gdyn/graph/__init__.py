"""Periodic M-nearest-neighbour graphs of every frame (stage ``gdyn graphs``).

Every atom is joined to its M nearest neighbours under periodic boundary conditions
(orthogonal or triclinic cells). Periodic images are distinct neighbours, so in a cell
smaller than the neighbour shell an atom may list the same atom, or its own images, several
times; the atom itself at zero shift is never listed.

Ordering is fully deterministic and defined on the stored values: each row is M of all
(distance, neighbour id) over every image, sorted by float32 distance, then by neighbour
id. Two images of the same neighbour at the same float32 distance give identical entries,
so no further tie-break can change the order. Which candidates are kept only needs a rule
when the cut falls inside a group of exactly tied (same float32 distance) candidates, as
in the toy, where each S has 12 S images at exactly a/sqrt(2) and a nearby Li pushes one
out. Without a seed the smallest ids are kept; but then *which* S is dropped depends on
atom ids, so symmetry-equivalent sites get different graphs that a deep model can tell
apart. ``gdyn graphs`` therefore seeds the choice with the raw frame index: the kept tied
candidates are drawn by a hash of (frame, row atom, neighbour, occurrence), reproducible
yet uniform over frames.

Modules: :mod:`~gdyn.graph.cell` (lattice checks and geometry, image brute force,
:func:`pairs_within`), :mod:`~gdyn.graph.select` (M best per row, seeded ties),
:mod:`~gdyn.graph.search` (:class:`NeighbourSearch`, :func:`nearest_neighbours`),
:mod:`~gdyn.graph.kernel` (the compiled cell-list search), :mod:`~gdyn.graph.store` (the
graph store: build only the frames that are read, prune, encode compactly, open). Tuning constants (``SMALL_WORK``, ``CHUNK_BYTES``, ...) are
read from the submodule that defines them; change them there, not here. The package
exports what :mod:`gdyn.train`, :mod:`gdyn.analysis` and the CLI use; tests and
benchmarks import from the defining module (``from gdyn.graph.search import
nearest_neighbours``).
"""

from __future__ import annotations

from gdyn.graph.cell import check_lattice, image_shifts, pairs_within
from gdyn.graph.search import NeighbourSearch
from gdyn.graph.store import (
    DamagedStore,
    build_store,
    decode_distance,
    discard_store,
    encode_distance,
    frame_grid,
    open_store,
    receptive_field,
)

__all__ = [
    "DamagedStore",
    "NeighbourSearch",
    "build_store",
    "check_lattice",
    "decode_distance",
    "discard_store",
    "encode_distance",
    "frame_grid",
    "image_shifts",
    "open_store",
    "pairs_within",
    "receptive_field",
]
