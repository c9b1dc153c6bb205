"""The default toy run's 2-state GDyNet against the simulator's site labels (issue 21).

    python benchmarks/toy_memberships.py [--results results] [--model gdynet-s2]
        [--msm-lag-ps 10] [--site-rule polyhedron] [--tau-ps 10] [--out toy_memberships.json]

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

Then the issue's criterion, a 12-site MSM of the same run: each frame's Li goes to one of
the cell's 4 octahedral and 8 tetrahedral sites relative to its S lattice
(``gdyn.toy.sites.site_index``; ``--site-rule polyhedron``, the default, assigns the
containing S polyhedron, the face being the dividing surface as in the simulator's site
labels; ``nearest`` the nearest site centre, whose boundary lies inside the octahedron),
counts pooled over all frames of every Li at ``--msm-lag-ps``, a reversible
maximum-likelihood MSM (deeptime); the mean of its three slowest implied timescales is
the global timescale the rebuilt one (at ``--tau-ps``) is compared with: ``within_15pct``.
Both rules are printed at every lag of ``--msm-lags-ps`` (docs/toy.md, "Issue 21").
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
from gdyn.toy.sites import site_index


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


def site_dtrajs(raw_dir: Path, rule: str) -> tuple[list[np.ndarray], float]:
    """12-site index of every raw Li trajectory (Li atom 0 relative to S atom 1)."""
    dtrajs, interval = [], math.nan
    for f in sorted(raw_dir.glob("*.npz")):
        with np.load(f) as r:
            c = r["traj_coords"]
            dtrajs.append(site_index(c[:, 0] - c[:, 1], float(r["lattices"][0, 0, 0]), rule))
            interval = float(r["frame_interval_ps"])
    return dtrajs, interval


def site_msm(dtrajs: list[np.ndarray], interval: float, lag_ps: float) -> dict:
    """The 12-site MSM (module docstring) of ``dtrajs`` at ``lag_ps``."""
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
    ap.add_argument("--msm-lags-ps", type=float, nargs="+", default=[1, 2, 5, 10, 20, 40, 80])
    ap.add_argument("--site-rule", choices=["polyhedron", "nearest"], default="polyhedron")
    ap.add_argument("--tau-ps", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    raw = args.results / "raw" / "toy"
    dirs = sorted((args.results / "models" / "toy").glob(f"{args.model}-lag*"),
                  key=lambda d: parse_lag(d.name.rsplit("-lag", 1)[1]))
    rows = [lag_row(d, raw) for d in dirs if (d / "probs_test.npz").exists()]
    for r in rows:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                          for k, v in r.items()}))
    msms = {}
    for rule in ("polyhedron", "nearest"):
        dtrajs, interval = site_dtrajs(raw, rule)
        lags = sorted({*args.msm_lags_ps, args.msm_lag_ps})
        msms[rule] = [site_msm(dtrajs, interval, lag) for lag in lags]
        for m in msms[rule]:
            print(json.dumps({"site_rule": rule, **m}))
    crit = next(m for m in msms[args.site_rule] if math.isclose(m["msm_lag_ps"], args.msm_lag_ps))
    at_tau = next((r for r in rows if math.isclose(r["lag_ps"], args.tau_ps)), {})
    rebuilt = at_tau.get("mapped_global_ps", math.nan)
    verdict = {"site_rule": args.site_rule, "msm_lag_ps": args.msm_lag_ps,
               "msm_mean3_ps": crit["msm_mean3_ps"], "tau_ps": args.tau_ps,
               "rebuilt_global_ps": rebuilt,
               "rel_diff": rebuilt / crit["msm_mean3_ps"] - 1,
               "within_15pct": abs(rebuilt / crit["msm_mean3_ps"] - 1) <= 0.15}
    print(json.dumps(verdict))
    if args.out:
        args.out.write_text(json.dumps({"lags": rows, "site_msm": msms, "criterion": verdict},
                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
