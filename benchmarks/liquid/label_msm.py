"""The liquid benchmark's numbers: GDyNet states against the contact-ion-pair label (issue 21).

    python benchmarks/liquid/label_msm.py --work WORK [--system nacl] [--model gdynet-s2]
        [--cutoff-A auto] [--out WORK/liquid_benchmark.json]

``WORK`` is the directory ``snakemake`` ran in (``data/nacl.npz`` and ``results/``).

* **Label.** Each Na+ in each frame is a contact ion pair (CIP, 1) when a Cl- is within
  ``--cutoff-A`` (minimum image), else 0. ``auto``: the first minimum of the Na-Cl RDF
  after its first peak (histogram of all frames, 0.05 A bins, smoothed over 5 bins).
* **Label MSM.** The 2-state MSM of the labels (``gdyn.toy.sites.two_state_msm``:
  sliding-window counts pooled over every Na, row-normalised) at every trained lag, over
  all frames and over the test window alone; its relaxation time -lag / ln(lambda_2).
* **Learned states.** For each lag's model, the test frames' memberships (``probs``,
  after the membership map): balanced accuracy of the argmax state against the label (the
  state assignment that maximises it), the CIP population of K's stationary vector, the
  slowest implied timescale (K = C00^+ C0t of the test split, as ``gdyn koopman``), and
  from ``metrics.csv`` the epochs run, best epoch, ``training_converged`` and the
  validation VAMP-2 against epoch and cumulative wall time (``vamp2_curve``).
* **Tool verdicts.** From the Koopman summary: tau* and ``tau_star_reason``,
  ``its_converged`` (and from which lag), the CK verdict per lag, ``unconverged_models``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from gdyn.koopman.eigen import spectrum
from gdyn.koopman.estimate import estimate_koopman
from gdyn.layout import parse_lag
from gdyn.toy.sites import two_state_msm

NA, CL = 11, 17


def min_na_cl(npz: Path) -> tuple[np.ndarray, float]:
    """(F, n_Na) distance from each Na to its nearest Cl (minimum image), frame interval."""
    with np.load(npz) as r:
        x, cell, types = r["traj_coords"], r["lattices"], r["atom_types"]
        dt = float(r["frame_interval_ps"])
        target = r["target_index"]
    na, cl = np.asarray(target).ravel(), np.flatnonzero(types == CL)
    assert np.all(types[na] == NA)
    box = np.diagonal(cell, axis1=1, axis2=2)  # orthorhombic (the simulation's cubic box)
    d = x[:, na, None, :] - x[:, None, cl, :]
    d -= box[:, None, None, :] * np.round(d / box[:, None, None, :])
    return np.sqrt((d**2).sum(-1)).min(axis=-1), dt


def rdf_first_minimum(npz: Path) -> tuple[float, float]:
    """Position of the Na-Cl RDF's first peak and the first minimum after it (A)."""
    with np.load(npz) as r:
        x, cell, types = r["traj_coords"], r["lattices"], r["atom_types"]
    na, cl = np.flatnonzero(types == NA), np.flatnonzero(types == CL)
    box = np.diagonal(cell, axis1=1, axis2=2)
    d = x[:, na, None, :] - x[:, None, cl, :]
    d -= box[:, None, None, :] * np.round(d / box[:, None, None, :])
    r = np.sqrt((d**2).sum(-1)).ravel()
    edges = np.arange(2.0, 8.0, 0.05)
    h, _ = np.histogram(r, edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    g = np.convolve(h / mid**2, np.ones(5) / 5, mode="same")
    peak = int(np.argmax(g[mid < 4.0]))
    after = peak + int(np.argmin(g[peak : np.searchsorted(mid, 4.5)]))
    return float(mid[peak]), float(mid[after])


def balanced_accuracy(pred: np.ndarray, label: np.ndarray) -> float:
    """Mean of the per-class recalls of binary ``pred`` against ``label``."""
    return float(np.mean([np.mean(pred[label == c] == c) for c in (0, 1)]))


def lag_row(model_dir: Path, labels: np.ndarray) -> dict:
    """Numbers of one lag's model (module docstring); ``labels`` (F, n_Na) of the run."""
    z = np.load(model_dir / "probs_test.npz")
    lag = float(z["lag_ps"])
    lag_frames = round(lag / float(z["frame_interval_ps"]))
    lab = labels[z["frame"]]  # one trajectory: traj is 0 everywhere
    p = z["probs"].astype(np.float64)
    k, _ = estimate_koopman(p, z["traj"], z["frame"], lag_frames)
    sp = spectrum(k)
    lam = abs(sp.eigenvalues[1])
    argmax = p.argmax(-1)
    ba = [balanced_accuracy(argmax == s, lab.astype(bool)) for s in (0, 1)]
    cip = int(np.argmax(ba))
    m = pd.read_csv(model_dir / "metrics.csv")
    last = m.iloc[-1]
    curve = [{"epoch": int(e.epoch), "val_vamp2": round(float(e.val_vamp2), 5),
              "wall_s": round(float(w), 1)}
             for e, w in zip(m.itertuples(), m["seconds"].cumsum(), strict=True)]
    return {"lag_ps": lag, "balanced_accuracy": max(ba), "cip_state": cip,
            "cip_population_model": float(sp.stationary[cip]),
            "cip_fraction_label_test": float(lab.mean()),
            "t1_model_ps": -lag / math.log(lam) if 0 < lam < 1 else math.nan,
            "epochs_run": int(last["epochs_run"]), "best_epoch": int(last["best_epoch"]),
            "training_converged": bool(last["training_converged"]),
            "train_seconds": float(m["seconds"].sum()), "vamp2_curve": curve}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--system", default="nacl")
    ap.add_argument("--model", default="gdynet-s2")
    ap.add_argument("--data", default="data/nacl.npz")
    ap.add_argument("--cutoff-A", default="auto")
    ap.add_argument("--test-start", type=float, default=0.7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    npz = args.work / args.data
    peak, minimum = rdf_first_minimum(npz)
    cutoff = minimum if args.cutoff_A == "auto" else float(args.cutoff_A)
    dmin, dt = min_na_cl(npz)
    labels = (dmin < cutoff).astype(np.int8)
    out: dict = {"rdf_peak_A": peak, "rdf_first_minimum_A": minimum, "cutoff_A": cutoff,
                 "cip_fraction_all": float(labels.mean()), "frames": len(labels),
                 "frame_interval_ps": dt,
                 # CIP formations (label 0 -> 1) per Na: the sample the label MSM rests on
                 "cip_formations_per_na": np.sum(np.diff(labels, axis=0) == 1, axis=0).tolist()}
    results = args.work / "results"
    dirs = sorted((results / "models" / args.system).glob(f"{args.model}-lag*"),
                  key=lambda d: parse_lag(d.name.rsplit("-lag", 1)[1]))
    rows = [lag_row(d, labels) for d in dirs if (d / "probs_test.npz").exists()]
    test = labels[round(args.test_start * len(labels)):]
    for r in rows:
        lag_frames = round(r["lag_ps"] / dt)
        for name, lab in (("all", labels), ("test", test)):
            msm = two_state_msm(lab, lag_frames)
            r[f"t1_label_{name}_ps"] = msm["relaxation_frames"] * dt
            r[f"cip_label_msm_{name}"] = msm["tet_population"]  # its state 1: CIP
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                          if k != "vamp2_curve"}))
    out["lags"] = rows
    summary = results / "koopman" / args.system / args.model / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        keys = ("tau_star_ps", "tau_star_source", "tau_star_reason", "tau_star_auto_ps",
                "analysis_lag_ps", "its_converged", "its_converged_from_ps",
                "timescales_ps", "timescale_flags", "populations", "ck_pass",
                "unconverged_models")
        out["koopman"] = {k: s.get(k) for k in keys}
        out["koopman"]["ck_by_lag"] = [
            {k: e.get(k) for k in ("lag_ps", "ck_pass", "ck_max_abs_deviation")}
            for e in s.get("ck_by_lag", [])]
    print(json.dumps({k: v for k, v in out.items() if k != "lags"}, default=str))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
