"""Simulate a small NaCl solution with OpenMM for the liquid benchmark (issue 21).

    python benchmarks/liquid/simulate_nacl.py --out-dir data/nacl [--n-pairs 4]
        [--n-waters 200] [--duration-ps 1000] [--frame-ps 0.5] [--threads 1]

Writes ``nacl.pdb`` (topology: elements and residue names) and ``nacl.xtc`` (the
production frames, every ``--frame-ps``), the user's own-trajectory path of the README:

    gdyn import data/nacl/nacl.xtc data/nacl/nacl.npz --topology data/nacl/nacl.pdb \\
        --targets element:Na --frame-interval-ps 0.5

The system: ``--n-pairs`` Na+ / Cl- (Joung-Cheatham parameters for TIP3P, OpenMM's bundled
``amber14/tip3p.xml``) in ``--n-waters`` rigid TIP3P waters, PME (0.8 nm real-space
cutoff), 2 fs steps with bonds to hydrogen constrained (rigid water), Langevin middle
integrator at 300 K (friction 1/ps). 50 ps NPT at 1 bar (Monte Carlo barostat) set the box,
then NVT production at that box: the trajectory's cell is one matrix, as the tool's graphs
like. The slow process: contact ion pairs (CIP, Na-Cl under ~3.5 A) forming and
breaking through solvent-separated pairs; ``benchmarks/liquid/label_msm.py`` labels it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np


def build(n_pairs: int, n_waters: int, seed: int):
    """Topology and positions: ions on a jittered grid, then waters to ``n_waters``."""
    import openmm.app as app
    import openmm.unit as u

    ff = app.ForceField("amber14/tip3p.xml")
    top = app.Topology()
    chain = top.addChain()
    rng = np.random.default_rng(seed)
    # addSolvent keeps ~1 water per 42 A^3 of a box (it leaves gaps at the faces): a box
    # that holds a few more than asked, the surplus deleted, the density set by NPT.
    edge_nm = ((n_waters * 46.0 + n_pairs * 2 * 20.0) ** (1 / 3)) / 10
    k = int(np.ceil((2 * n_pairs) ** (1 / 3)))
    grid = [(i, j, m) for i in range(k) for j in range(k) for m in range(k)]
    order = rng.permutation(len(grid))[: 2 * n_pairs]
    pos = []
    for n in range(2 * n_pairs):
        name, el = ("NA", "Na") if n % 2 == 0 else ("CL", "Cl")
        res = top.addResidue(name, chain)
        top.addAtom(name, app.Element.getBySymbol(el), res)
        # Ions start >= edge/k apart (dissociated); they pair up in equilibration.
        pos.append((np.array(grid[order[n]]) + 0.5 + rng.uniform(-0.1, 0.1, 3)) * edge_nm / k)
    modeller = app.Modeller(top, u.Quantity(np.array(pos), u.nanometer))
    box = u.Quantity(np.eye(3) * edge_nm, u.nanometer)
    modeller.topology.setPeriodicBoxVectors(box)
    modeller.addSolvent(ff, model="tip3p", boxVectors=box, neutralize=False)
    waters = [r for r in modeller.topology.residues() if r.name == "HOH"]
    if len(waters) < n_waters:
        raise SystemExit(f"only {len(waters)} waters fit the start box, {n_waters} asked")
    modeller.delete(waters[n_waters:])
    return ff, modeller


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--n-pairs", type=int, default=4)
    ap.add_argument("--n-waters", type=int, default=200)
    ap.add_argument("--duration-ps", type=float, default=1000.0)
    ap.add_argument("--equilibration-ps", type=float, default=50.0)
    ap.add_argument("--frame-ps", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    t0, c0 = time.time(), time.process_time()
    ff, modeller = build(args.n_pairs, args.n_waters, args.seed)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME,
                             nonbondedCutoff=0.8 * u.nanometer, constraints=app.HBonds,
                             rigidWater=True)
    dt_ps = 0.002
    integrator = mm.LangevinMiddleIntegrator(300 * u.kelvin, 1 / u.picosecond,
                                             dt_ps * u.picosecond)
    integrator.setRandomNumberSeed(args.seed)
    barostat = mm.MonteCarloBarostat(1 * u.bar, 300 * u.kelvin)
    barostat.setRandomNumberSeed(args.seed)
    system.addForce(barostat)
    platform = mm.Platform.getPlatformByName("CPU")
    sim = app.Simulation(modeller.topology, system, integrator, platform,
                         {"Threads": str(args.threads)})
    sim.context.setPositions(modeller.positions)
    sim.minimizeEnergy()
    sim.context.setVelocitiesToTemperature(300 * u.kelvin, args.seed)
    sim.step(round(args.equilibration_ps / dt_ps))
    # NVT production at the equilibrated box (the barostat off: its frequency 0).
    barostat.setFrequency(0)
    sim.context.reinitialize(preserveState=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    state = sim.context.getState(getPositions=True, enforcePeriodicBox=True)
    app.PDBFile.writeFile(sim.topology, state.getPositions(), str(args.out_dir / "nacl.pdb"))
    every = round(args.frame_ps / dt_ps)
    sim.reporters.append(app.XTCReporter(str(args.out_dir / "nacl.xtc"), every))
    n_steps = round(args.duration_ps / dt_ps)
    # Chunks of whole frames, <= 10 ps: SIGTERM / SIGINT stop the run after the current
    # chunk and simulation.json records the production length actually run (OpenMM's XTC
    # writer appends each frame by file name, so the XTC holds whole frames: a run cut at a
    # deadline stays usable).
    chunk = max(every, min(n_steps // 20, round(10.0 / dt_ps)) // every * every)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    done = 0
    while done < n_steps and not stop:
        step = min(chunk, n_steps - done)
        sim.step(step)
        done += step
        print(f"{done * dt_ps:.0f} / {args.duration_ps:.0f} ps, {time.time() - t0:.0f} s",
              flush=True)
    box_A = 10 * np.asarray(state.getPeriodicBoxVectors().value_in_unit(u.nanometer))
    info = {"n_pairs": args.n_pairs, "n_waters": args.n_waters,
            "n_atoms": sim.topology.getNumAtoms(), "box_A": box_A.diagonal().tolist(),
            "duration_ps": done * dt_ps, "requested_ps": args.duration_ps,
            "stopped_early": bool(stop), "frame_ps": args.frame_ps,
            "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
            "threads": args.threads, "seed": args.seed}
    (args.out_dir / "simulation.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
