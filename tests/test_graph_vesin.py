"""gdyn.graph._vesin: the C-API shim against vesin's public wrapper, and the shim's
removal condition (see that module's docstring and docs/upstream-vesin-ctypes-leak.md)."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys
from pathlib import Path

import numpy as np

from gdyn.graph._vesin import VesinHalfList

N_CALLS = 64


def ctypes_types() -> int:
    """Live ctypes array and pointer types (ctypes caches them for the process lifetime)."""
    return sum(
        1
        for o in gc.get_objects()
        # type(o), not isinstance: no __class__ lookups on arbitrary (proxy) objects.
        if issubclass(type(o), type) and issubclass(o, (ctypes.Array, ctypes._Pointer))
    )


def frames_with_distinct_pair_counts(n_calls: int = N_CALLS):
    """(coords, lattice, cutoff) of ``n_calls`` searches whose pair counts all differ."""
    rng = np.random.default_rng(3)
    lat = np.array([[9.0, 0.0, 0.0], [1.0, 8.5, 0.0], [-0.7, 0.4, 9.2]])
    x = rng.random((60, 3)) @ lat
    return [(x, lat, c) for c in np.linspace(2.0, 6.0, n_calls)]


# Run in a fresh interpreter: ctypes' type cache is process-wide, so calls made earlier in
# this process (the graph tests' wrapper path) would hide new types.
_WRAPPER_CHILD = """
import ctypes, gc, sys
sys.modules["torch"] = sys.modules["cupy"] = None  # numpy arrays only; faster import
import numpy as np, vesin
sys.path.insert(0, sys.argv[1])
from test_graph_vesin import ctypes_types, frames_with_distinct_pair_counts
nl = vesin.NeighborList(cutoff=1.0, full_list=False, n_threads=1)
searches = frames_with_distinct_pair_counts()
nl.compute(searches[0][0], searches[0][1], True, "ijd", copy=False)
before, counts = ctypes_types(), set()
for x, lat, cutoff in searches:
    nl.cutoff = float(cutoff)
    counts.add(len(nl.compute(x, lat, True, "ijd", copy=False)[2]))
print(ctypes_types() - before, len(counts), vesin.__version__)
"""


def test_shim_returns_what_the_wrapper_returns():
    import vesin

    shim = VesinHalfList()
    nl = vesin.NeighborList(cutoff=1.0, full_list=False, n_threads=1)
    for x, lat, cutoff in frames_with_distinct_pair_counts(8):
        nl.cutoff = float(cutoff)
        ref = [a.copy() for a in nl.compute(x, lat, True, "ijd", copy=False)]
        got = shim(x, lat, cutoff)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a, b)
    assert [a.size for a in shim(x[:1], lat, 0.5)] == [0, 0, 0]  # no pairs at all


def test_shim_creates_no_ctypes_types():
    shim = VesinHalfList()
    searches = frames_with_distinct_pair_counts()
    shim(*searches[0])
    before = ctypes_types()
    counts = {len(shim(x, lat, cutoff)[2]) for x, lat, cutoff in searches}
    assert len(counts) == N_CALLS
    assert ctypes_types() == before


def test_vesin_wrapper_still_creates_types():
    """The removal condition of gdyn/graph/_vesin.py: vesin's public compute() creates
    ctypes types for every new pair count (memory grows along a trajectory). When this
    fails, vesin has fixed it: drop the shim and call vesin.NeighborList.compute."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER_CHILD, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    grown, distinct, version = proc.stdout.split()
    assert int(distinct) == N_CALLS
    assert int(grown) >= N_CALLS, (
        f"vesin {version}: NeighborList.compute no longer creates ctypes types per pair "
        f"count ({grown} new types over {distinct} counts). The C-API shim "
        "gdyn/graph/_vesin.py can go: see its docstring."
    )
