"""Time to draw each picture panel of Figs. 2-4, OVITO beside the matplotlib fallback.

Panels (gdyn.plots.panels_atoms scenes, rendered at the size the figures use):

* fig2a: the toy's FCC cell with its sites (from the toy's 5-atom frame);
* fig3a / fig3b: a Si-Au-like slab (diamond Si under a liquid Au-Si layer,
  tests/_synthetic_systems.py), at toy size and tiled 3 x 3 in x, y (paper-like size);
* fig4a: a PEO/LiTFSI-like cell (C/H/O/Li/N/S/F, ball and stick), at toy size and tiled
  2 x 2 x 2 (about the paper's 520 atoms);
* fig4b: one representative shell (Li + atoms within 4.5 A).

Each (panel, backend) is rendered ``--repeat`` times in one process, alternating the
backends; the table gives the median CPU time (``time.process_time``, all threads of this
process, OVITO's render threads included) and wall time, and whether every repeat gave the
same bytes. The first OVITO call of the process (Qt and Vulkan start-up) is timed apart.

Command: ``python benchmarks/bench_render.py [--repeat 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import _synthetic_systems as synth  # noqa: E402
from ase import Atoms  # noqa: E402

from gdyn.plots import panels_atoms as P  # noqa: E402
from gdyn.plots import render as R  # noqa: E402


def _atoms(raw: dict, probs: np.ndarray | None = None, tile: tuple[int, int, int] = (1, 1, 1)) -> Atoms:
    """Frame 0 of a synthetic trajectory as ase.Atoms (optionally tiled), with states."""
    atoms = Atoms(numbers=raw["atom_types"], positions=raw["traj_coords"][0],
                  cell=raw["lattices"][0], pbc=True)
    n = len(atoms)
    state = np.full(n, -1)
    p = np.full((n, 4), np.nan)
    if probs is not None:
        state[raw["target_index"]] = probs.argmax(axis=1)
        p[raw["target_index"]] = probs
    atoms.new_array("state", state)
    for i in range(4):
        atoms.new_array(f"state_prob_{i}", p[:, i])
    return atoms.repeat(tile) if tile != (1, 1, 1) else atoms


def scenes() -> dict[str, R.Scene]:
    a = 6.5
    toy = Atoms(numbers=[3, 16, 16, 16, 16],
                positions=np.array([[0.3, 0.3, 0.3], [0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5],
                                    [0.5, 0.5, 0]]) * a, cell=np.eye(3) * a, pbc=True)
    toy.new_array("state", np.array([0, -1, -1, -1, -1]))
    si = synth.siau_frames(n_frames=2)
    si_probs = synth.crisp_probs(si["region"], 4, 0.9)
    peo = synth.peo_frames(n_frames=2)
    out = {"fig2a toy cell": P.fcc_cell_scene(toy)[0]}
    for label, tile in (("toy size", (1, 1, 1)), ("tiled", (3, 3, 1))):
        atoms = _atoms(si, si_probs, tile)
        out[f"fig3a Si-Au {label} ({len(atoms)} atoms)"] = P.element_scene(
            atoms, (0.35, 1.0, -0.2), radius_scale=0.8)
        out[f"fig3b Si-Au {label} ({len(atoms)} atoms)"] = P.cross_section_scene(atoms)
    for label, tile in (("toy size", (1, 1, 1)), ("tiled", (2, 2, 2))):
        atoms = _atoms(peo, tile=tile)
        out[f"fig4a PEO {label} ({len(atoms)} atoms)"] = P.element_scene(
            atoms, radius_scale=0.4, bonds=True, ion_radius_A=0.9)
    atoms = _atoms(peo)
    li = int(peo["target_index"][0])
    d = atoms.get_distances(li, range(len(atoms)), mic=True)
    atoms.new_array("shell", (d <= 4.5).astype(int))
    target = np.zeros(len(atoms), int)
    target[li] = 1
    atoms.new_array("target", target)
    atoms.info.update(state=0, probability=1.0)
    out[f"fig4b shell ({int((d <= 4.5).sum())} atoms)"] = P.shell_scene(atoms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    backends = ["matplotlib"]
    t0, w0 = time.process_time(), time.perf_counter()
    try:
        R.resolve_backend("ovito")
        backends.insert(0, "ovito")
    except R.RendererUnavailable as exc:
        print(f"OVITO not measured: {exc}")
    print(f"first OVITO call (probe, Qt + Vulkan start-up): cpu {time.process_time() - t0:.2f} s,"
          f" wall {time.perf_counter() - w0:.2f} s")
    rows = []
    for name, scene in scenes().items():
        size = R.fit_size(scene, 900 if "fig4b" not in name else 600)
        times: dict[str, list[tuple[float, float]]] = {b: [] for b in backends}
        images: dict[str, set[bytes]] = {b: set() for b in backends}
        for _ in range(args.repeat):
            for b in backends:
                t, w = time.process_time(), time.perf_counter()
                img = R.render(scene, size, b).image
                times[b].append((time.process_time() - t, time.perf_counter() - w))
                images[b].add(img.tobytes())
        for b in backends:
            cpu = statistics.median(x[0] for x in times[b])
            wall = statistics.median(x[1] for x in times[b])
            rows.append({"panel": name, "backend": b, "size": f"{size[0]}x{size[1]}",
                         "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                         "deterministic": len(images[b]) == 1})
    print("| panel | backend | pixels | CPU s | wall s | same bytes every repeat |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['panel']} | {r['backend']} | {r['size']} | {r['cpu_s']:.2f} | "
              f"{r['wall_s']:.2f} | {'yes' if r['deterministic'] else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
