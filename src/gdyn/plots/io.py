"""Readers of the CSV (and extxyz) contracts the figures and tables draw (docs/contracts.md).

Each reader checks what the contract promises and raises :class:`InputError` naming the
file, so a malformed input fails with its name rather than deep inside a figure builder.
Shared by the figures, the tables and the paper comparison (:mod:`gdyn.compare`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdyn.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

# Columns each input must have (docs/contracts.md); extra columns are ignored.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "timescales": ("lag_ps", "process", "timescale_ps", "ci_low_ps", "ci_high_ps"),
    "ck": (
        "tau_ps",
        "lag_ps",
        "from_state",
        "to_state",
        "predicted",
        "predicted_ci_low",
        "predicted_ci_high",
        "estimated",
        "estimated_ci_low",
        "estimated_ci_high",
    ),
    "eigen": ("tau_ps", "process", "timescale_ps", "state", "component", "ci_low", "ci_high"),
    "populations": ("tau_ps", "state", "population", "ci_low", "ci_high"),
    "replicates": ("tau_ps", "replicate", "from_state", "to_state", "value"),
    "energy": ("path_coordinate_A", "energy_meV", "site"),
    "positions": ("x_frac", "y_frac", "z_frac", "p0"),
    "profile": ("state", "axis", "position_A", "density"),
    "charge": ("state", "r_A", "charge", "r_star_A", "charge_at_r_star"),
    "conduction": ("from_state", "to_state", "percent", "ci_low_percent", "ci_high_percent"),
    "q3": ("state", "q3", "density"),
    "rdf": ("state", "element", "r_A", "g", "n_coord"),
    "diffusion": (
        "from_state",
        "to_state",
        "tau_ps",
        "D_cm2_per_s",
        "ci_low_cm2_per_s",
        "ci_high_cm2_per_s",
    ),
}

# Input names of each figure/table (the keys of --inputs); workflow/rules/figures.smk
# builds the same names.


def read_table(path: str | Path, kind: str) -> pd.DataFrame:
    """Read one analysis CSV of type ``kind`` and check it has the contract's columns."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected a {kind} CSV)") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a readable {kind} CSV: {exc}") from None
    missing = [c for c in TABLE_COLUMNS[kind] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: {kind} CSV: expected columns {', '.join(TABLE_COLUMNS[kind])}; "
            f"missing {', '.join(missing)} (got {', '.join(map(str, frame.columns))})"
        )
    if frame.empty:
        raise InputError(f"{path}: {kind} CSV: expected at least one row, got none")
    return frame


def read_summary(path: str | Path) -> dict[str, Any]:
    """A Koopman ``summary.json`` (docs/contracts.md), checked for the keys figures read."""
    import json

    try:
        summary = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected a Koopman summary.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(summary, dict) or "tau_star_ps" not in summary:
        got = sorted(summary) if isinstance(summary, dict) else type(summary).__name__
        raise InputError(f"{path}: Koopman summary: expected key 'tau_star_ps', got {got}")
    return summary


def _single_tau(frame: pd.DataFrame, path: str | Path, kind: str) -> float:
    """The one lag tau* a CK / eigen table is computed at."""
    taus = sorted(set(frame["tau_ps"].astype(float)))
    if len(taus) != 1:
        raise InputError(
            f"{path}: {kind} CSV: column 'tau_ps': expected one value (tau*), got {taus}"
        )
    return taus[0]


def _require(inputs: Mapping[str, str], names: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InputError(
            f"--inputs of {what}: expected keys {', '.join(names)}; missing {', '.join(missing)}"
        )


def _states(frame: pd.DataFrame, column: str = "state") -> list[int]:
    return sorted(int(s) for s in set(frame[column]))


def charge_per_state(charge: pd.DataFrame, path: str | Path = "charge.csv") -> pd.DataFrame:
    """One row per state: r* and the charge integral at r* (Supp. Table 1)."""
    import pandas as pd

    rows = []
    for s in _states(charge):
        g = charge[charge["state"] == s]
        r_star = g["r_star_A"].to_numpy(float)
        q_star = g["charge_at_r_star"].to_numpy(float)
        if np.ptp(r_star) > 1e-9 or np.ptp(q_star) > 1e-9:
            raise InputError(
                f"{path}: state {s}: columns 'r_star_A', 'charge_at_r_star': expected one value "
                f"per state, got {sorted(set(r_star))[:3]} / {sorted(set(q_star))[:3]}"
            )
        rows.append({"state": s, "r_star_A": r_star[0], "charge_e": q_star[0]})
    return pd.DataFrame(rows)


def read_snapshot(path: str | Path) -> Any:
    """The snapshot frame (ase.Atoms) with per-atom ``state`` and ``state_prob_<i>``."""
    from ase.io import read

    try:
        atoms = read(str(path), format="extxyz", index=0)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected the snapshot extxyz)") from None
    except Exception as exc:  # ase raises many types for a malformed file
        raise InputError(f"{path}: not a readable extended XYZ file: {exc}") from None
    if "state" not in atoms.arrays or not any(k.startswith("state_prob_") for k in atoms.arrays):
        raise InputError(
            f"{path}: expected per-atom properties 'state' and 'state_prob_<i>', "
            f"got {', '.join(sorted(atoms.arrays))}"
        )
    return atoms


def read_representative(path: str | Path) -> list[Any]:
    """The representative configurations (ase.Atoms, frame i = state i) of
    ``representative.extxyz`` with their ``shell`` / ``target`` flags and ``state`` info."""
    from ase.io import read

    try:
        frames = read(str(path), format="extxyz", index=":")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected representative.extxyz)") from None
    except Exception as exc:  # ase raises many types for a malformed file
        raise InputError(f"{path}: not a readable extended XYZ file: {exc}") from None
    if not frames:
        raise InputError(f"{path}: expected one frame per state, got none")
    for i, atoms in enumerate(frames):
        missing = [k for k in ("shell", "target") if k not in atoms.arrays]
        if missing or "state" not in atoms.info or "probability" not in atoms.info:
            raise InputError(
                f"{path}: frame {i}: expected per-atom 'shell', 'target' and info 'state', "
                f"'probability', got arrays {', '.join(sorted(atoms.arrays))} and info "
                f"{', '.join(sorted(atoms.info))}"
            )
        if int(atoms.info["state"]) != i:
            raise InputError(f"{path}: frame {i}: info 'state': expected {i}, "
                             f"got {atoms.info['state']}")
        if not (np.asarray(atoms.arrays["target"]) > 0).any():
            raise InputError(f"{path}: frame {i}: per-atom 'target': expected at least one "
                             "target atom, got none")
    return frames
