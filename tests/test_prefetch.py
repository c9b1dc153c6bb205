"""Batches in flight are bounded: a slow consumer never makes the producer pile them up.

:func:`gdyn.train.loop.ahead` assembles the next batch in a worker thread while the caller
uses the current one (training steps and prediction chunks). Whatever the speeds, at most
``depth`` items are made ahead of the one the caller holds; prediction keeps at most two
batches alive (the one in the model and the next) and no per-chunk tensors (issue 24:
training jobs grew by gigabytes while predicting).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import numpy as np
import pytest
import torch

from gdyn.train import loop as gl


@pytest.mark.parametrize("depth", [1, 3])
def test_ahead_makes_at_most_depth_items_ahead_of_a_slow_consumer(depth: int) -> None:
    made: list[int] = []
    lock = threading.Lock()

    def make(i: int) -> int:
        with lock:
            made.append(i)
        return i

    ahead_counts = []
    got = []
    for i, value in gl.ahead(make, range(12), depth=depth):
        time.sleep(0.02)  # a slow step: the worker has all the time it wants
        with lock:
            ahead_counts.append(len(made) - (i + 1))  # made beyond the item in use
        got.append(value)
    assert got == list(range(12))
    # The worker is idle long before each step ends, so it reaches the bound every time
    # (except at the end of the range), and never passes it.
    assert max(ahead_counts) == depth
    assert ahead_counts[0] == depth


def test_ahead_stops_making_when_the_consumer_stops() -> None:
    made: list[int] = []

    def make(i: int) -> int:
        made.append(i)
        return i

    gen = gl.ahead(make, range(100), depth=2)
    assert next(gen) == (0, 0)
    time.sleep(0.05)
    gen.close()  # the worker thread is joined; queued items are cancelled
    assert len(made) <= 3  # item 0 and at most the two ahead of it


class _Batch:
    """A stand-in model input: the frames it holds."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def to(self, device: Any) -> _Batch:
        return self


class _SlowModel(torch.nn.Module):
    """Two target sets per frame, three states; probabilities a fixed function of the frame."""

    def __init__(self, live: weakref.WeakSet, seen: list[int]) -> None:
        super().__init__()
        self.live, self.seen = live, seen

    def forward(self, batch: _Batch) -> torch.Tensor:
        time.sleep(0.01)
        self.seen.append(len(self.live))
        f = torch.as_tensor(batch.frames, dtype=torch.float32)
        logits = torch.stack([f, -f, f / 2, 2 * f, f * 0, -f / 3], dim=1).reshape(-1, 3)
        return torch.softmax(logits / 50.0, dim=-1)


def test_prediction_holds_at_most_two_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    live: weakref.WeakSet = weakref.WeakSet()
    seen: list[int] = []

    def make_batch(inputs: str, pieces: Any, piece_ids: np.ndarray, frames: np.ndarray) -> _Batch:
        batch = _Batch(np.asarray(frames))
        live.add(batch)
        return batch

    monkeypatch.setattr(gl, "make_batch", make_batch)
    # Four frames per chunk.
    monkeypatch.setattr(gl, "frame_size", lambda inputs, piece: gl.PREDICT_EDGES // 4)
    model = _SlowModel(live, seen)
    frames = np.arange(5, 95, 3)
    with gl.evaluating(model):
        blocks = gl.predict_frames(model, "graphs", 3, [None], 0, frames, "cpu")
    assert len(seen) == -(-len(frames) // 4)
    # The chunk in the model and the one made ahead: never more alive, however slow the
    # model (a third appears only if batches piled up or were kept).
    assert max(seen) <= 2
    assert len(blocks) == 1 and blocks[0].shape == (len(frames), 2, 3)
    # The same probabilities as the model on each frame alone, in frame order.
    for k, f in enumerate(frames):
        want = model(_Batch(np.array([f]))).numpy().reshape(2, 3)
        np.testing.assert_allclose(blocks[0][k], want, rtol=1e-6)
    assert blocks[0].flags.owndata  # one array, not views of per-chunk tensors
