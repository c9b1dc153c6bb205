"""Arrhenius analysis (issue 25): rates from K's generator and the weighted fit.

Ground truth: continuous-time Markov chains whose rates follow a known Arrhenius law,
sampled at a frame interval (``K = expm(Q dt)``, exact), estimated through the public
Koopman API with the uncertainty engine's bootstrap; the fit must recover the activation
energies and its 95 % intervals must cover them.
"""

from __future__ import annotations

import numpy as np
import pytest
from _markov_chains import simulate
from scipy.linalg import expm

import gdyn
from gdyn.koopman import KoopmanModel
from gdyn.koopman.arrhenius import (
    KB_EV_PER_K,
    fit_arrhenius,
    generator_rates,
)

# Two states, like the toy's oct (0) and tet (1): E_a and prefactor of 0 -> 1 and 1 -> 0.
EA = {(0, 1): 0.020, (1, 0): 0.008}  # eV
PREF = {(0, 1): 0.5, (1, 0): 0.6}  # 1/ps
TEMPS = [32.0, 48.0, 64.0, 96.0, 128.0]
DT_PS = 1.0


def rate_matrix(t_k: float) -> np.ndarray:
    q = np.zeros((2, 2))
    for (i, j), ea in EA.items():
        q[i, j] = PREF[(i, j)] * np.exp(-ea / (KB_EV_PER_K * t_k))
    np.fill_diagonal(q, -q.sum(axis=1))
    return q


def test_generator_rates_invert_the_matrix_exponential() -> None:
    rng = np.random.default_rng(3)
    for s in (2, 3, 4):
        q = rng.random((s, s)) * 0.05
        q = q + q.T  # symmetric rates: reversible, real positive spectrum of expm
        np.fill_diagonal(q, 0.0)
        np.fill_diagonal(q, -q.sum(axis=1))
        for tau in (1.0, 5.0, 20.0):
            got = generator_rates(expm(q * tau), tau)
            off = ~np.eye(s, dtype=bool)
            np.testing.assert_allclose(got[off], q[off], rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(np.diag(got), -np.diag(q), rtol=1e-8)
    # batched, and NaN where log K is not real (a negative eigenvalue)
    k = np.stack([expm(rate_matrix(64.0) * 10.0), np.array([[0.2, 0.8], [0.9, 0.1]])])
    out = generator_rates(k, 10.0)
    assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))


def test_two_state_closed_form() -> None:
    k = expm(rate_matrix(96.0) * 7.0)
    lam = 1 - k[0, 1] - k[1, 0]
    expect = k[0, 1] * -np.log(lam) / (7.0 * (1 - lam))
    assert generator_rates(k, 7.0)[0, 1] == pytest.approx(expect, rel=1e-10)


def test_fit_exact_rates_and_parametric_interval() -> None:
    t = np.array(TEMPS)
    k = 2.0 * np.exp(-0.015 / (KB_EV_PER_K * t))
    fit = fit_arrhenius(t, k, k * 0.9, k / 0.9)
    assert fit.activation_energy_eV == pytest.approx(0.015, rel=1e-10)
    assert fit.prefactor_per_ps == pytest.approx(2.0, rel=1e-10)
    assert fit.ci_low_eV < 0.015 < fit.ci_high_eV
    # Analytic check of the propagated interval: the WLS slope's sd with known variances.
    x = 1 / (KB_EV_PER_K * t)
    sd = np.log(1 / 0.9) * 2 / (2 * 1.959964)  # (ln hi - ln lo) / (2 z)
    sd_slope = sd / np.sqrt(((x - x.mean()) ** 2).sum())
    half = 0.5 * (fit.ci_high_eV - fit.ci_low_eV)
    assert half == pytest.approx(1.959964 * sd_slope, rel=0.08)  # 2000 resamples
    nan = fit_arrhenius([64.0], [0.1])
    assert np.isnan(nan.activation_energy_eV)


def _models(seed: int, atoms: int = 16, frames: int = 4000, lag: float = 5.0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for t_k in TEMPS:
        states = simulate(expm(rate_matrix(t_k) * DT_PS), frames, atoms, rng)
        probs = np.eye(2)[states]  # (F, atoms, 2) one-hot
        out[t_k] = KoopmanModel.estimate(
            probs, lag_ps=lag, frame_interval_ps=DT_PS,
            ci={"method": "bootstrap", "n": 200, "seed": seed}, selection=None,
        )  # fmt: skip
    return out


def test_arrhenius_recovers_known_activation_energies() -> None:
    # 16 independent chains x 4000 frames per temperature: the slow 0 -> 1 rate at 32 K is
    # 0.5 exp(-7.25) = 3.6e-4 per ps, ~23 events per temperature at the coldest.
    res = gdyn.arrhenius(_models(seed=1), n_boot=1000)
    for key, ea in EA.items():
        fit = res.fits[key]
        assert fit.ci_low_eV <= ea <= fit.ci_high_eV, (key, fit)
        assert fit.activation_energy_eV == pytest.approx(ea, rel=0.15)
        assert fit.prefactor_ci_low <= PREF[key] <= fit.prefactor_ci_high
    table = res.to_frame()
    assert len(table) == len(TEMPS) * 2
    assert np.all(table["ci_low"] <= table["rate_per_ps"])
    assert np.all(table["rate_per_ps"] <= table["ci_high"])
    assert [d["from_state"] for d in res.to_json()["transitions"]] == [0, 1]


def test_state_numbering_follows_the_network_not_the_population() -> None:
    # At every temperature state 1 is the less populated, except when the model's outputs
    # are swapped: the result must still be in output numbering.
    models = _models(seed=2, atoms=8, frames=1500)
    swapped = {
        t: KoopmanModel.estimate(
            m_probs, lag_ps=5.0, frame_interval_ps=DT_PS, ci=None, selection=None
        )
        for t, m_probs in (
            (t, np.eye(2)[simulate(expm(rate_matrix(t) * DT_PS), 1500, 8,
                                    np.random.default_rng(int(t)))][..., ::-1])
            for t in TEMPS
        )
    }  # fmt: skip
    a, b = gdyn.arrhenius(models), gdyn.arrhenius(swapped)
    assert b.fits[(1, 0)].activation_energy_eV == pytest.approx(EA[(0, 1)], rel=0.3)
    assert a.fits[(0, 1)].activation_energy_eV == pytest.approx(EA[(0, 1)], rel=0.3)
    assert np.isnan(b.fits[(1, 0)].ci_low_eV)  # no replicates: no interval


@pytest.mark.slow
def test_arrhenius_interval_coverage() -> None:
    # 40 independent data sets: a 95 % interval misses the truth in ~2 of 40; more than 6
    # misses (binomial p < 0.01 for a true 95 % coverage) fails.
    misses = {key: 0 for key in EA}
    for seed in range(40):
        res = gdyn.arrhenius(_models(seed=100 + seed, frames=3000), n_boot=500)
        for key, ea in EA.items():
            f = res.fits[key]
            misses[key] += not (f.ci_low_eV <= ea <= f.ci_high_eV)
    assert max(misses.values()) <= 6, misses
