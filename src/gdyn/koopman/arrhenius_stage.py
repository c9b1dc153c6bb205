"""The workflow's Arrhenius stage of a temperature series (``gdyn arrhenius``, issue 25).

Reads the pooled Koopman stage's ``summary.json`` (the analysis lag tau*, its test probs
and the state numbering), estimates K per temperature on that temperature's test frames
with the engine's bootstrap (:mod:`~gdyn.koopman.temperature`), fits ``ln k`` against
``1 / k_B T`` per transition (:mod:`~gdyn.koopman.arrhenius`) and writes
``arrhenius.csv``, ``arrhenius.json`` and the figure. On the toy it adds the ground truth
(:mod:`gdyn.toy.arrhenius`): the same fit on the simulator's site labels, TST and the
barrier, with the learned state that is tet identified by its overlap with the labels.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.errors import InputError
from gdyn.files import write_csv, write_json
from gdyn.koopman.arrhenius import ArrheniusResult
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs, load_probs
from gdyn.koopman.settings import KoopmanSettings, as_koopman_settings
from gdyn.koopman.temperature import arrhenius_by_temperature, models_by_temperature
from gdyn.koopman.toy_arrhenius import barrier_eV, label_arrhenius, label_models, tst_arrhenius
from gdyn.temperatures import split_simulate
from gdyn.toy import parse_settings as toy_settings
from gdyn.trajectory import load_trajectory

__all__ = ["ACCEPT_AGREEMENT", "ACCEPT_CI_HALF_WIDTH", "run_arrhenius"]

log = logging.getLogger(__name__)

ACCEPT_AGREEMENT = 0.15  # learned vs site-label activation energy (issue 25)
ACCEPT_CI_HALF_WIDTH = 0.20  # each 95 % interval within +-20 % of its estimate


def _tet_state(data: Probs, pieces: Sequence[Any]) -> tuple[int, list[float]]:
    """Output state with the most probability on tet-labelled frames, and each output
    state's mean probability there."""
    label = {}
    for p in pieces:
        label[Path(str(np.asarray(p.extras["source"]))).stem] = (
            int(np.asarray(p.extras.get("frame_offset", 0))),
            np.asarray(p.extras["site_label"])[:, 0],
        )
    tet = np.zeros(data.probs.shape[0], dtype=bool)
    for i, src in enumerate(data.sources):
        rows = np.flatnonzero(data.traj == i)
        off, lab = label[Path(str(src)).stem]
        tet[rows] = lab[data.frame[rows] - off] == 1
    if not tet.any():
        raise InputError(f"{data.path}: expected tet-labelled test frames, got none")
    mean = data.probs[tet].mean(axis=(0, 1))
    return int(np.argmax(mean)), [float(x) for x in mean]


def _comparison(learned: ArrheniusResult, labels: ArrheniusResult, tst: ArrheniusResult,
                barrier: Mapping[tuple[int, int], float], tet: int, oct_: int) -> list[dict]:
    rows = []
    for (a, b), name in (((1, 0), "tet->oct"), ((0, 1), "oct->tet")):
        pos = {0: oct_, 1: tet}
        f = learned.fits[(pos[a], pos[b])]
        g = labels.fits[(a, b)]
        ea, ea_l = f.activation_energy_eV, g.activation_energy_eV
        rows.append({
            "transition": name,
            "learned_from_state": pos[a], "learned_to_state": pos[b],
            "learned_eV": ea, "learned_ci": [f.ci_low_eV, f.ci_high_eV],
            "labels_eV": ea_l, "labels_ci": [g.ci_low_eV, g.ci_high_eV],
            "tst_eV": tst.fits[(a, b)].activation_energy_eV,
            "barrier_eV": barrier[(a, b)],
            "learned_over_labels": ea / ea_l,
            "agree_within_15pct": bool(abs(ea / ea_l - 1) <= ACCEPT_AGREEMENT),
            "learned_ci_within_20pct": bool(max(ea - f.ci_low_eV, f.ci_high_eV - ea)
                                            <= ACCEPT_CI_HALF_WIDTH * abs(ea)),
            "labels_ci_within_20pct": bool(max(ea_l - g.ci_low_eV, g.ci_high_eV - ea_l)
                                           <= ACCEPT_CI_HALF_WIDTH * abs(ea_l)),
        })  # fmt: skip
    return rows


def run_arrhenius(
    outdir: str | Path,
    summary_path: str | Path,
    temperature_of: Mapping[str, float],
    settings: KoopmanSettings | Mapping[str, Any] | None,
    pieces: Sequence[str | Path] = (),
    simulate: Mapping[str, Any] | None = None,
    n_boot: int = 2000,
) -> tuple[dict[str, Any], ArrheniusResult, Any]:
    """Write ``arrhenius.csv`` / ``arrhenius.json`` to ``outdir``.

    Parameters
    ----------
    outdir : path
        The model's Koopman directory.
    summary_path : path
        The pooled Koopman ``summary.json`` (analysis lag, its probs, state order).
    temperature_of : mapping
        ``{trajectory name: temperature_K}`` (:func:`gdyn.temperatures.temperature_of`).
    settings : KoopmanSettings or mapping
        The system's ``koopman`` section (CI engine, estimator, selection thresholds).
    pieces, simulate : optional
        The toy's test split pieces (site labels) and ``simulate`` block: adds the ground
        truth (module docstring).

    Returns
    -------
    tuple
        The ``arrhenius.json`` content, the learned states' fit and, on the toy, the ground
        truth ``(labels, tst, tet_state, oct_state)`` (else None): what
        :func:`gdyn.plots.save_arrhenius` draws (``gdyn arrhenius --figure``).
    """
    summary = json.loads(Path(summary_path).read_text())
    tau = float(summary["analysis_lag_ps"])
    opts = as_koopman_settings(settings)
    opts.tau_star_on([float(x) for x in summary["lags_ps"]])  # a tau* off the grid raises
    data = load_probs(summary["probs_test"])
    pooled = KoopmanModel.estimate(data, tau, selection=opts.selection,
                                   estimator=opts.estimator)  # fmt: skip
    if pooled.state_order.tolist() != list(summary["state_order"]):
        log.warning("state order %s differs from summary.json's %s", pooled.state_order.tolist(),
                    summary["state_order"])  # fmt: skip
    by_t = models_by_temperature(data, temperature_of, pooled, opts.ci, opts.estimator)
    res = arrhenius_by_temperature(by_t, pooled.state_order, n_boot=n_boot,
                                   seed=opts.ci.seed)  # fmt: skip
    out = {"lag_ps": tau, "temperatures_K": [float(t) for t in res.temperature_K],
           "state_order": pooled.state_order.tolist(), **res.to_json()}  # fmt: skip
    truth = None
    if pieces and simulate is not None:
        trajs = [load_trajectory(p) for p in pieces]
        s = toy_settings(split_simulate(simulate)[0], where="simulate")
        lab = label_arrhenius(label_models(trajs, temperature_of, tau, opts.ci,
                                           opts.estimator), n_boot=n_boot,
                              seed=opts.ci.seed)  # fmt: skip
        tst = tst_arrhenius(s, res.temperature_K)
        tet_out, overlap = _tet_state(data, trajs)
        where = {int(o): i for i, o in enumerate(pooled.state_order)}
        tet = where[tet_out]
        oct_ = next(i for i in range(min(2, len(where))) if i != tet)
        barrier = barrier_eV(s)
        out["toy_ground_truth"] = {
            "tet_state": tet, "oct_state": oct_,
            "mean_probability_on_tet_frames_by_output_state": overlap,
            "site_labels": label_arrhenius_json(lab),
            "tst": label_arrhenius_json(tst),
            "barrier_eV": {"oct->tet": barrier[(0, 1)], "tet->oct": barrier[(1, 0)]},
            "comparison": _comparison(res, lab, tst, barrier, tet, oct_),
        }  # fmt: skip
        truth = (lab, tst, tet, oct_)
        for row in out["toy_ground_truth"]["comparison"]:
            log.info("%s: learned %.4f eV [%.4f, %.4f], labels %.4f eV [%.4f, %.4f], TST %.4f, "
                     "barrier %.4f", row["transition"], row["learned_eV"], *row["learned_ci"],
                     row["labels_eV"], *row["labels_ci"], row["tst_eV"], row["barrier_eV"])
    outdir = Path(outdir)
    write_csv(outdir / "arrhenius.csv", res.to_frame())
    write_json(outdir / "arrhenius.json", out)
    return out, res, truth


def label_arrhenius_json(res: ArrheniusResult) -> dict[str, Any]:
    """Rates per temperature and fits (oct = 0, tet = 1) for ``arrhenius.json``."""
    return {"rates": res.to_frame().to_dict(orient="records"), **res.to_json()}
