"""Fixtures and helpers shared by several test files.

Test files import the helpers with ``from conftest import ...`` (pytest puts ``tests/`` on
``sys.path``, as for ``_synthetic_systems.py``); fixtures need no import.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import gdyn.graph.kernel as graph_kernel
import gdyn.graph.search as graph_search

# A 3-state chain with timescales of tens of steps, the Koopman tests' ground truth.
T3 = np.array([[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.01, 0.04, 0.95]])


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread in the test process, as `gdyn train --threads 1` (the library leaves
    threads alone). Session-wide, so that module fixtures that train run with it too: bitwise
    comparisons with the CLI need the same thread count, and on a 2-core machine more intra-op
    threads (times pytest-xdist workers) only oversubscribe the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def crash_after() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """``with crash_after(n): ...``: training inside stops with ``Interrupted`` after its n-th
    optimiser step, counted over every seed, as a killed job would (before that step's
    checkpoint); it replaces gdyn.train.loop's per-step hook for the block only."""
    import gdyn.train.loop as loop

    @contextlib.contextmanager
    def armed(n: int) -> Iterator[None]:
        steps = 0

        def hook() -> None:
            nonlocal steps
            steps += 1
            if steps >= n:
                raise loop.Interrupted(f"stopped after {steps} steps (test)")

        before = loop._after_step
        loop._after_step = hook
        try:
            yield
        finally:
            loop._after_step = before

    return armed


def simulate(t_matrix: np.ndarray, n_traj: int, n_steps: int, seed: int,
             start: int | None = None) -> np.ndarray:
    """(n_traj, n_steps) states of independent chains with transition matrix ``t_matrix``.

    The chains start in uniformly random states, or all in state ``start``.
    """
    rng = np.random.default_rng(seed)
    cum = np.cumsum(t_matrix, axis=1)
    cum[:, -1] = 1.0
    if start is None:
        s = rng.integers(0, t_matrix.shape[0], n_traj)
    else:
        s = np.full(n_traj, start, dtype=np.int64)
    out = np.empty((n_traj, n_steps), dtype=np.int64)
    u = rng.random((n_steps, n_traj))
    for t in range(n_steps):
        out[:, t] = s
        s = (u[t][:, None] > cum[s]).sum(axis=1)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def soft(states: np.ndarray, n: int, noise: float, seed: int, scale: float = 3.0) -> np.ndarray:
    """Noisy softmax "network output" of the hidden states (states.shape + (n,))."""
    rng = np.random.default_rng(seed)
    return softmax(scale * np.eye(n)[states] + noise * rng.standard_normal((*states.shape, n)))


def true_timescales(t_matrix: np.ndarray, lag: float = 1.0) -> np.ndarray:
    """Implied timescales -lag / ln|lambda_i| of ``t_matrix``, slowest first."""
    lam = np.sort(np.abs(np.linalg.eigvals(t_matrix)))[::-1][1:]
    return -lag / np.log(lam)


def stationary(t_matrix: np.ndarray) -> np.ndarray:
    """Stationary distribution of a transition matrix."""
    w, v = np.linalg.eig(t_matrix.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    return pi / pi.sum()


@pytest.fixture(params=["cells", "images", "tight"])
def search_path(request, monkeypatch):
    """Run a graph test through the compiled cell-list kernel (with its sorting network; or
    "tight": tiny candidate lists and no network, so that the list regrowth and the
    insertion sort run) and through the batched image brute force."""
    monkeypatch.setattr(graph_search, "SMALL_WORK", 10**12 if request.param == "images" else 0)
    if request.param == "tight":
        monkeypatch.setattr(graph_search, "CAPACITY_FACTOR", 0)
        monkeypatch.setattr(graph_kernel, "network_size", lambda n_keep, width, typical=None: 1)
    return request.param


# Validators of written figures (PDF, PNG).



def pdf_pages(path: Path) -> int:
    """Parse enough of a PDF to trust it: header, trailer, xref table, page tree count."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF-1."), f"{path}: no PDF header"
    tail = data[-1024:]
    assert b"%%EOF" in tail, f"{path}: no %%EOF trailer"
    m = re.search(rb"startxref\s+(\d+)\s+%%EOF", tail)
    assert m, f"{path}: no startxref"
    offset = int(m.group(1))
    assert 0 < offset < len(data) and data[offset : offset + 4] == b"xref", (
        f"{path}: bad xref offset"
    )
    # Every object the xref table lists must start where the table says it does.
    head = data[offset:].split(b"trailer")[0].split(b"\n")
    first, count = map(int, head[1].split())
    n_checked = 0
    for k, line in enumerate(head[2 : 2 + count]):
        fields = line.split()
        if len(fields) == 3 and fields[2] == b"n":
            pos = int(fields[0])
            assert re.match(rb"%d 0 obj" % (first + k), data[pos : pos + 20]), f"{path}: xref {k}"
            n_checked += 1
    assert n_checked > 3, f"{path}: too few objects"
    pages = [int(c) for c in re.findall(rb"/Type /Pages[^>]*?/Count (\d+)", data)]
    pages += [int(c) for c in re.findall(rb"/Count (\d+)[^>]*?/Type /Pages", data)]
    assert pages and pages[0] >= 1, f"{path}: no page tree"
    # At least one content stream that decompresses to drawing operators.
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, flags=re.S)
    drawn = 0
    for s in streams:
        try:
            body = zlib.decompress(s)
        except zlib.error:
            continue
        drawn += body.count(b" l") + body.count(b" re") + body.count(b"Tj")
    assert drawn > 10, f"{path}: content streams draw almost nothing"
    return pages[0]


def pdf_subject(path: Path) -> str:
    """The /Subject of the PDF's info dictionary (a literal string, escapes undone)."""
    data = path.read_bytes()
    start = data.index(b"/Subject (") + len(b"/Subject (")
    out, depth, k = bytearray(), 0, start
    while True:
        c = data[k : k + 1]
        if c == b"\\":
            out += data[k + 1 : k + 2]
            k += 2
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            if depth == 0:
                break
            depth -= 1
        out += c
        k += 1
    return out.decode("latin-1")


def check_png(path: Path, min_side: int = 300) -> tuple[int, int]:
    """A valid PNG of sane size that is not a blank canvas."""
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: no PNG signature"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        grey = np.asarray(im.convert("L"), dtype=float)
    assert min_side <= w <= 12000 and min_side <= h <= 12000, f"{path}: size {w}x{h}"
    assert grey.std() > 5.0, f"{path}: blank image"
    assert (grey < 128).mean() > 0.002, f"{path}: almost no dark (drawn) pixels"
    return w, h
