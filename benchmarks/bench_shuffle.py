"""The per-epoch pair shuffle: a seeded permutation array against the former Feistel bijection.

``gdyn.train.data.epoch_permutation`` (``np.random.default_rng(seed).permutation(n)``)
replaced a hand-built 4-round Feistel bijection evaluated index by index (issue 18). This
measures, side by side in one process, for n lag pairs: the CPU time to shuffle one epoch
(the permutation array once; the Feistel network over every position, batch by batch as
``fit`` evaluated it) and the peak memory the shuffle allocates (``tracemalloc``, which
numpy reports its buffers to). The Feistel class is a verbatim copy of the removed one,
kept here only as the baseline.

    python benchmarks/bench_shuffle.py --pairs 1e5 1e6 1e7 [--batch 256]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from gdyn.train.batches import epoch_permutation, epoch_seed


class FeistelPermutation:
    """The removed ``gdyn.train.data.PairPermutation`` (baseline only)."""

    _C1 = np.uint64(0x9E3779B97F4A7C15)
    _C2 = np.uint64(0xBF58476D1CE4E5B9)

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        bits = max(2, (max(self.n, 1) - 1).bit_length())
        bits += bits % 2
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        self.keys = np.random.default_rng(seed).integers(0, 2**63, size=4, dtype=np.uint64)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            h = (right ^ key) * self._C1
            h ^= h >> np.uint64(31)
            h *= self._C2
            h ^= h >> np.uint64(29)
            left, right = right, left ^ (h & self.mask)
        return (left << self.half) | right

    def __call__(self, i: np.ndarray) -> np.ndarray:
        x = self._encrypt(np.asarray(i, dtype=np.uint64))
        bad = x >= self.n
        while bad.any():
            x[bad] = self._encrypt(x[bad])
            bad = x >= self.n
        return x.astype(np.int64)


def _measure(fn) -> tuple[float, float]:
    tracemalloc.start()
    t0 = time.process_time()
    fn()
    cpu = time.process_time() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cpu, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", type=float, default=[1e5, 1e6, 1e7])
    ap.add_argument("--batch", type=int, default=256, help="pairs per batch (the toy's)")
    args = ap.parse_args()
    print("| pairs | permutation array: CPU s | peak MiB | Feistel per batch: CPU s | peak MiB |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in args.pairs):
        seed = epoch_seed(0, 0)

        def array(n: int = n) -> None:
            perm = epoch_permutation(n, 0, 0)
            for lo in range(0, n, args.batch):
                perm[lo : lo + args.batch]

        def feistel(n: int = n, seed: int = seed) -> None:
            perm = FeistelPermutation(n, seed)
            for lo in range(0, n, args.batch):
                perm(np.arange(lo, min(lo + args.batch, n)))

        a_cpu, a_mem = _measure(array)
        f_cpu, f_mem = _measure(feistel)
        print(f"| {n:,} | {a_cpu:.3f} | {a_mem:.1f} | {f_cpu:.3f} | {f_mem:.2f} |")


if __name__ == "__main__":
    main()
