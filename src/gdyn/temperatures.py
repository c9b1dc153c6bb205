"""Temperature series: a system whose trajectories were run at several temperatures (issue 25).

Two ways to declare one in the config:

* the embedded toy: ``simulate: {temperatures_K: [32, 64, 128], n_li: 8, ...}`` replaces
  ``temperature_K``; each temperature gets ``n_li`` Li simulated as a single-temperature toy
  does (same potential and friction: the calibration at 64 K is unchanged), named
  ``li0 .. li{n_li - 1}`` at the first temperature, ``li{n_li} ..`` at the second, and so on;
  each raw trajectory records its ``temperature_K`` in its npz;
* the user's own (or downloaded) files: ``files: {name: {path: ..., temperature_K: 300}}``;
  once one file has a temperature, every file of the system must have one.

The split applies to every trajectory as to any other system; one set of states is trained
on all temperatures pooled, and the Koopman stage estimates K, the kinetics and the
Arrhenius rates per temperature (:mod:`gdyn.koopman.temperature`); the conduction
analysis runs per temperature, at each trajectory's temperature
(:func:`gdyn.analysis.transport.conduction_by_temperature`). With ``train.per_temperature:
true`` the analysed model is also trained on each temperature alone and compared with the
pooled one (:mod:`gdyn.koopman.drift`). Pure functions of the config mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gdyn.errors import InputError
from gdyn.layout import toy_trajectory_name

__all__ = [
    "is_series", "series_problems", "split_simulate", "temperature_of", "temperatures",
    "toy_temperature_index", "trajectories_at",
]  # fmt: skip


def _toy_temperatures(system: Mapping[str, Any]) -> list[float] | None:
    temps = (system.get("simulate") or {}).get("temperatures_K")
    return None if temps is None else [float(t) for t in temps]


def split_simulate(simulate: Mapping[str, Any]) -> tuple[dict[str, Any], list[float] | None]:
    """The toy's ``simulate`` block without a series' ``temperatures_K``, and those
    temperatures (None when it is not a series): what the potential and the Langevin
    settings (:func:`gdyn.toy.parse_settings`) read, and the series."""
    raw = dict(simulate)
    temps = raw.pop("temperatures_K", None)
    return raw, None if temps is None else [float(t) for t in temps]


def is_series(system: Mapping[str, Any]) -> bool:
    """Whether the system declares a temperature series (either form)."""
    if system.get("source") == "simulate":
        return _toy_temperatures(system) is not None
    files = system.get("files") or {}
    return any(isinstance(f, Mapping) and "temperature_K" in f for f in files.values())


def toy_temperature_index(system: Mapping[str, Any], li: int) -> int:
    """Which temperature of ``simulate.temperatures_K`` toy Li ``li`` was run at."""
    return int(li) // int(system["simulate"]["n_li"])


def temperature_of(system: Mapping[str, Any]) -> dict[str, float]:
    """``{trajectory name: temperature_K}`` of a series (empty for a system that is not one).

    Raises
    ------
    InputError
        A file of a series without ``temperature_K`` (:func:`series_problems`).
    """
    if not is_series(system):
        return {}
    problems = series_problems("<system>", system)
    if problems:
        raise InputError(problems[0])
    temps = _toy_temperatures(system)
    if temps is not None:

        n_li = int(system["simulate"]["n_li"])
        return {toy_trajectory_name(i): temps[i // n_li] for i in range(n_li * len(temps))}
    return {name: float(f["temperature_K"]) for name, f in system["files"].items()}


def temperatures(system: Mapping[str, Any]) -> list[float]:
    """The distinct temperatures of a series, ascending (empty for a system that is not one)."""
    return sorted(set(temperature_of(system).values()))


def trajectories_at(system: Mapping[str, Any], temperature_K: float) -> list[str]:
    """The trajectories of a series run at ``temperature_K`` (in :func:`temperature_of`
    order; empty when none is)."""
    return [n for n, t in temperature_of(system).items() if t == float(temperature_K)]


def series_problems(name: str, system: Mapping[str, Any]) -> list[str]:
    """What is wrong with a system's temperature series, one line per problem naming its key
    path, expected and actual value (empty when the system is not a series or is fine)."""
    key = f"systems/{name}"
    out: list[str] = []
    temps = _toy_temperatures(system)
    sim = system.get("simulate") or {}
    if temps is not None:
        if "temperature_K" in sim:
            out.append(f"{key}/simulate/temperature_K: expected absent with temperatures_K "
                       f"(which replaces it), got {sim['temperature_K']!r}")  # fmt: skip
        if len(set(temps)) < 2:
            out.append(f"{key}/simulate/temperatures_K: expected at least two distinct "
                       f"temperatures, got {temps}")  # fmt: skip
    elif system.get("source") != "simulate" and is_series(system):
        files = system.get("files") or {}
        missing = [n for n, f in files.items() if "temperature_K" not in f]
        for n in missing:
            out.append(f"{key}/files/{n}/temperature_K: expected a temperature (K) as every "
                       "other file of this temperature series has, got none")  # fmt: skip
        got = {float(f["temperature_K"]) for f in files.values() if "temperature_K" in f}
        if not missing and len(got) < 2:
            out.append(f"{key}/files/*/temperature_K: expected at least two distinct "
                       f"temperatures in a series, got {sorted(got)}")  # fmt: skip
    conduction = system.get("conduction")
    if is_series(system) and isinstance(conduction, Mapping) and "temperature_K" in conduction:
        # Nernst-Einstein at each temperature of the series: conduction.csv has one block
        # of rows per temperature (gdyn.analysis.transport.conduction_by_temperature).
        out.append(f"{key}/conduction/temperature_K: expected absent for a temperature series "
                   "(the conduction is computed per temperature, at each trajectory's "
                   f"temperature), got {conduction['temperature_K']!r}")  # fmt: skip
    elif not is_series(system) and isinstance(conduction, Mapping) \
            and "temperature_K" not in conduction:
        out.append(f"{key}/conduction/temperature_K: expected the temperature (K) of the "
                   "Nernst-Einstein relation, got none")  # fmt: skip
    if is_series(system) and "fig5" in (system.get("figures") or []):
        out.append(f"{key}/figures: expected no fig5 for a temperature series (its "
                   "conduction.csv holds one block of rows per temperature; Fig. 5 draws "
                   "one temperature), got fig5")  # fmt: skip
    if (system.get("train") or {}).get("per_temperature") and not is_series(system):
        out.append(f"{key}/train/per_temperature: expected false for a system that is not a "
                   "temperature series (no simulate/temperatures_K and no "
                   "files/*/temperature_K), got true")  # fmt: skip
    return out
