"""Transport of the learned states: transition MSDs, D_ij and cluster Nernst-Einstein shares.

:func:`conduction` (``gdyn conduction DIFFUSION.csv CONDUCTION.csv``) implements Methods
Eqs. 13-16:

* E[d^2(t) | i -> j] = sum_t' d^2(t', t'+t) p_i(t') p_j(t'+t) / sum_t' p_i(t') p_j(t'+t)
  (Eq. 13), summed over every target set and every frame pair within one trajectory, with
  displacements of the set centre unwrapped across periodic boundaries;
* D_ij(tau) = (1/6) dE/dt at t = tau* (Eq. 14). The derivative is the least-squares slope
  of E over ``msd_points`` lags spread evenly over [tau*(1 - w), tau*(1 + w)],
  w = ``msd_window``: a symmetric window, so curvature of E biases the slope only at
  second order in w;
* sigma_ij = e^2 N / (V k_B T) pi_i z_ij K_ij(tau*) D_ij(tau*) (Eq. 15) and the shares
  sigma_ij / sum sigma (Eq. 16), with K = C00^-1 C0t and pi its stationary distribution,
  both from the same tau* probabilities (pairs within one trajectory), and
  z_ij = (z_i + z_j) / 2 from charge.csv (``charge_at_r_star``) or the configured charge
  of the target atoms.

N / V is the number of target sets per cell volume of each test trajectory, averaged over
frames and trajectories. For the toy system every Li is simulated alone in its own
5-atom cell (Li-Li interactions off), so N / V = 1 / a^3: the conductivity of a lattice
holding one non-interacting Li per cubic cell.

Confidence intervals come from the Koopman uncertainty engine
(:mod:`gdyn.koopman.uncertainty`, the ``koopman.ci`` block read by the same parser): the
(frame, target set) starts of the pairs are summed per (unit, target set), units being
the engine's bootstrap blocks of each test trajectory (default; the block of the Koopman
summary's ``ci_block_ps``) or its CI groups (``chunks``, ``trajectories``,
``target_subsets``); every quantity is recomputed on each replicate (a resample, or one
group) and the interval is the engine's: percentile over the bootstrap, or Student-t over
the groups centred on the pooled estimate (so it always brackets it).

A temperature series (:mod:`gdyn.temperatures`) has no single temperature:
:func:`conduction_by_temperature` groups the test pieces by their trajectory's temperature
and computes everything above on each group alone (its own K, pi, D, N / V, intervals and
Nernst-Einstein conversion at that temperature), one block of rows per temperature with a
first column ``temperature_K``.

The module is ``transport``, not ``conduction``: ``gdyn.analysis.conduction`` is the API
function, and a submodule of that name would shadow it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdyn.analysis.geometry import minimum_image, set_centres
from gdyn.analysis.inputs import Piece, as_pieces
from gdyn.config import lag_to_frames
from gdyn.errors import InputError
from gdyn.koopman import Replicates, koopman_matrix, parse_ci, spectrum, weighted_sums
from gdyn.settings import default
from gdyn.trajectory import Trajectory

log = logging.getLogger(__name__)

ELEMENTARY_CHARGE_C = 1.602176634e-19
BOLTZMANN_J_PER_K = 1.380649e-23
A2_PER_PS_TO_CM2_PER_S = 1e-4  # 1 A^2/ps = 1e-16 cm^2 / 1e-12 s


def unwrap(positions: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """Continuous trajectory (F, ..., 3) from wrapped positions: each frame-to-frame step
    is taken at its minimum image in that frame's cell (exact while a step is shorter than
    half the smallest plane spacing)."""
    x = np.asarray(positions, dtype=np.float64)
    lat = np.asarray(lattices, dtype=np.float64)
    lat = lat.reshape(lat.shape[0], *([1] * (x.ndim - 2)), 3, 3)
    steps = minimum_image(np.diff(x, axis=0), lat[1:])
    return np.concatenate([x[:1], x[:1] + np.cumsum(steps, axis=0)], axis=0)


@dataclass
class TransitionSums:
    """Per group: Eq. 13 numerators/denominators at each lag, and C00, C0t at tau*."""

    num: np.ndarray  # (G, n_lags, S, S): sum d^2 p_i(t') p_j(t'+t)
    den: np.ndarray  # (G, n_lags, S, S): sum p_i(t') p_j(t'+t)
    c00: np.ndarray  # (G, S, S)
    c0t: np.ndarray  # (G, S, S)

    @classmethod
    def zeros(cls, n_groups: int, n_lags: int, n_states: int) -> TransitionSums:
        """All-zero sums."""
        s = n_states
        return cls(np.zeros((n_groups, n_lags, s, s)), np.zeros((n_groups, n_lags, s, s)),
                   np.zeros((n_groups, s, s)), np.zeros((n_groups, s, s)))

    def total(self) -> TransitionSums:
        """Sums over all groups (a single group)."""
        return TransitionSums(*(a.sum(axis=0, keepdims=True)
                                for a in (self.num, self.den, self.c00, self.c0t)))

    def group(self, g: int) -> TransitionSums:
        """One group's sums."""
        return TransitionSums(*(a[g : g + 1] for a in (self.num, self.den, self.c00, self.c0t)))


def accumulate(
    sums: TransitionSums, x: np.ndarray, probs: np.ndarray, lags: Sequence[int], tau: int,
    groups: np.ndarray,
) -> None:
    """Add one trajectory to ``sums``.

    ``x`` (F, n, 3) unwrapped centres, ``probs`` (F, n, S) with NaN rows for unscored
    frames, ``lags`` frame lags of the MSD, ``tau`` the Koopman lag in frames, ``groups``
    (F, n) the cell (engine unit x target set, or group) of a pair starting at (frame, set).
    """
    valid = np.isfinite(probs).all(axis=2)
    # Unscored rows get zero weight, so they drop out of every product below.
    w = np.where(valid[..., None], probs, 0.0)
    n_states = w.shape[2]
    present = np.unique(groups)
    for k, lag in enumerate([*lags, tau]):
        if lag >= x.shape[0]:
            continue
        p0, pt = w[:-lag], w[lag:]
        if k < len(lags):
            dx = x[lag:] - x[:-lag]
            a = p0 * np.einsum("tsk,tsk->ts", dx, dx)[..., None]
        else:
            a = p0 * valid[lag:, :, None]  # C00 only over pairs whose end is scored too
        g = groups[:-lag].reshape(-1)
        aa, bb, cc = (v.reshape(-1, n_states) for v in (a, pt, p0))
        if present.size == 1:
            gi = int(present[0])
            if k < len(lags):
                sums.num[gi, k] += aa.T @ bb
                sums.den[gi, k] += cc.T @ bb
            else:
                sums.c0t[gi] += cc.T @ bb
                sums.c00[gi] += aa.T @ cc
            continue
        # Per-cell outer products by bincount: one pass per state pair, whatever the
        # number of cells (bootstrap blocks x target sets can be thousands).
        n_cells = sums.num.shape[0]
        for i in range(n_states):
            for j in range(n_states):
                if k < len(lags):
                    sums.num[:, k, i, j] += np.bincount(g, aa[:, i] * bb[:, j], n_cells)
                    sums.den[:, k, i, j] += np.bincount(g, cc[:, i] * bb[:, j], n_cells)
                else:
                    sums.c0t[:, i, j] += np.bincount(g, cc[:, i] * bb[:, j], n_cells)
                    sums.c00[:, i, j] += np.bincount(g, aa[:, i] * cc[:, j], n_cells)


def transition_msd(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """E[d^2(t) | i -> j] (Eq. 13); NaN where the transition never occurs."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def local_slope(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y (n_t, ...) against t (n_t,) along the first axis."""
    tc = t - t.mean()
    yc = y - y.mean(axis=0)
    return np.tensordot(tc, yc, axes=(0, 0)) / float(tc @ tc)


def msd_lags(tau_frames: int, window: float, n_points: int) -> list[int]:
    """Distinct frame lags spread evenly over [tau (1 - w), tau (1 + w)], at least 1."""
    lo = max(1, round(tau_frames * (1.0 - window)))
    hi = max(lo + 1, round(tau_frames * (1.0 + window)))
    return sorted({int(v) for v in np.rint(np.linspace(lo, hi, n_points))})


def nernst_einstein(
    pi: np.ndarray, k: np.ndarray, d_a2_per_ps: np.ndarray, z: np.ndarray,
    number_density_a3: float, temperature_k: float,
) -> np.ndarray:
    """sigma_ij in S/m (Eq. 15) from D_ij in A^2/ps, N/V in A^-3 and T in K."""
    prefactor = (ELEMENTARY_CHARGE_C**2 * number_density_a3 * 1e30
                 / (BOLTZMANN_J_PER_K * temperature_k))
    return prefactor * pi[:, None] * z * k * (d_a2_per_ps * 1e-8)  # A^2/ps -> m^2/s


@dataclass
class Transport:
    """Eqs. 13-16 from one set of sums."""

    pi: np.ndarray  # (S,)
    k: np.ndarray  # (S, S)
    d: np.ndarray  # (S, S) A^2/ps
    sigma: np.ndarray  # (S, S) S/m
    percent: np.ndarray  # (S, S)


def transport(
    sums: TransitionSums, lags_ps: np.ndarray, z_state: np.ndarray, number_density_a3: float,
    temperature_k: float,
) -> Transport:
    """pi, K, D, sigma and percentages from single-group sums."""
    msd = transition_msd(sums.num[0], sums.den[0])  # (n_lags, S, S)
    d = local_slope(np.asarray(lags_ps, dtype=np.float64), msd) / 6.0
    k = koopman_matrix(sums.c00[0], sums.c0t[0])
    pi = spectrum(k).stationary
    z = 0.5 * (z_state[:, None] + z_state[None, :])
    sigma = nernst_einstein(pi, k, d, z, number_density_a3, temperature_k)
    total = np.nansum(sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = 100.0 * sigma / total
    return Transport(pi, k, d, sigma, percent)


def assign_cells(
    pieces: Sequence[Piece], ci: Mapping[str, Any] | None, block_ps: float | None = None,
    where: str = "--koopman-settings: key 'ci",
) -> tuple[list[np.ndarray], Replicates]:
    """Per piece the (F, n) cell of every (frame, target set) and the engine's replicates.

    The cell is ``unit * n_sets + set`` (units: the engine's bootstrap blocks of each
    piece, ``block_ps`` long by default, or its CI groups' row patterns).
    """
    settings = parse_ci(ci, where)  # None: the schema's defaults
    sizes = {pc.target_sets.shape[0] for pc in pieces}
    if len(sizes) != 1:
        raise InputError(f"test trajectories: expected the same number of target sets in "
                         f"every trajectory, got {sorted(sizes)}")
    n_sets = sizes.pop()
    traj = np.concatenate([np.full(pc.n_frames, i) for i, pc in enumerate(pieces)])
    frame = np.concatenate([np.arange(pc.n_frames) for pc in pieces])
    fi = pieces[0].frame_interval_ps
    reps = settings.replicates(traj, frame, n_sets, fi if math.isfinite(fi) else 1.0,
                               block_ps)  # fmt: skip
    cells, start = [], 0
    for pc in pieces:
        unit = reps.unit[start : start + pc.n_frames]
        cells.append(unit[:, None] * n_sets + np.arange(n_sets)[None, :])
        start += pc.n_frames
    return cells, reps


def number_density(pieces: Sequence[Piece]) -> float:
    """Target sets per A^3: n_sets / V averaged over every frame of every trajectory."""
    vals, weights = [], []
    for pc in pieces:
        vol = np.abs(np.linalg.det(np.asarray(pc.lattices, dtype=np.float64)))
        vals.append(float(np.mean(pc.target_sets.shape[0] / vol)))
        weights.append(pc.n_frames)
    return float(np.average(vals, weights=weights))


def state_charges(
    pieces: Sequence[Piece], n_states: int, charges: dict[str, float] | None = None,
    charge_frame: Any = None, where: str = "charge_frame",
) -> np.ndarray:
    """z_i of each state: ``charge_frame``'s (charge.csv) charge_at_r_star, else the charge
    of the target atoms from ``charges`` (element -> e, default ``{"Li": 1}``)."""
    if charge_frame is not None:
        table = charge_frame
        if not {"state", "charge_at_r_star"} <= set(table.columns):
            raise InputError(f"{where}: expected columns state, charge_at_r_star; got "
                             f"{list(table.columns)}")
        per = table.groupby("state")["charge_at_r_star"].first()
        if sorted(per.index) != list(range(n_states)):
            raise InputError(f"{where}: column 'state': expected states 0..{n_states - 1}, "
                             f"got {sorted(per.index)}")
        return per.sort_index().to_numpy(dtype=np.float64)
    from ase.data import chemical_symbols

    charges = {"Li": 1} if charges is None else charges
    pc = pieces[0]
    symbols = {chemical_symbols[int(z)] for z in np.asarray(pc.atom_types)[pc.target_sets.ravel()]}
    missing = sorted(symbols - set(charges))
    if missing:
        raise InputError(f"--settings: key 'conduction/charges': expected a charge for target "
                         f"element {missing[0]}, got {charges}")
    z = sum(float(charges[chemical_symbols[int(a)]])
            for a in np.asarray(pc.atom_types)[pc.target_sets[0]])
    return np.full(n_states, z)


def conduction_tables(
    pieces: Sequence[Piece], tau_ps: float, z_state: np.ndarray, temperature_K: float,
    msd_window: float = default("conduction", "msd_window"),
    msd_points: int = default("conduction", "msd_points"), ci: Mapping[str, Any] | None = None,
    volume_A3: float | None = None, block_ps: float | None = None,
) -> tuple[Any, Any]:
    """(diffusion, conduction) DataFrames per the contract (docs/contracts.md).

    ``ci`` is the Koopman ``ci`` block and ``block_ps`` the bootstrap block (default: the
    longest MSD lag), both read by :mod:`gdyn.koopman.uncertainty`.
    """
    import pandas as pd
    from tqdm import tqdm

    fi = pieces[0].frame_interval_ps
    if not math.isfinite(fi):
        raise InputError("frame_interval_ps: expected the time between frames (ps) of the "
                         "trajectories, got none")
    tau = lag_to_frames(tau_ps, fi)
    lags = msd_lags(tau, float(msd_window), int(msd_points))
    lags_ps = np.asarray(lags, dtype=np.float64) * fi
    log.info("tau* = %g ps (%d frames); MSD slope over lags %s ps", tau_ps, tau,
             ", ".join(f"{v:g}" for v in lags_ps))
    want = float(max(block_ps or 0.0, max(lags) * fi))
    groups, reps = assign_cells(pieces, ci, want)
    n_states = pieces[0].probs.shape[2]
    n_units, n_sets = reps.unit_weights.shape[1], reps.set_weights.shape[1]
    sums = TransitionSums.zeros(n_units * n_sets, len(lags), n_states)
    for pc, grp in tqdm(list(zip(pieces, groups, strict=True)), desc="conduction"):
        lat = np.asarray(pc.lattices, dtype=np.float64)
        x = unwrap(set_centres(np.asarray(pc.coords, dtype=np.float64), lat, pc.target_sets), lat)
        accumulate(sums, x, pc.probs, lags, tau, grp)
    if volume_A3 is not None:
        density = float(np.mean([pc.target_sets.shape[0] for pc in pieces])) / float(volume_A3)
    else:
        density = number_density(pieces)
    temperature = float(temperature_K)
    log.info("N/V = %.6g A^-3, T = %g K, z = %s", density, temperature, z_state.tolist())
    est = transport(sums.total(), lags_ps, z_state, density, temperature)
    w, v = reps.unit_weights, reps.set_weights
    rep_sums = [
        weighted_sums(a.reshape(n_units, n_sets, *a.shape[1:]), w, v)
        for a in (sums.num, sums.den, sums.c00, sums.c0t)
    ]
    per = [transport(TransitionSums(*(a[r : r + 1] for a in rep_sums)), lags_ps, z_state,
                     density, temperature) for r in range(reps.n)]  # fmt: skip
    d_lo, d_hi = reps.interval(np.stack([p.d for p in per]), point=est.d)
    p_lo, p_hi = reps.interval(np.stack([p.percent for p in per]), point=est.percent)
    ii, jj = np.meshgrid(np.arange(n_states), np.arange(n_states), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    conv = A2_PER_PS_TO_CM2_PER_S
    diffusion = pd.DataFrame({
        "from_state": ii, "to_state": jj, "tau_ps": tau_ps,
        "D_cm2_per_s": est.d[ii, jj] * conv, "ci_low_cm2_per_s": d_lo[ii, jj] * conv,
        "ci_high_cm2_per_s": d_hi[ii, jj] * conv,
    })
    z = 0.5 * (z_state[:, None] + z_state[None, :])
    cond = pd.DataFrame({
        "from_state": ii, "to_state": jj, "tau_ps": tau_ps, "population_from": est.pi[ii],
        "K": est.k[ii, jj], "z": z[ii, jj], "D_cm2_per_s": est.d[ii, jj] * conv,
        "sigma_S_per_m": est.sigma[ii, jj], "percent": est.percent[ii, jj],
        "ci_low_percent": p_lo[ii, jj], "ci_high_percent": p_hi[ii, jj],
    })
    for row in cond.itertuples():
        log.info("%d -> %d: K = %.4f, D = %.4g cm2/s, sigma = %.4g S/m, %.1f %%", row.from_state,
                 row.to_state, row.K, row.D_cm2_per_s, row.sigma_S_per_m, row.percent)
    return diffusion, cond


def conduction(
    trajectories: Trajectory | Piece | Sequence[Trajectory | Piece],
    probs: np.ndarray | Sequence[np.ndarray] | None,
    tau_ps: float,
    temperature_K: float | Mapping[str, float],
    charges: dict[str, float] | None = None,
    charge_frame: Any = None,
    msd_window: float = default("conduction", "msd_window"),
    msd_points: int = default("conduction", "msd_points"),
    ci: dict[str, Any] | None = None,
    volume_A3: float | None = None,
    frame_interval_ps: float | None = None,
    block_ps: float | None = None,
) -> tuple[Any, Any]:
    """Transition MSDs, D_ij(tau) and cluster Nernst-Einstein shares (Methods Eqs. 13-16).

    Parameters
    ----------
    trajectories : Trajectory or list of Trajectory (or Piece, with ``probs=None``)
        The MD data (wrapped or not); displacements are those of the target set centres.
    probs : ndarray (F, n_sets, S) or list of them, one per trajectory
        State probabilities aligned frame by frame (NaN rows: unscored, zero weight).
    tau_ps : float
        The Koopman lag tau* (ps); D_ij is the MSD slope around it, K is K(tau*).
    temperature_K : float or mapping
        Temperature of the Nernst-Einstein relation (Eq. 15); for a temperature series
        ``{trajectory name: temperature_K}`` (a trajectory's name: the stem of its
        ``source``): every quantity is then computed per temperature on that temperature's
        trajectories alone (:func:`conduction_by_temperature`) and both tables get a first
        column ``temperature_K``.
    charges : dict, optional
        Element -> charge (e) of the target atoms (default ``{"Li": 1}``); z_i is the
        charge of a target set.
    charge_frame : DataFrame or path, optional
        ``charge.csv`` (:func:`gdyn.analysis.charge_integral`): z_i = its charge_at_r_star
        instead of ``charges``.
    msd_window, msd_points : float, int
        D_ij is the least-squares slope / 6 of the MSD over ``msd_points`` lags spread over
        [tau (1 - w), tau (1 + w)].
    ci : dict, optional
        The Koopman ``ci`` block (:func:`gdyn.koopman.uncertainty.parse_ci`: ``bootstrap``
        by default, or the groups ``chunks`` | ``trajectories`` | ``target_subsets``).
    volume_A3 : float, optional
        Cell volume for N / V (default: each frame's cell).
    frame_interval_ps : float, optional
        Time between frames, for trajectories without a ``frame_interval_ps`` extra.
    block_ps : float, optional
        The bootstrap block (default: the longest MSD lag; the workflow passes the Koopman
        summary's ``ci_block_ps``).

    Returns
    -------
    diffusion, conduction : pandas.DataFrame
        The ``diffusion.csv`` and ``conduction.csv`` tables (docs/contracts.md).
    """
    pieces = as_pieces(trajectories, probs, frame_interval_ps)
    n_states = pieces[0].probs.shape[2]
    where = "charge_frame"
    if isinstance(charge_frame, str | os.PathLike):
        import pandas as pd

        where = str(charge_frame)
        charge_frame = pd.read_csv(charge_frame)
    z_state = state_charges(pieces, n_states, charges, charge_frame, where)
    if isinstance(temperature_K, Mapping):
        return conduction_by_temperature(
            pieces, temperature_K, tau_ps, z_state, msd_window=msd_window,
            msd_points=msd_points, ci=ci, volume_A3=volume_A3, block_ps=block_ps,
        )  # fmt: skip
    return conduction_tables(pieces, tau_ps, z_state, temperature_K, msd_window, msd_points,
                             ci, volume_A3, block_ps)



def pieces_by_temperature(
    pieces: Sequence[Piece], temperature_of: Mapping[str, float]
) -> dict[float, list[Piece]]:
    """The pieces grouped by their trajectory's temperature (ascending), each group in the
    pieces' order. A piece's trajectory is the stem of its ``source`` (the raw trajectory);
    one without a temperature raises :class:`InputError`."""
    groups: dict[float, list[Piece]] = {}
    for pc in pieces:
        name = os.path.splitext(os.path.basename(str(pc.source)))[0]
        if name not in temperature_of:
            raise InputError(
                f"{pc.path}: trajectory {name!r}: expected a temperature of the series "
                f"({', '.join(sorted(temperature_of))}), got none"
            )
        groups.setdefault(float(temperature_of[name]), []).append(pc)
    return dict(sorted(groups.items()))


def conduction_by_temperature(
    pieces: Sequence[Piece], temperature_of: Mapping[str, float], tau_ps: float,
    z_state: np.ndarray, **kw: Any,
) -> tuple[Any, Any]:
    """(diffusion, conduction) of a temperature series: :func:`conduction_tables` on each
    temperature's pieces alone, at that temperature, stacked with a first column
    ``temperature_K`` (ascending).

    Parameters
    ----------
    pieces : list of Piece
        The test pieces of every temperature, with the pooled model's probabilities.
    temperature_of : mapping
        ``{trajectory name: temperature_K}`` (:func:`gdyn.temperatures.temperature_of`).
    tau_ps, z_state
        As :func:`conduction_tables`.
    **kw
        The other keywords of :func:`conduction_tables` (``msd_window``, ``msd_points``,
        ``ci``, ``volume_A3``, ``block_ps``); not ``temperature_K``.
    """
    import pandas as pd

    diffusion, cond = [], []
    for t, group in pieces_by_temperature(pieces, temperature_of).items():
        log.info("temperature %g K: %d test pieces", t, len(group))
        d, c = conduction_tables(group, tau_ps, z_state, t, **kw)
        d.insert(0, "temperature_K", t)
        c.insert(0, "temperature_K", t)
        diffusion.append(d)
        cond.append(c)
    return pd.concat(diffusion, ignore_index=True), pd.concat(cond, ignore_index=True)
