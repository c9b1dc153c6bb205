"""Config access shared by the Snakefile and the CLI: trajectory names, splits, lag labels.

Lag times live in config in physical time (ps). They become path wildcards as ``{value}ps``
(``lag_label``) and frame counts in exactly one place (``lag_to_frames``).

:func:`validate` checks the schema and :func:`check` the meaning (lags on the frame grid,
lags and CK horizons inside the test windows, split windows, analysed elements and state
counts); the Snakefile calls both before the DAG is built, so ``snakemake -n`` already
rejects a bad config, naming the key path (``systems/<name>/<section>/<key>[i]``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gdyn.errors import InputError
from gdyn.layout import AUTO, PARTS, lag_label, parse_lag, raw, toy_trajectory_name
from gdyn.models import MODEL_KINDS
from gdyn.settings import SCHEMA_PATH, default
from gdyn.split import frame_window
from gdyn.temperatures import series_problems, temperature_of
from gdyn.trajectory import TrajectoryHeader, read_header

__all__ = [
    "PARTS",
    "SCHEMA_PATH",
    "analysed",
    "as_sequence",
    "check",
    "frame_interval_ps",
    "lag_label",
    "lag_to_frames",
    "lags_ps",
    "load_yaml",
    "model_state_counts",
    "parse_lag",
    "selection_candidates",
    "split_pieces",
    "trajectory_names",
    "validate",
]


def lag_to_frames(lag_ps: float, frame_interval_ps: float, rtol: float = 1e-6) -> int:
    """Number of frames in ``lag_ps``; the lag must be a whole multiple of the frame interval."""
    if frame_interval_ps <= 0 or not math.isfinite(frame_interval_ps):
        raise InputError(f"frame_interval_ps must be positive, got {frame_interval_ps!r}")
    ratio = lag_ps / frame_interval_ps
    frames = round(ratio)
    if frames < 1 or abs(ratio - frames) > rtol * max(1.0, ratio):
        raise InputError(
            f"lag {lag_ps:g} ps is not a positive whole multiple of the frame interval "
            f"{frame_interval_ps:g} ps (ratio {ratio:g})"
        )
    return int(frames)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (a mapping) with a clear error when it is not one."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def validate(config: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Validate a config mapping against the workflow schema (the same one Snakemake uses).

    Raises :class:`InputError` naming the offending key path.
    """
    import jsonschema

    schema = load_yaml(schema_path)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise InputError(f"config key '{where}': {err.message}")


def trajectory_names(system: Mapping[str, Any]) -> list[str]:
    """Raw trajectory names of one system (``results/raw/{system}/{name}.npz``)."""
    source = system["source"]
    if source == "simulate":
        sim = system["simulate"]
        n_li = int(sim["n_li"]) * len(sim.get("temperatures_K") or [None])  # gdyn.temperatures
        return [toy_trajectory_name(i) for i in range(n_li)]
    return list(system["files"].keys())


def split_pieces(system: Mapping[str, Any], part: str) -> dict[str, tuple[float, float]]:
    """Trajectories in ``part`` and the (start, stop) time fractions taken from each."""
    names = trajectory_names(system)
    pieces: dict[str, tuple[float, float]] = {}
    for piece in system["split"][part]:
        piece = {**default("split", part), **piece}
        sel = piece["trajectories"]
        if sel == "all":
            chosen = names
        elif isinstance(sel, Mapping):
            chosen = names[int(sel.get("from", 0)) : int(sel.get("to", len(names)))]
        else:
            unknown = [s for s in sel if s not in names]
            if unknown:
                raise InputError(
                    f"config key 'split/{part}/trajectories': unknown trajectory {unknown[0]!r}; "
                    f"known: {', '.join(names)}"
                )
            chosen = list(sel)
        for name in chosen:
            if name in pieces:
                raise InputError(
                    f"config key 'split/{part}': trajectory {name!r} appears in two pieces"
                )
            pieces[name] = (float(piece["start"]), float(piece["stop"]))
    return pieces


def lags_ps(system: Mapping[str, Any]) -> list[float]:
    """The system's lag grid in ps, sorted."""
    return sorted(float(x) for x in system["train"]["lags_ps"])


def model_state_counts(system: Mapping[str, Any]) -> dict[str, list[int]]:
    """``{model: [n_states, ...]}`` of the models trained for this system."""
    return {m: [int(s) for s in counts] for m, counts in system["train"]["models"].items()}


def analysed(system: Mapping[str, Any]) -> tuple[str, int | str]:
    """``(model, n_states)`` whose Koopman model feeds the structure and transport analyses.

    The system's ``koopman`` block: ``model`` (default ``gdynet``) and ``n_states``, an
    integer or ``"auto"`` (:data:`gdyn.layout.AUTO`: the state count chosen by
    ``gdyn select`` among ``train.models[model]``, whose Koopman outputs are in
    ``gdyn.layout.koopman_dir(system, model, "auto")``).
    """
    k = system.get("koopman") or {}
    if "n_states" not in k:
        raise InputError("config key 'koopman/n_states': missing (the analysed state count)")
    model = str(k.get("model", default("koopman", "model")))
    if k["n_states"] == AUTO:
        if not model_state_counts(system).get(model):
            raise InputError(
                f"config key 'train/models/{model}': expected the candidate state counts of "
                f"koopman/n_states: auto, got none"
            )
        return model, AUTO
    return model, int(k["n_states"])


def selection_candidates(system: Mapping[str, Any]) -> tuple[str, list[int]] | None:
    """``(model, state counts)`` among which ``gdyn select`` chooses, or None when the
    system needs no selection: ``koopman.n_states: auto``, or more than one state count
    of the analysed model kind under ``train.models`` (the selection is then reported,
    the configured count is still analysed)."""
    k = system.get("koopman") or {}
    model = str(k.get("model", default("koopman", "model")))
    counts = sorted(model_state_counts(system).get(model, []))
    if k.get("n_states") == AUTO or len(counts) > 1:
        return (model, counts) if counts else None
    return None


def frame_interval_ps(system: Mapping[str, Any]) -> float:
    """Physical time between stored frames of this system's trajectories (ps)."""
    return float(system["frame_interval_ps"])


def as_sequence(value: Any) -> Sequence[Any]:
    """``value`` as a list (a scalar becomes a one-element list)."""
    if isinstance(value, list | tuple):
        return value
    return [value]


# --------------------------------------------------------------------------------------
# The config's meaning (after the schema): `check`

# The fewest CK steps gdyn.koopman.analysis.ck_steps_for takes when the koopman block sets
# no ck_steps (its horizon rule caps the steps at what fits in half the test window)
MIN_CK_STEPS = 2
_RTOL = 1e-6


def check(config: Mapping[str, Any], root: str | Path = ".") -> None:
    """Check what a schema-valid config means, before any job runs.

    Per system: split windows (``0 <= start < stop <= 1``, known trajectories, train /
    val / test windows of one trajectory disjoint); every lag a whole number of frames and
    of ``frame_stride`` frames, and lags with distinct labels (``1ps``: they name model
    directories); every lag shorter than each test window and leaving at least two
    ``(t, t + lag)`` pairs on the ``frame_stride`` grid in every train, val and test
    window, and the CK horizon ``tau_star_ps x ck_steps`` shorter than each test window
    (window lengths from the ``simulate`` block, or the trajectory file's header when the
    file exists: local files at their ``path``, others in ``results/raw``; a downloaded
    file is checked from the next run on, and its training job checks its validation
    pieces before any epoch); the frame interval agreeing with the one a file stores; the
    elements of ``structure`` (rdf, charge, q3) present in the trajectories (when a file
    exists) and the charge integral's elements among the RDF's; ``tau_star_ps`` on the lag
    grid; ``koopman`` ``model`` and ``n_states`` among the trained models (``auto`` is
    valid when that model lists state counts). Files are read only as far as their headers;
    an unreadable one is left to the job that reads it.

    Parameters
    ----------
    config : mapping
        The whole workflow config (already schema-valid, :func:`validate`).
    root : path
        The working directory the ``results/`` and relative ``path`` entries are under.

    Raises
    ------
    InputError
        Every problem found, one per line, each starting with its key path, e.g.
        ``systems/toy/train/lags_ps[1] = 0.15: not a multiple of frame_interval_ps 0.1``.
    """
    problems: list[str] = []
    for name, system in (config.get("systems") or {}).items():
        problems += _SystemCheck(name, system, Path(root)).run()
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{len(problems)} problems in the config:\n  " + "\n  ".join(problems))


def _g(x: float) -> str:
    return f"{x:.6g}"


class _SystemCheck:
    """The semantic checks of one system (a class only to share the resolved facts)."""

    def __init__(self, name: str, system: Mapping[str, Any], root: Path) -> None:
        self.name, self.s, self.root = name, system, root
        self.key = f"systems/{name}"
        self.names = trajectory_names(system)
        self.problems: list[str] = []
        self.headers = self._headers()

    def fail(self, where: str, text: str) -> None:
        self.problems.append(f"{self.key}/{where}{text}")

    def run(self) -> list[str]:

        self.problems += series_problems(self.name, self.s)
        windows = self._split_windows()
        self._frame_interval_agrees()
        self._lags(windows)
        self._tau_star(windows)
        self._elements()
        self._koopman()
        self._per_temperature()
        return self.problems

    # ------------------------------------------------------------------ facts

    def _source(self, traj: str) -> Path:
        entry = (self.s.get("files") or {}).get(traj) or {}
        if self.s["source"] == "local" and "path" in entry:
            return self.root / str(entry["path"])
        return self.root / raw(self.name, traj)

    def _headers(self) -> dict[str, TrajectoryHeader]:
        out = {}
        for traj in self.names:
            path = self._source(traj)
            if path.is_file():
                try:
                    out[traj] = read_header(path)
                except InputError:
                    pass  # unreadable: the job that reads it fails with the reason
        return out

    def n_frames(self, traj: str) -> int | None:
        """Frames of one trajectory: from the simulate block (as gdyn.toy.md), else a file."""
        if self.s["source"] == "simulate" and "frame_interval_ps" in self.s:
            return round(float(self.s["simulate"]["duration_ps"]) / float(self.s["frame_interval_ps"]))
        h = self.headers.get(traj)
        return None if h is None else h.n_frames

    def interval(self, traj: str) -> tuple[float, str] | None:
        """(frame interval in ps, how it is known) of one trajectory, None if unknown."""
        if "frame_interval_ps" in self.s:
            fi = float(self.s["frame_interval_ps"])
            return fi, f"frame_interval_ps {_g(fi)}"
        n = self.n_frames(traj)
        if n is None or n < 2:
            return None
        fi = float(self.s["duration_ps"]) / (n - 1)
        return fi, (f"the frame interval {_g(fi)} ps of {traj} (duration_ps "
                    f"{_g(float(self.s['duration_ps']))} over {n} frames)")

    # ------------------------------------------------------------------ checks

    def _selection(self, sel: Any, where: str) -> list[str]:
        names = self.names
        if sel == "all":
            return list(names)
        if isinstance(sel, Mapping):
            lo, hi = int(sel.get("from", 0)), int(sel.get("to", len(names)))
            if hi > len(names):
                self.fail(f"{where}/trajectories/to", f" = {hi}: the system has only "
                          f"{len(names)} trajectories")
            if lo >= min(hi, len(names)):
                self.fail(f"{where}/trajectories", f" = {{from: {lo}, to: {hi}}}: selects no "
                          f"trajectory of {len(names)}")
            return names[lo:hi]
        unknown = [t for t in sel if t not in names]
        for t in unknown:
            i = list(sel).index(t)
            self.fail(f"{where}/trajectories[{i}]", f" = {t}: unknown trajectory; known: "
                      f"{', '.join(names)}")
        return [t for t in sel if t in names]

    def _split_windows(self) -> dict[str, list[tuple[str, str, float, float]]]:
        """{trajectory: [(label, part, start, stop)]} of the well-formed windows."""
        windows: dict[str, list[tuple[str, str, float, float]]] = {}
        for part in PARTS:
            for i, piece in enumerate(self.s["split"][part]):
                label = f"split/{part}[{i}]"
                piece = {**default("split", part), **piece}
                start, stop = float(piece["start"]), float(piece["stop"])
                ok = True
                for k, v in (("start", start), ("stop", stop)):
                    if not 0.0 <= v <= 1.0:
                        self.fail(f"{label}/{k}", f" = {_g(v)}: outside [0, 1] (a fraction of "
                                  "each trajectory's length)")
                        ok = False
                if start >= stop:
                    self.fail(label, f": start {_g(start)} >= stop {_g(stop)} (an empty window)")
                    ok = False
                chosen = self._selection(piece["trajectories"], label)
                if ok:
                    for t in chosen:
                        windows.setdefault(t, []).append((label, part, start, stop))
        clashes: dict[tuple[str, str], list[str]] = {}
        for t, ws in windows.items():
            for a, b in itertools.combinations(ws, 2):
                if a[1] == b[1] or (a[2] < b[3] and b[2] < a[3]):
                    clashes.setdefault((a[0], b[0]), []).append(t)
        for (la, lb), trajs in clashes.items():
            wa = next(w for w in windows[trajs[0]] if w[0] == la)
            wb = next(w for w in windows[trajs[0]] if w[0] == lb)
            shown = ", ".join(trajs[:3]) + (f" and {len(trajs) - 3} more" if len(trajs) > 3 else "")
            if wa[1] == wb[1]:
                self.fail(lb, f": trajectory {shown} also in {la} (one window per trajectory "
                          f"and part)")
            else:
                self.fail(lb, f" = [{_g(wb[2])}, {_g(wb[3])}) overlaps {la} = "
                          f"[{_g(wa[2])}, {_g(wa[3])}) on trajectory {shown} (train, val and "
                          "test must not share frames)")
        return windows

    def _frame_interval_agrees(self) -> None:
        if "frame_interval_ps" not in self.s:
            return
        fi = float(self.s["frame_interval_ps"])
        for h in self.headers.values():
            if h.frame_interval_ps is not None and not math.isclose(h.frame_interval_ps, fi,
                                                                    rel_tol=_RTOL):
                self.fail("frame_interval_ps", f" = {_g(fi)}: {h.path} stores "
                          f"frame_interval_ps = {_g(h.frame_interval_ps)}")
                return

    def _windows(self, windows: Mapping[str, Any], part: str = "test"):
        """(trajectory, label, frames, frame interval, first frame) of the known windows
        of ``part``."""
        for traj, ws in windows.items():
            n = self.n_frames(traj)
            fi = self.interval(traj)
            if n is None or fi is None:
                continue
            for label, p, start, stop in ws:
                if p == part:
                    lo, hi = frame_window(n, start, stop)
                    yield traj, label, hi - lo, fi[0], lo

    def _lags(self, windows: Mapping[str, Any]) -> None:
        train = self.s["train"]
        stride = int(train.get("frame_stride", default("train", "frame_stride")))
        labels: dict[str, int] = {}
        for i, lag in enumerate(float(x) for x in train["lags_ps"]):
            where = f"train/lags_ps[{i}]"
            # Lags become path labels (10ps): two lags with one label would share a model.
            label = lag_label(lag)
            if label in labels:
                self.fail(where, f" = {lag!r}: same label {label} as train/lags_ps"
                          f"[{labels[label]}] = {train['lags_ps'][labels[label]]!r} (lags "
                          "name the model directories: give distinct lags)")
                continue
            labels[label] = i
            bad = False
            for traj in self.names:
                known = self.interval(traj)
                if known is None:
                    continue
                fi, what = known
                ratio = lag / fi
                frames = round(ratio)
                if frames < 1 or abs(ratio - frames) > _RTOL * max(1.0, ratio):
                    self.fail(where, f" = {_g(lag)}: not a multiple of {what}")
                    bad = True
                elif frames % stride:
                    self.fail(where, f" = {_g(lag)}: not a multiple of train/frame_stride = "
                              f"{stride} frames ({_g(stride * fi)} ps)")
                    bad = True
                if bad or "frame_interval_ps" in self.s:
                    break  # one interval for every trajectory: one message per lag
            if bad:
                continue
            short = self._shortest(windows, "test", lag)
            if short is not None:
                traj, label, n, fi = short
                self.fail(where, f" = {_g(lag)}: longer than the test window of {traj} "
                          f"({label}: {n} frames, {_g((n - 1) * fi)} ps); no (t, t + lag) pair "
                          "fits in it")
            for part in PARTS:
                few = self._fewest_pairs(windows, part, lag, stride)
                if few is not None and not (part == "test" and short is not None):
                    traj, label, n, fi, pairs = few
                    on = f" on the frame_stride {stride} grid" if stride > 1 else ""
                    self.fail(where, f" = {_g(lag)}: leaves {pairs} (t, t + lag) pair"
                              f"{'' if pairs == 1 else 's'}{on} in the {part} window of {traj} "
                              f"({label}: {n} frames, {_g((n - 1) * fi)} ps); every window "
                              "needs at least 2 (VAMP-2 and the Koopman covariances are "
                              "estimated from them): lengthen the window or shorten the lag")

    def _fewest_pairs(self, windows: Mapping[str, Any], part: str, lag_ps: float,
                      stride: int):
        """The ``part`` window with the fewest lag pairs, when under 2, else None.

        Pairs are counted as training forms them (gdyn.train.batches.PairIndex): on the
        grid of raw frames that are multiples of ``stride``, within one window."""
        worst = None
        for traj, label, n, fi, lo in self._windows(windows, part):
            first = -(-lo // stride) * stride
            grid = len(range(first, lo + n, stride))
            pairs = max(0, grid - round(lag_ps / fi) // stride)
            if pairs < 2 and (worst is None or pairs < worst[4]):
                worst = (traj, label, n, fi, pairs)
        return worst

    def _shortest(self, windows: Mapping[str, Any], part: str, span_ps: float):
        """The shortest known ``part`` window that ``span_ps`` does not fit in, else None."""
        worst = None
        for traj, label, n, fi, _ in self._windows(windows, part):
            if round(span_ps / fi) >= n and (worst is None or n < worst[2]):
                worst = (traj, label, n, fi)
        return worst

    def _tau_star(self, windows: Mapping[str, Any]) -> None:
        k = self.s.get("koopman") or {}
        lags = [float(x) for x in self.s["train"]["lags_ps"]]
        tau = k.get("tau_star_ps")
        steps = int(k.get("ck_steps") or MIN_CK_STEPS)
        if tau is None:
            tau, known = min(lags), False  # the automatic tau* is at least the smallest lag
        else:
            tau, known = float(tau), True
            if not any(math.isclose(tau, x, rel_tol=_RTOL) for x in lags):
                self.fail("koopman/tau_star_ps", f" = {_g(tau)}: not one of train/lags_ps "
                          f"({', '.join(_g(x) for x in lags)})")
                return
        short = self._shortest(windows, "test", tau * steps)
        if short is not None:
            traj, label, n, fi = short
            what = "tau_star_ps" if known else "the smallest lag (tau_star_ps is automatic)"
            self.fail("koopman/ck_steps", f" = {steps}: the CK horizon {what} x ck_steps = "
                      f"{_g(tau * steps)} ps is longer than the test window of {traj} "
                      f"({label}: {n} frames, {_g((n - 1) * fi)} ps)")

    def _elements(self) -> None:
        st = self.s.get("structure") or {}
        wanted: list[tuple[str, str]] = []  # (key path, symbol)
        rdf = st.get("rdf") or {}
        wanted += [(f"structure/rdf/elements[{i}]", e) for i, e in enumerate(rdf.get("elements", []))]
        charge = st.get("charge")
        if charge:
            wanted.append(("structure/charge/center", charge["center"]))
            ref = charge.get("reference", default("structure", "charge", "reference"))
            wanted.append(("structure/charge/reference", ref))
            wanted += [(f"structure/charge/charges/{e}", e) for e in charge.get("charges", {})]
            in_rdf = set(rdf.get("elements", []))
            for where, e in [("structure/charge/center", charge["center"])] + [
                (f"structure/charge/charges/{x}", x) for x in charge.get("charges", {}) if x != ref
            ]:
                if e not in in_rdf:
                    self.fail(where, f" = {e}: not in structure/rdf/elements "
                              f"({', '.join(rdf.get('elements', [])) or 'no rdf block'}); the "
                              "charge integral reads its RDF")
        if st.get("q3") is not None:
            element = st["q3"].get("element", default("structure", "q3", "element"))
            wanted.append(("structure/q3/element", element))
        if not wanted or not self.headers:
            return
        from ase.data import atomic_numbers, chemical_symbols

        present: set[int] = set()
        for h in self.headers.values():
            present.update(int(z) for z in set(h.atom_types.tolist()))
        have = ", ".join(chemical_symbols[z] if 0 <= z < len(chemical_symbols) else str(z)
                         for z in sorted(present))
        paths = [str(h.path) for h in self.headers.values()]
        shown = paths[0] + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
        for where, sym in wanted:
            z = atomic_numbers.get(sym)
            if z is None or z not in present:
                self.fail(where, f" = {sym}: the system has no {sym} atoms (it has {have}; "
                          f"read from {shown})")

    def _koopman(self) -> None:
        k = self.s.get("koopman") or {}
        models = self.s["train"]["models"]
        for kind in models:
            if kind not in MODEL_KINDS:
                self.fail(f"train/models/{kind}", f": unknown model kind (gdyn.models.REGISTRY "
                          f"has {', '.join(MODEL_KINDS)})")
        model = str(k.get("model", default("koopman", "model")))
        if model not in models:
            self.fail("koopman/model", f" = {model}: not trained (train/models lists "
                      f"{', '.join(models)})")
            return
        n = k.get("n_states")
        counts = [int(c) for c in models[model]]
        if n == "auto" or n is None:
            return  # `auto` picks among the trained counts (the model lists some)
        if int(n) not in counts:
            self.fail("koopman/n_states", f" = {n}: no trained model provides it "
                      f"(train/models/{model} = {counts})")

    def _per_temperature(self) -> None:
        """train.per_temperature (a series: gdyn.temperatures checks that) trains on each
        temperature's pieces alone: every temperature needs train, val and test pieces."""
        if not (self.s["train"].get("per_temperature") and not series_problems(self.name, self.s)):
            return
        temps = temperature_of(self.s)
        if not temps:
            return
        for part in PARTS:
            try:
                have = {temps[t] for t in split_pieces(self.s, part) if t in temps}
            except InputError:
                return  # a bad split: reported by the split checks
            for t in sorted(set(temps.values()) - have):
                self.fail("train/per_temperature", f": expected {part} pieces at every "
                          f"temperature (the model is trained on each alone), got none at "
                          f"{_g(t)} K in split/{part}")
