"""Charge integral of each state within its first solvation shell (Supplementary Note 3).

Charge_i(r) = q_ref + sum_A q_A n_{i,A}(r) (Supp. Note 3, Eq. 3) from the coordination
numbers of ``rdf.csv``, read at r* = mu + 3 sigma of a Gaussian fitted to the first peak of
the centre element's RDF (or a configured r*).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gdyn.analysis.rdf import first_peak_index, running_mean
from gdyn.errors import InputError
from gdyn.settings import default, with_defaults

log = logging.getLogger(__name__)

RDF_COLUMNS = ("state", "element", "r_A", "g", "n_coord")


def gaussian(r: np.ndarray, amplitude: float, mu: float, sigma: float) -> np.ndarray:
    """a exp(-(r - mu)^2 / (2 sigma^2))."""
    return amplitude * np.exp(-0.5 * ((r - mu) / sigma) ** 2)


def fit_first_peak(r: np.ndarray, g: np.ndarray) -> tuple[float, float, float]:
    """(amplitude, mu, sigma) of a Gaussian least-squares fit to the first peak of g.

    The fit window runs from the minimum (or zero) before the peak to the first minimum
    after it, so the rest of the RDF does not pull the fit.
    """
    from scipy.optimize import curve_fit

    peak = first_peak_index(g)
    if peak is None:
        raise ValueError("g has no peak")
    gs = running_mean(np.nan_to_num(g), 3)
    lo = peak
    while lo > 0 and gs[lo - 1] <= gs[lo] and gs[lo - 1] > 0:
        lo -= 1
    hi = peak
    while hi < gs.size - 1 and gs[hi + 1] <= gs[hi] and gs[hi] > 0:
        hi += 1
    sel = slice(lo, hi + 1)
    x, y = r[sel], np.nan_to_num(g[sel])
    wsum = y.sum()
    mu0 = float((x * y).sum() / wsum) if wsum > 0 else float(r[peak])
    sd0 = float(np.sqrt(max((((x - mu0) ** 2) * y).sum() / wsum, (r[1] - r[0]) ** 2)))
    if x.size < 3:
        return float(g[peak]), mu0, sd0
    try:
        (a, mu, sd), _ = curve_fit(gaussian, x, y, p0=(float(g[peak]), mu0, sd0), maxfev=10000)
    except RuntimeError:
        log.warning("Gaussian fit did not converge; using the peak's moments")
        return float(g[peak]), mu0, sd0
    return float(a), float(mu), float(abs(sd))


def charge_curve(
    n_coord: dict[str, np.ndarray], charges: dict[str, float], reference_charge: float
) -> np.ndarray:
    """Charge_i(r) = q_ref + sum_A q_A n_{i,A}(r) (Supp. Note 3, Eq. 3).

    The paper writes the integrals as int g 4 pi r^2 dr; with g normalised by the number
    density that integral is the coordination number n_A(r) = int rho_A g_A 4 pi r^2 dr,
    which is what is summed here (for PEO: 1 - n_N(r) + n_Li(r)).
    """
    out = np.full_like(next(iter(n_coord.values())), float(reference_charge), dtype=np.float64)
    for sym, q in charges.items():
        if sym in n_coord:
            out = out + float(q) * n_coord[sym]
    return out


def charge_integral(
    rdf_frame: Any,
    center: str,
    charges: Mapping[str, float],
    reference: str = default("structure", "charge", "reference"),
    r_star_A: float | None = None,
    reference_charge: float | None = None,
    where: str = "rdf_frame",
) -> Any:
    """Charge integral of each state (Supp. Note 3) from a state-weighted RDF table.

    Parameters
    ----------
    rdf_frame : pandas.DataFrame
        The ``rdf.csv`` table (:func:`gdyn.analysis.state_weighted_rdf`); it must hold the
        curves of ``center`` and of every charged element.
    center : str
        Element whose first RDF peak sets the shell edge r* = mu + 3 sigma (Gaussian fit).
    charges : mapping
        Element symbol -> charge (e), e.g. ``{"Li": 1, "N": -1}``.
    reference : str
        Element of the targets; its own charge starts the integral.
    r_star_A : float, optional
        Fixed shell edge for every state instead of the fit.
    reference_charge : float, optional
        The reference's own charge (default ``charges[reference]``, else 0).
    where : str
        Name of the table in error messages (the CLI passes the file name).

    Returns
    -------
    pandas.DataFrame
        The ``charge.csv`` table: state, r_A, charge, r_star_A, charge_at_r_star.
    """
    import pandas as pd

    rdf = rdf_frame
    charges = {str(k): float(v) for k, v in charges.items()}
    q_ref = float(reference_charge if reference_charge is not None
                  else charges.get(reference, 0.0))
    present = set(rdf["element"].unique())
    need = [center, *[s for s in charges if s != reference or s in present]]
    missing = [s for s in need if s not in present]
    if missing:
        raise InputError(
            f"{where}: column 'element': expected an RDF of {missing[0]} (structure/rdf/"
            f"elements must include the charge centre and every charged element), got "
            f"{', '.join(sorted(present))}"
        )
    out = []
    for state, grp in rdf.groupby("state", sort=True):
        curves = {e: g.sort_values("r_A") for e, g in grp.groupby("element")}
        r = curves[center]["r_A"].to_numpy()
        if r_star_A is not None:
            r_star = float(r_star_A)
        else:
            try:
                _, mu, sd = fit_first_peak(r, curves[center]["g"].to_numpy())
            except ValueError:
                log.warning("state %s: no %s peak; r* = r_max", state, center)
                mu, sd = float(r[-1]), 0.0
            r_star = mu + 3.0 * sd
            log.info("state %s: %s peak mu = %.3f A, sigma = %.3f A, r* = %.3f A",
                     state, center, mu, sd, r_star)
        n_by = {e: np.interp(r, c["r_A"].to_numpy(), c["n_coord"].to_numpy())
                for e, c in curves.items()}
        q = charge_curve(n_by, charges, q_ref)
        # n(0) = 0: the curve starts at the reference's own charge.
        q_star = float(np.interp(r_star, np.r_[0.0, r], np.r_[q_ref, q]))
        if r_star > r[-1]:
            log.warning("state %s: r* = %.3f A beyond r_max = %.3f A; charge at r_max used",
                        state, r_star, r[-1])
        out.append(pd.DataFrame({"state": int(state), "r_A": r, "charge": q,
                                 "r_star_A": r_star, "charge_at_r_star": q_star}))
    return pd.concat(out, ignore_index=True)


def charge_table(rdf: Any, settings: dict[str, Any], where: str) -> Any:
    """charge.csv rows (state, r_A, charge, r_star_A, charge_at_r_star) from rdf.csv and
    the ``structure/charge`` settings (center, charges, reference, reference_charge,
    r_star_A)."""
    settings = with_defaults("structure", {"charge": settings})["charge"]
    return charge_integral(rdf, settings["center"], settings["charges"],
                           reference=settings["reference"], r_star_A=settings.get("r_star_A"),
                           reference_charge=settings.get("reference_charge"), where=where)


def read_rdf_csv(path: Path) -> Any:
    """rdf.csv as a DataFrame, its columns checked."""
    import pandas as pd

    try:
        rdf = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    need = set(RDF_COLUMNS)
    if not need <= set(rdf.columns):
        raise InputError(f"{path}: expected columns {sorted(need)}, got {list(rdf.columns)}")
    return rdf
