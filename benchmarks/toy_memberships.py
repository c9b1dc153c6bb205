"""The default toy run's 2-state GDyNet against the simulator's site labels (issue 21).

    python benchmarks/toy_memberships.py [--results results] [--model gdynet-s2]
        [--msm-lag-ps 10] [--out toy_memberships.json]

For every lag's model directory ``results/models/toy/{model}-lag*/`` it reads the test
probabilities and, for the same test frames, the raw trajectories' ``site_label``
(0 octahedral, 1 tetrahedral), and prints per lag:

* the tetrahedral population from K's stationary vector (K = C00^+ C01 of the test
  split's lag pairs, pooled, as ``gdyn koopman``'s nonreversible estimator) of the
  memberships (``probs``) and of the network's raw outputs (``probs_raw``), the fraction
  of those frames whose most probable state is tetrahedral, and the site labels' fraction;
* the minimum tetrahedral membership over the test frames (raw and mapped);
* the slowest implied timescale and the global timescale rebuilt from the 2-state K
  (Supp. Note 2, ``gdyn.compare.headlines.global_timescale_from_local``).

Then a 12-site MSM of the same run: each frame's Li goes to the nearest of the cell's
4 octahedral and 8 tetrahedral site centres (minimum image, relative to its S lattice),
counts pooled over all frames of every Li at ``--msm-lag-ps``, a reversible
maximum-likelihood MSM (deeptime); the mean of its three slowest implied timescales is
the global timescale the rebuilt one is compared with.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from deeptime.markov import TransitionCountEstimator
from deeptime.markov.msm import MaximumLikelihoodMSM

from gdyn.compare.headlines import global_timescale_from_local
from gdyn.koopman.eigen import spectrum
from gdyn.koopman.estimate import estimate_koopman
from gdyn.layout import parse_lag
from gdyn.toy.sites import OCT_SITES, TET_SITES

SITES = np.vstack([OCT_SITES, TET_SITES])  # fractional; 0..3 octahedral, 4..11 tetrahedral


def nearest_site(coords: np.ndarray, lattice_A: float) -> np.ndarray:
    """Nearest of the 12 site centres of each frame's Li (atom 0), relative to S atom 1."""
    rel = (coords[:, 0] - coords[:, 1]) / lattice_A
    d = rel[:, None, :] - SITES[None]
    d -= np.round(d)
    return np.argmin(np.einsum("fsk,fsk->fs", d, d), axis=1)


def lag_row(model_dir: Path, raw_dir: Path) -> dict:
    """The numbers of one lag's model (module docstring)."""
    z = np.load(model_dir / "probs_test.npz")
    lag = float(z["lag_ps"])
    lag_frames = round(lag / float(z["frame_interval_ps"]))
    sources = [str(s) for s in z["sources"]]
    labels = np.empty(len(z["frame"]), dtype=np.int8)
    for i, src in enumerate(sources):
        rows = z["traj"] == i
        with np.load(raw_dir / f"{src}.npz") as r:
            labels[rows] = r["site_label"][z["frame"][rows], 0]
    out = {"lag_ps": lag, "label_tet_pct": 100 * float(labels.mean())}
    for key in ("probs", "probs_raw"):
        if key not in z.files:
            continue
        p = z[key].astype(np.float64)
        k, _ = estimate_koopman(p, z["traj"], z["frame"], lag_frames)
        sp = spectrum(k)
        # The tetrahedral state: the one whose membership follows the labels.
        tet = int(np.argmax([np.corrcoef(p[:, 0, j], labels)[0, 1] for j in range(2)]))
        lam = abs(sp.eigenvalues[1])
        name = "mapped" if key == "probs" else "raw"
        out[f"{name}_tet_pct"] = 100 * float(sp.stationary[tet])
        out[f"{name}_min_tet_pct"] = 100 * float(p[:, 0, tet].min())
        out[f"{name}_max_tet_pct"] = 100 * float(p[:, 0, tet].max())
        out[f"{name}_argmax_tet_pct"] = 100 * float(np.mean(p[:, 0].argmax(1) == tet))
        out[f"{name}_t1_ps"] = -lag / math.log(lam) if 0 < lam < 1 else math.nan
        kk = k if tet == 1 else k[::-1, ::-1]
        out[f"{name}_global_ps"] = global_timescale_from_local(kk, lag)
    return out


def site_msm(raw_dir: Path, lag_ps: float) -> dict:
    """The 12-site MSM of every raw Li trajectory (module docstring)."""
    dtrajs = []
    interval = None
    for f in sorted(raw_dir.glob("*.npz")):
        with np.load(f) as r:
            dtrajs.append(nearest_site(r["traj_coords"], float(r["lattices"][0, 0, 0])))
            interval = float(r["frame_interval_ps"])
    lag_frames = round(lag_ps / interval)
    counts = TransitionCountEstimator(lag_frames, "sliding").fit(dtrajs).fetch_model()
    msm = MaximumLikelihoodMSM(reversible=True).fit(counts).fetch_model()
    ts = np.sort(msm.timescales(3))[::-1] * interval
    return {"msm_lag_ps": lag_ps, "msm_states": int(msm.n_states),
            "msm_timescales_ps": ts.tolist(), "msm_mean3_ps": float(ts.mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--model", default="gdynet-s2")
    ap.add_argument("--msm-lag-ps", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    raw = args.results / "raw" / "toy"
    dirs = sorted((args.results / "models" / "toy").glob(f"{args.model}-lag*"),
                  key=lambda d: parse_lag(d.name.rsplit("-lag", 1)[1]))
    rows = [lag_row(d, raw) for d in dirs]
    for r in rows:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                          for k, v in r.items()}))
    msm = site_msm(raw, args.msm_lag_ps)
    print(json.dumps(msm))
    if args.out:
        args.out.write_text(json.dumps({"lags": rows, "site_msm": msm}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
