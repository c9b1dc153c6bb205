"""The toy rows of the paper comparison (issue 13): tet population, the global timescale's
CI, and the "paper in CI" marker.

Ground truths: the paper's own numbers (a local model with 42.3 ps and 9.1 % rebuilds a
~520 ps global process, Supp. Note 2), and the rebuild evaluated replicate by replicate on
the Koopman stage's ``replicates.csv`` with numpy's percentiles / scipy's t quantile (issue
22: the interval comes from the engine's resamples, not from a box of two CIs).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdyn import compare
from gdyn import config as gc
from gdyn.compare.headlines import global_timescale_from_local, local_koopman_matrix
from gdyn.compare.report import build_comparison, caveat, is_calibrated_toy

ROOT = Path(__file__).resolve().parents[1]
TAU = 10.0


def _toy_system() -> dict:
    toy = gc.load_yaml(ROOT / "config/config.yaml")["systems"]["toy"]
    toy["train"]["models"] = {"gdynet": [2]}
    return toy


def _replicates(t1: float, tet: float, n: int, seed: int = 0) -> list[tuple[float, float]]:
    """(t1, tet) of n replicates, correlated as resamples of one data set are (a resample
    with more tet visits has a longer t1)."""
    z = np.random.default_rng(seed).normal(size=(n, 2))
    return [(t1 * (1 + 0.06 * a), tet * (1 + 0.06 * (0.7 * a + 0.71 * b))) for a, b in z]


def _write_gdynet2(d: Path, t1: float, t1_ci: tuple[float, float], tet: float,
                   tet_ci: tuple[float, float], method: str = "bootstrap",
                   n: int = 400) -> list[tuple[float, float]]:  # fmt: skip
    """The 2-state GDyNet's Koopman outputs the comparison reads; returns the replicates'
    (t1, tet) whose K(tau*) it writes to replicates.csv."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps({
        "model": "gdynet", "n_states": 2, "tau_star_ps": TAU, "timescales_ps": [t1],
        "populations": [1 - tet, tet], "ci_method": method, "ci_level": 0.95,
    }))  # fmt: skip
    reps = _replicates(t1, tet, n)
    rows = []
    for r, (t, p) in enumerate(reps):
        k = local_koopman_matrix(t, [1 - p, p], TAU)
        rows += [dict(model="gdynet", n_states=2, tau_ps=TAU, replicate=r, from_state=i,
                      to_state=j, value=k[i, j]) for i in range(2) for j in range(2)]  # fmt: skip
    pd.DataFrame(rows).to_csv(d / "replicates.csv", index=False)
    pd.DataFrame(
        [dict(model="gdynet", n_states=2, lag_ps=lag, process=1, eigenvalue=math.exp(-lag / t1),
              timescale_ps=t1 * f, ci_low_ps=t1_ci[0] * f, ci_high_ps=t1_ci[1] * f)
         for lag, f in ((5.0, 0.9), (TAU, 1.0))]
    ).to_csv(d / "timescales.csv", index=False)  # fmt: skip
    pd.DataFrame(
        [dict(model="gdynet", n_states=2, tau_ps=TAU, state=0, population=1 - tet,
              ci_low=1 - tet_ci[1], ci_high=1 - tet_ci[0]),
         dict(model="gdynet", n_states=2, tau_ps=TAU, state=1, population=tet,
              ci_low=tet_ci[0], ci_high=tet_ci[1])]
    ).to_csv(d / "populations.csv", index=False)  # fmt: skip
    return reps


def _yes(v: object) -> bool:
    return not pd.isna(v) and bool(v)


def _no(v: object) -> bool:
    return not pd.isna(v) and not bool(v)


def _rebuilt(t1: float, tet: float) -> float:
    k = local_koopman_matrix(t1, [1 - tet, tet], TAU)
    return global_timescale_from_local(k, TAU)


def test_toy_rows_with_the_papers_numbers(tmp_path: Path) -> None:
    systems = {"toy": _toy_system()}
    inputs = compare.comparison_inputs(systems, results=str(tmp_path))
    assert "toy:gdynet-s2:populations.csv" in inputs
    assert "toy:gdynet-s2:replicates.csv" in inputs
    # A run that learned exactly the paper's local model, with CIs around it.
    reps = _write_gdynet2(tmp_path / "koopman/toy/gdynet-s2", 42.3, (38.0, 47.0), 0.0911,
                          (0.080, 0.100))  # fmt: skip
    table, text = build_comparison(systems, inputs)
    rows = table.set_index("quantity")

    tet = rows.loc["tetrahedral population (2-state GDyNet)"]
    assert tet["paper_value"] == pytest.approx(9.107, abs=1e-3)
    assert tet["run_value"] == pytest.approx(9.11)
    assert (tet["run_ci_low"], tet["run_ci_high"]) == pytest.approx((8.0, 10.0))
    assert _yes(tet["paper_within_ci"])

    glob = rows.loc["slowest global timescale rebuilt from the local model"]
    # Supp. Note 2 with the paper's two inputs gives ~the paper's 531 ps (its K is rounded)
    assert glob["run_value"] == pytest.approx(_rebuilt(42.3, 0.0911), rel=1e-12)
    assert glob["run_value"] == pytest.approx(531.0, rel=0.03)
    # The CI is the percentile interval of the rebuild on each replicate of K(tau*)...
    rebuilt = [_rebuilt(t, p) for t, p in reps]
    expected = np.percentile(rebuilt, [2.5, 97.5])
    assert (glob["run_ci_low"], glob["run_ci_high"]) == pytest.approx(expected, rel=1e-9)
    assert glob["run_ci_low"] < 531.0 < glob["run_ci_high"]
    # ... narrower than the old box of the two input intervals, which ignored that the
    # rebuild grows with t1 and falls with the tet population, and the two move together.
    box = [_rebuilt(t, p) for t, p in itertools.product((38.0, 47.0), (0.080, 0.100))]
    assert max(box) - min(box) > 1.5 * (expected[1] - expected[0])
    assert "rebuild on the 400 replicates" in glob["note"]
    assert _yes(glob["paper_within_ci"])

    gdy = rows.loc["GDyNet relaxation timescale (2 states)"]
    assert _yes(gdy["paper_within_ci"])
    # Rows without a run value have no marker.
    assert pd.isna(rows.loc["global VAMPnet relaxation timescale (2 states)", "paper_within_ci"])
    assert "| tetrahedral population (2-state GDyNet) | 9.11 | 9.11 [8, 10] | yes | % |" in text
    assert "| Paper in CI |" in text
    # the default config's physics is the calibrated one, and the note says so
    assert "These are the calibrated parameters" in text


def test_paper_outside_the_ci_is_marked_no(tmp_path: Path) -> None:
    systems = {"toy": _toy_system()}
    inputs = compare.comparison_inputs(systems, results=str(tmp_path))
    # the old, uncalibrated toy: 51 ps and 4.2 % (issue 13's table)
    _write_gdynet2(tmp_path / "koopman/toy/gdynet-s2", 51.1, (45.0, 58.0), 0.042, (0.035, 0.050))
    table, text = build_comparison(systems, inputs)
    rows = table.set_index("quantity")
    for q in ("tetrahedral population (2-state GDyNet)",
              "GDyNet relaxation timescale (2 states)",
              "slowest global timescale rebuilt from the local model"):  # fmt: skip
        assert _no(rows.loc[q, "paper_within_ci"]), q
    assert rows.loc["slowest global timescale rebuilt from the local model", "run_value"] > 1000
    assert "| no |" in text


def test_global_interval_of_ci_groups_is_their_geometric_t_interval(tmp_path: Path) -> None:
    from scipy import stats

    systems = {"toy": _toy_system()}
    inputs = compare.comparison_inputs(systems, results=str(tmp_path))
    reps = _write_gdynet2(tmp_path / "koopman/toy/gdynet-s2", 42.3, (38.0, 47.0), 0.0911,
                          (0.080, 0.100), method="chunks", n=5)  # fmt: skip
    table, _ = build_comparison(systems, inputs)
    glob = table.set_index("quantity").loc["slowest global timescale rebuilt from the local model"]
    logs = np.log([_rebuilt(t, p) for t, p in reps])
    half = stats.t.ppf(0.975, 4) * logs.std(ddof=1) / math.sqrt(5)
    expected = np.exp([logs.mean() - half, logs.mean() + half])
    assert (glob["run_ci_low"], glob["run_ci_high"]) == pytest.approx(expected, rel=1e-9)


def test_changed_physics_is_not_called_calibrated(tmp_path: Path) -> None:
    toy = _toy_system()
    assert is_calibrated_toy(toy["simulate"])
    toy["simulate"]["friction_per_ps"] = 1.0
    assert not is_calibrated_toy(toy["simulate"])
    assert "not the calibrated parameters" in caveat(toy)
    # the run length is not part of the calibration
    toy = _toy_system()
    toy["simulate"]["duration_ps"] = 200000
    toy["simulate"]["n_li"] = 1
    assert is_calibrated_toy(toy["simulate"])


def test_no_tau_star_and_unconverged_training_are_named(tmp_path: Path) -> None:
    """Issues 21/22: a row whose Koopman stage found no tau*, or whose lag models hit
    train.epochs unconverged, says so beside the number instead of printing a tau*."""
    systems = {"toy": _toy_system()}
    inputs = compare.comparison_inputs(systems, results=str(tmp_path))
    d = tmp_path / "koopman/toy/gdynet-s2"
    _write_gdynet2(d, 42.3, (38.0, 47.0), 0.0911, (0.080, 0.100))
    table, _ = build_comparison(systems, inputs)
    notes = table.set_index("quantity")["note"]
    assert "τ* = 10 ps" in notes["GDyNet relaxation timescale (2 states)"]
    assert "unconverged" not in " ".join(notes.dropna())

    summary = json.loads((d / "summary.json").read_text())
    summary.update(tau_star_ps=None, analysis_lag_ps=TAU, tau_star_reason="no converged lag",
                   unconverged_models=["gdynet-s2-lag10ps"])
    (d / "summary.json").write_text(json.dumps(summary))
    table, _ = build_comparison(systems, inputs)
    notes = table.set_index("quantity")["note"]
    for q in ("GDyNet relaxation timescale (2 states)",
              "tetrahedral population (2-state GDyNet)"):  # fmt: skip
        assert "no τ* (tables at 10 ps: no converged lag)" in notes[q], q
        assert "training unconverged: gdynet-s2-lag10ps" in notes[q], q
        assert "τ* = " not in notes[q], q


@pytest.mark.slow
def test_rebuilt_global_interval_covers_the_truth_at_the_nominal_rate() -> None:
    """On an exact toy-like 2-state chain (relaxation 42 frames, 9 % minor state; 16 atoms x
    8,000 frames, lag 10 frames, default bootstrap) the truth is the rebuild of the chain's
    own T^10 (519.4 frames). Over 200 data sets the engine's interval covers it at about the
    nominal 95 %: benchmarks/bench_intervals.py measured 186/200 = 0.93 [0.886, 0.958] on
    other seeds (the old box of two CIs: 200/200, twice as wide). Asserted: [0.87, 0.99]; a
    true 93 % rate falls below with probability ~0.05 %, a 95 % one above with ~0.1 %, and
    the box's over-coverage fails the upper bound."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _markov_chains import simulate
    from bench_intervals import LAG, TOY_T, rebuild_truth

    from gdyn.compare.headlines import rebuilt_global_interval
    from gdyn.koopman import KoopmanModel

    truth = rebuild_truth()
    assert truth == pytest.approx(519.4, abs=0.05)
    cover = 0
    for r in range(200):
        p = np.eye(2)[simulate(TOY_T, 8000, 16, np.random.default_rng(60_000 + r))]
        km = KoopmanModel.estimate(p, float(LAG), 1.0, selection=None,
                                   ci={"method": "bootstrap", "seed": r})  # fmt: skip
        lo, hi = rebuilt_global_interval(km.group_matrices, float(LAG), {"method": "bootstrap"})
        cover += lo <= truth <= hi
    assert 0.87 <= cover / 200 <= 0.99
