"""A direct caller of vesin's C API (a shim around a memory leak in its Python wrapper).

Why it exists. vesin 0.6's ``NeighborList.compute`` turns each result buffer into numpy
with ``np.ctypeslib.as_array(ctypes.cast(ptr, POINTER(c_double)), shape=(n_pairs,))``,
which builds the ctypes array types ``c_double * n_pairs`` and ``(c_size_t * 2) *
n_pairs`` plus a pointer type to each; ctypes caches array and pointer types for the life
of the process. Along an MD trajectory the pair count changes from frame to frame, so
memory grows without bound: about 11 KiB per new pair count, ~10 KiB per frame (vesin
0.6.2, numpy 2.4.6, Python 3.11, 10,000 calls with 5,835 distinct pair counts: +61.6 MiB
through ``compute``, +4.9 MiB and flat through this shim). Making the types also costs
30-60 us per call (~6 us of wrapper overhead when they are cached).

:class:`VesinHalfList` fills the same C structures and calls ``vesin_neighbors`` itself,
then exposes the result buffers to numpy through the array interface
(:class:`_ArrayView`), which creates no types. It uses vesin's private modules
``vesin._c_api`` and ``vesin._c_lib``, so a vesin release may break it (pyproject pins
``vesin>=0.6``; ``tests/test_graph.py`` runs every search through both this shim and the
public wrapper, ``tests/test_graph_vesin.py`` compares their raw output).

Removal condition. Delete this module and call ``vesin.NeighborList(cutoff=...,
full_list=False, n_threads=1).compute(coords, lattice, True, "ijd", copy=False)`` in
``gdyn.graph.search`` once vesin's public ``compute`` no longer creates ctypes types per
call. The check is ``tests/test_graph_vesin.py::test_vesin_wrapper_still_creates_types``:
it calls ``compute`` with 64 distinct pair counts and counts the live ctypes array and
pointer types; it fails, saying so, the day a vesin release fixes the leak. The upstream
report is ``docs/upstream-vesin-ctypes-leak.md``.
"""

from __future__ import annotations

import ctypes

import numpy as np


class _ArrayView:
    """Exposes foreign memory to numpy through the array interface (no ctypes types)."""

    def __init__(self, address: int, shape: tuple[int, ...], typestr: str) -> None:
        self.__array_interface__ = {
            "data": (address, True),
            "shape": shape,
            "typestr": typestr,
            "version": 3,
        }


class VesinHalfList:
    """vesin's CPU cell list called through its C API: half list, one thread, no copies.

    ``calc(coords, lattice, cutoff)`` returns (i, j, d), uint64 ids and float64
    distances of every pair closer than ``cutoff`` over all periodic images, each
    unordered pair once (i == j for an atom's own images), as read-only views into
    vesin's buffers, valid until the next call or until the object is freed. Not
    thread-safe: one instance per thread.
    """

    def __init__(self) -> None:
        from vesin._c_api import VesinCPU, VesinDevice, VesinNeighborList, VesinOptions
        from vesin._c_lib import get_library

        self._ctypes = ctypes  # for __del__, which may run when module globals are gone
        self._lib = get_library()
        self._neighbors = VesinNeighborList()
        self._device = VesinDevice(VesinCPU, 0)
        self._options = VesinOptions()
        self._options.full = False
        self._options.sorted = False
        self._options.algorithm = 0  # auto: the cell list on CPU
        self._options.skin = 0.0
        self._options.n_threads = 1
        self._options.return_shifts = False
        self._options.return_distances = True
        self._options.return_vectors = False
        self._periodic = np.ones(3, dtype=np.bool_)
        self._double_p = ctypes.POINTER(ctypes.c_double)

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is not None:
            lib.vesin_free(self._ctypes.byref(self._neighbors))

    def __call__(
        self, coords: np.ndarray, lattice: np.ndarray, cutoff: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ct = self._ctypes
        xyz = np.ascontiguousarray(coords, dtype=np.float64)
        box = np.ascontiguousarray(lattice, dtype=np.float64)
        self._options.cutoff = float(cutoff)
        error = ct.c_char_p()
        status = self._lib.vesin_neighbors(
            xyz.ctypes.data_as(self._double_p),
            xyz.shape[0],
            box.ctypes.data_as(self._double_p),
            self._periodic.ctypes.data_as(ct.POINTER(ct.c_bool)),
            self._device,
            self._options,
            ct.byref(self._neighbors),
            ct.byref(error),
        )
        if status != 0:
            raise RuntimeError(f"vesin: {(error.value or b'').decode()}")
        n = int(self._neighbors.length)
        if n == 0:
            return np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.float64)
        pairs_at = ct.cast(self._neighbors.pairs, ct.c_void_p).value
        dist_at = ct.cast(self._neighbors.distances, ct.c_void_p).value
        size_t = f"<u{ct.sizeof(ct.c_size_t)}"
        pairs = np.asarray(_ArrayView(pairs_at, (n, 2), size_t))
        distances = np.asarray(_ArrayView(dist_at, (n,), "<f8"))
        return pairs[:, 0], pairs[:, 1], distances
