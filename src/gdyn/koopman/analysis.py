"""One (model, n_states) of the workflow: its lag grid -> timescales, tau*, CK test, tables.

The stage reads the test-set probabilities of the model trained at each lag and, for every
lag, estimates that lag's :class:`~gdyn.koopman.model.KoopmanModel` on its surviving states
(the near-empty rule, :mod:`~gdyn.koopman.selection`), its implied timescales with CIs and
its own CK test with the verdict (``ck_by_lag``: "the smallest lag whose CK passes" for
model selection). It picks tau* (config value, else
:func:`~gdyn.koopman.tau_star.select_tau_star`, which never picks a lag with a flagged
process) and writes the tau* model's tables (each object's ``to_frame``, so the CSVs and a
notebook's frames come from the same code) and ``summary.json``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.config import MIN_CK_STEPS
from gdyn.errors import InputError
from gdyn.files import read_json, write_csv, write_json
from gdyn.koopman.ck import CKTest
from gdyn.koopman.eigen import timescales_from_eigenvalues
from gdyn.koopman.model import KoopmanModel
from gdyn.koopman.probs import Probs, load_probs, read_lag_ps
from gdyn.koopman.settings import KoopmanSettings, as_koopman_settings
from gdyn.koopman.temperature import kinetics_by_temperature, models_by_temperature
from gdyn.koopman.timescales import ImpliedTimescales, LagResult
from gdyn.layout import KOOPMAN_TABLES, lag_label

__all__ = ["run_koopman"]

log = logging.getLogger(__name__)


# Most CK steps the horizon rule asks for (each step is one more K estimate per resample).
MAX_CK_STEPS = 10
# The CK horizon, in slowest resolved timescales, when neither ck_steps nor ck_horizon_ps is set.
CK_HORIZON_TIMESCALES = 5.0


def ck_steps_for(km: KoopmanModel, data: Probs, opts: KoopmanSettings) -> tuple[int, str]:
    """CK steps at one lag: ``ck_steps`` if set, else ``ceil(horizon / tau)`` with the
    horizon ``ck_horizon_ps`` or 5x the slowest resolved timescale, capped at
    :data:`MAX_CK_STEPS` and at half the longest test trajectory, at least 2."""
    if opts.ck_steps is not None:
        return int(opts.ck_steps), "ck_steps"
    lag = km.lag_ps
    if opts.ck_horizon_ps is not None:
        horizon, source = float(opts.ck_horizon_ps), "ck_horizon_ps"
    else:
        t = km.timescales_ps
        t = t[np.isfinite(t) & (t > lag)]
        horizon = CK_HORIZON_TIMESCALES * float(t.max()) if t.size else 2 * lag
        source = f"{CK_HORIZON_TIMESCALES:g} x slowest resolved timescale"
    span = max(
        int(data.frame[data.traj == j].max() - data.frame[data.traj == j].min())
        for j in np.unique(data.traj)
    )
    window = max(1, (span // 2) // data.frames_for(lag))
    steps = min(max(MIN_CK_STEPS, math.ceil(horizon / lag - 1e-9)), MAX_CK_STEPS,
                max(window, MIN_CK_STEPS))
    return steps, source


def _slowest_resolved(km: KoopmanModel) -> float:
    t = km.timescales_ps
    t = t[np.isfinite(t) & (t > km.lag_ps)]
    return float(t.max()) if t.size else 0.0


# --------------------------------------------------------------------------------------
# Tables


REPLICATE_COLUMNS = ["model", "n_states", "tau_ps", "replicate", "from_state", "to_state",
                     "value"]  # fmt: skip


def replicates_table(model: str, n_states: int, km: KoopmanModel) -> Any:
    """``replicates.csv``: K(tau) of the tables' lag on every replicate of the uncertainty
    engine (the resamples behind every interval of these tables), surviving states.

    A quantity derived from K downstream (the paper comparison's global timescale rebuilt
    from the 2-state model) gets its interval by evaluating it on these same replicates
    (``CISettings.interval`` with the summary's ``ci_method`` and ``ci_level``), not by
    combining the intervals of its inputs.
    """
    import pandas as pd

    g = km.group_matrices
    r, i, j = np.meshgrid(np.arange(g.shape[0]), np.arange(g.shape[1]), np.arange(g.shape[2]),
                          indexing="ij")  # fmt: skip
    return pd.DataFrame(
        {"model": model, "n_states": n_states, "tau_ps": km.lag_ps, "replicate": r.ravel(),
         "from_state": i.ravel(), "to_state": j.ravel(), "value": g.ravel()},
        columns=REPLICATE_COLUMNS,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# The stage


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _block_ps(obj: KoopmanModel | CKTest) -> float | None:
    """The bootstrap block in ps of a model's or CK test's replicates (None: groups)."""
    reps = obj.replicates
    if reps is None or reps.block_frames is None:
        return None
    return float(reps.block_frames * obj.frame_interval_ps)


def _lag_entry(km: KoopmanModel, ck: CKTest) -> dict[str, Any]:
    """One ``ck_by_lag`` entry: the CK verdict of one lag's own model."""
    return {
        "lag_ps": km.lag_ps,
        "ck_pass": bool(ck.passed and not km.collapsed),
        "ck_max_abs_deviation": _finite(ck.max_deviation),
        # Steps whose estimate K(n tau) exists: 1 alone means the CK test could not be
        # evaluated (step 1 agrees by construction, its deviation 0 says nothing).
        "ck_steps_tested": int(np.isfinite(ck.verdict.element_pass).any(axis=(1, 2)).sum()),
        "ck_p_value": _finite(ck.verdict.p_value),
        "ck_steps": ck.steps,
        "n_surviving_states": km.n_surviving,
        "near_empty_states": km.near_empty_states,
        "collapsed": km.collapsed,
    }


def _fallback_lag(lags: Sequence[float], its: ImpliedTimescales) -> float:
    """The lag the tables describe when there is no tau*: the largest lag whose slowest
    process is resolved and none flagged, else the smallest lag."""
    f = its.flags
    ok = np.flatnonzero(f.resolved[:, 0] & ~f.flagged.any(axis=1))
    return float(lags[int(ok[-1])]) if ok.size else float(lags[0])


def unconverged_models(probs_paths: Sequence[str | Path]) -> list[str]:
    """Model directories (names) among the probs files' parents whose ``config.json`` says
    ``training_converged: false`` (the stopping rule never fired, gdyn.train.stopping);
    probs without a model directory's config.json are not judged."""
    out = []
    for p in probs_paths:
        cfg = Path(p).parent / "config.json"
        if cfg.is_file() and read_json(cfg).get("training_converged") is False:
            out.append(Path(p).parent.name)
    return out


def run_koopman(
    outdir: Path,
    probs_paths: Sequence[str | Path],
    settings: KoopmanSettings | Mapping[str, Any] | None,
    model: str,
    n_states: int | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    tau_star_source: str = "config",
    temperatures_K: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The whole stage: read the probs of every lag, write the tables and ``summary.json``.

    Parameters
    ----------
    outdir : Path
        Output directory.
    probs_paths : sequence
        The test probs of the model trained at each lag, in any order: each file records
        its lag (``lag_ps``).
    settings : KoopmanSettings or mapping
        The system's ``koopman`` config section (a mapping: :meth:`KoopmanSettings.from_mapping`).
    model : str
        Model name for the tables.
    n_states : int, optional
        The expected state count (None: the probs' own).
    progress : callable, optional
        Wraps the iteration over lags (e.g. a tqdm progress bar).
    tau_star_source : str
        Who set ``settings.tau_star_ps`` when it is set: ``"config"`` (the user), or
        e.g. ``"selection"`` (``gdyn select-koopman`` passes the selected lag), so the log
        and ``summary.json`` do not credit the config with a choice it did not make.
    temperatures_K : mapping, optional
        ``{trajectory: temperature_K}`` of a temperature series (gdyn.temperatures):
        ``kinetics.csv`` gets one block of rows per temperature.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (docs/contracts.md).
    """
    lags = [read_lag_ps(p) for p in probs_paths]
    labels = [lag_label(x) for x in lags]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise InputError(f"--probs: expected one file per lag, got {labels.count(twice[0])} "
                         f"at lag {twice[0]} (lag_ps recorded in the files)")
    pairs = sorted(zip(lags, (str(p) for p in probs_paths), strict=True))
    lags = [lg for lg, _ in pairs]
    paths = [p for _, p in pairs]
    opts = as_koopman_settings(settings)
    tau_config = opts.tau_star_on(lags)
    ci = opts.ci

    # Pass 1 (pooled, no CIs): the slowest resolved timescale over the grid fixes one
    # bootstrap block for every lag's timescales, so that the same resample is drawn at
    # every lag and their differences have bootstrap intervals (convergence).
    want = max(lags)
    for path in paths:
        data = load_probs(path)
        km = KoopmanModel.estimate(data, data.lag_ps, selection=opts.selection,
                                   estimator=opts.estimator)  # fmt: skip
        want = max(want, _slowest_resolved(km))
        del data
    ci_its = ci.with_block(want)

    results: list[LagResult] = []
    fits: list[tuple[KoopmanModel, CKTest]] = []
    sources: list[str] = []
    n_sets = traj_ids = None
    lag_paths: Iterable[Any] = list(zip(lags, paths, strict=True))
    for lag, path in progress(lag_paths) if progress else lag_paths:
        data = load_probs(path)
        expected = n_states or data.n_states
        if data.n_states != expected:
            raise InputError(
                f"{path}: key 'probs': expected {expected} states, got {data.n_states}"
            )
        n_states = data.n_states
        if n_sets is None:
            n_sets, traj_ids = data.n_sets, np.unique(data.traj)
        elif data.n_sets != n_sets:
            raise InputError(
                f"{path}: key 'probs': expected {n_sets} target sets like "
                f"{paths[0]}, got {data.n_sets}"
            )
        km = KoopmanModel.estimate(
            data, data.lag_ps, ci=ci_its, selection=opts.selection,
            estimator=opts.estimator,
        )  # fmt: skip
        steps, steps_source = ck_steps_for(km, data, opts)
        sources.append(steps_source)
        # The CK draws its own resamples (blocks at least as long as its horizon).
        ck = km.ck_test(data, steps, tolerance=opts.ck_tolerance, alpha=opts.ck_alpha,
                        ci=ci)  # fmt: skip
        res = LagResult.from_model(km)
        log.info(
            "%s: %d samples, %d surviving states %s, timescales %s ps, CI low %s, high %s; "
            "CK %s (%s)",
            lag_label(lag),
            res.n_samples,
            km.n_surviving,
            km.state_order[: km.n_surviving].tolist(),
            np.round(res.timescales, 4),
            np.round(res.ci_low, 4),
            np.round(res.ci_high, 4),
            "PASS" if ck.passed else "FAIL",
            ck.verdict.reason,
        )
        results.append(res)
        fits.append((km, ck))
        del data
    ci_n = 0 if fits[0][0].replicates is None else fits[0][0].replicates.n
    its = ImpliedTimescales(tuple(results))

    ck_ok = [bool(c.passed and not m.collapsed) for m, c in fits]
    auto = its.select_tau_star(ck_ok)
    auto_ps = None if auto.index is None else lags[auto.index]
    conv = its.select_tau_star()  # the timescale conditions alone (model selection)
    conv_ps = None if conv.index is None else lags[conv.index]
    disagrees = False
    if tau_config is not None:
        tau, source = tau_config, tau_star_source
        disagrees = auto_ps is None or not math.isclose(auto_ps, tau, rel_tol=1e-9)
        given = "set in config" if source == "config" else f"given by the {source}"
        reason = f"{given} (tau_star_ps = {tau:g}); automatic choice: " + (
            f"{auto_ps:g} ps, {auto.reason}" if auto_ps is not None else f"none, {auto.reason}"
        )
        tau_star: float | None = tau
    elif auto_ps is not None:
        tau, source, reason = auto_ps, "auto", auto.reason
        tau_star = tau
    else:
        # No tau*: the tables (and the analyses downstream) describe a stated lag instead.
        tau, source, tau_star = _fallback_lag(lags, its), "none", None
        reason = (
            f"{auto.reason}; no tau*: the tables describe {lag_label(tau)} (largest lag with a "
            "resolved, unflagged slowest process, else the smallest lag)"
        )
    log.info("tau* = %s (%s): %s", "none" if tau_star is None else lag_label(tau), source,
             reason)  # fmt: skip
    drift = its.drift(lags.index(tau))
    if drift is not None:
        log.info("slowest timescale from %s to %s: %+.4g ps (%+.1f %%), interval [%.4g, %.4g] "
                 "ps", lag_label(drift["from_ps"]), lag_label(drift["to_ps"]),
                 drift["change_ps"], 100 * drift["relative_change"], drift["ci_low_ps"],
                 drift["ci_high_ps"])  # fmt: skip

    k_star = lags.index(tau)
    tau_path = paths[k_star]
    # The file's own lag (equal to tau within 1e-6) labels the tau* tables, as it labels
    # that lag's rows of timescales.csv.
    km, ck = fits[k_star]
    sel = km.selection
    assert sel is not None
    sentence = sel.describe(km.state_order)
    log.info("tau* state order (model output index per state): %s", km.state_order.tolist())
    log.info("state selection: %s", sentence)
    log.info("CK at tau*: %s: %s", "PASS" if ck.passed else "FAIL", ck.verdict.reason)

    tables = {
        "timescales": its.to_frame(model),
        "ck": ck.to_frame(model),
        "eigen": km.eigen_frame(model),
        "populations": km.populations_frame(model),
        "kinetics": km.kinetics_frame(model),
        "replicates": replicates_table(model, n_states, km),
    }
    if temperatures_K:  # {trajectory: K}, given by the rule for a series
        by_t = models_by_temperature(load_probs(tau_path), temperatures_K, km, ci,
                                     opts.estimator)
        tables["kinetics"] = kinetics_by_temperature(by_t, km.state_order)
    outdir = Path(outdir)
    for name in KOOPMAN_TABLES:
        write_csv(outdir / f"{name}.csv", tables[name])
    flags = its.flags
    star_ts = timescales_from_eigenvalues(its.eigenvalues[k_star], tau)
    resolved = flags.resolved[k_star]
    pops = km.populations_frame(model)["population"].to_numpy(float)
    summary = {
        "model": model,
        "n_states": n_states,
        "tau_star_ps": tau_star,
        "tau_star_source": source,
        "tau_star_reason": reason,
        "tau_star_auto_ps": auto_ps,
        "tau_star_disagrees": disagrees,
        "its_converged_from_ps": conv_ps,
        "analysis_lag_ps": tau,
        "lags_ps": lags,
        "probs_test": tau_path,
        "timescales_ps": [_finite(x) for x in star_ts],
        "timescale_flags": flags.labels(k_star),
        "its_converged": bool(np.all(flags.converged[k_star][resolved])),
        # how far the slowest timescale still moves up to the last resolving lag
        "its_drift": None if drift is None else {k: _finite(v) for k, v in drift.items()},
        "populations": [_finite(x) for x in pops],
        "ci_method": ci.method,
        "ci_n": ci_n,
        "ci_seed": ci.seed,
        "ci_formula": ci.formula,
        "ci_level": ci.level,
        "ci_block_ps": _block_ps(km),
        "ci_block_rule": None if km.replicates is None else km.replicates.block_rule,
        "ck_block_ps": _block_ps(ck),
        "ck_block_rule": None if ck.replicates is None else ck.replicates.block_rule,
        "estimator": opts.estimator,
        "ck_steps": ck.steps,
        "ck_steps_source": sources[k_star],
        "ck_alpha": opts.ck_alpha,
        "ck_p_value": _finite(ck.verdict.p_value),
        "ck_tolerance": opts.ck_tolerance,
        "ck_max_abs_deviation": _finite(ck.max_deviation),
        "ck_pass": bool(ck.passed and not km.collapsed),
        "ck_worst": ck.worst(),
        "ck_reason": ck.verdict.reason,
        "ck_by_lag": [_lag_entry(m, c) for m, c in fits],
        "state_order": km.state_order.tolist(),
        "near_empty_states": km.near_empty_states,
        "n_surviving_states": km.n_surviving,
        "state_selection": sentence,
        "selection_thresholds": sel.thresholds(),
        "collapsed": km.collapsed,
        "collapse_reason": sel.collapse_reason,
        "vamp2": _finite(sel.vamp2),
        "n_test_trajectories": len(traj_ids),
        "n_target_sets": int(n_sets),
        "unconverged_models": unconverged_models(paths),
    }
    if summary["unconverged_models"]:
        log.warning("models that reached train.epochs still improving (their numbers may "
                    "move with more training): %s", ", ".join(summary["unconverged_models"]))
    write_json(outdir / "summary.json", summary)
    return summary
