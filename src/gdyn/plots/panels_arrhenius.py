"""The Arrhenius figure of a temperature series: ln k against 1000 / T per transition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gdyn.plots.style import save_figure

__all__ = ["plot_arrhenius", "save_arrhenius"]


def plot_arrhenius(res: Any, truth: tuple[Any, Any, int, int] | None = None) -> Any:
    """One panel per transition: the learned states' rates with their 95 % intervals and
    fit; with ``truth`` (toy: site-label result, TST result, tet and oct states) also the
    site labels' rates and fit and the TST rates."""
    import matplotlib.pyplot as plt

    s = res.rates.shape[-1]
    pairs = sorted(res.fits)
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.4 * len(pairs), 3.0), squeeze=False)
    t = res.temperature_K
    x = 1000.0 / t
    xs = np.linspace(x.min() * 0.95, x.max() * 1.05, 50)
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        k = res.rates[:, i, j]
        err = np.abs(np.stack([k - res.rate_low[:, i, j], res.rate_high[:, i, j] - k]))
        f = res.fits[(i, j)]
        ax.errorbar(x, k, yerr=np.nan_to_num(err), fmt="o", color="C0", capsize=2,
                    label=f"learned: {1000 * f.activation_energy_eV:.2f} meV")  # fmt: skip
        ax.plot(xs, f.rate(1000.0 / xs), color="C0", lw=1)
        title = f"state {i} \u2192 {j}"
        if truth is not None and s == 2:
            lab, tst, tet, oct_ = truth
            pos = {oct_: 0, tet: 1}
            a, b = pos[i], pos[j]
            title = ("oct", "tet")[a] + " \u2192 " + ("oct", "tet")[b]
            g = lab.fits[(a, b)]
            ax.plot(x, lab.rates[:, a, b], "s", mfc="none", color="C1",
                    label=f"site labels: {1000 * g.activation_energy_eV:.2f} meV")  # fmt: skip
            ax.plot(xs, g.rate(1000.0 / xs), color="C1", lw=1, ls="--")
            h = tst.fits[(a, b)]
            ax.plot(x, tst.rates[:, a, b], "^", color="C2", mfc="none",
                    label=f"TST: {1000 * h.activation_energy_eV:.2f} meV")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("rate (1/ps)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def save_arrhenius(res: Any, truth: tuple[Any, Any, int, int] | None, pdf: str | Path,
                   png: str | Path | None, data_label: str = "") -> None:
    """Draw :func:`plot_arrhenius` and save it (PDF, optional PNG) with the data label."""
    save_figure(plot_arrhenius(res, truth), pdf, png,
                title="Arrhenius plot of the learned states' rates",
                data_label=data_label)  # fmt: skip
