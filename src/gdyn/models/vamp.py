"""The VAMP-2 score (Wu & Noé 2020; Mardt et al. 2018), the loss of GDyNets (paper Eq. 5).

For instantaneous features ``x`` (T, d) and time-lagged features ``y`` (T, d) the score is

    VAMP-2 = 1 + || C00^{-1/2} C01 C11^{-1/2} ||_F^2

with mean-free covariances ``C`` normalised by ``T - 1`` (the ``1 +`` counts the constant
singular function removed with the mean), exactly as ``deeptime.decomposition.deep.vamp_score``.

Softmax features always sum to one, so their mean-free covariance is singular: the inverse
square roots must be regularised. ``mode='trunc'`` (this module's default, as deeptime's
VAMPnet loss and the original VAMPnet code) drops eigenvalues ``<= epsilon``;
``'regularize'`` adds ``epsilon`` to the diagonal (evaluated with Cholesky factors, see
:func:`score_from_covariances`); ``'clamp'`` clamps eigenvalues to ``epsilon``. Training uses
``'regularize'`` with ``epsilon = 1e-3`` (``gdyn.train.settings`` says why). The arithmetic
is done in float64 whatever the input dtype, so truncation at ``epsilon = 1e-6`` separates the
structural null space (~1e-17) from real modes.

torch is imported lazily: this module is imported by ``gdyn.train`` only when training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gdyn.errors import InputError

if TYPE_CHECKING:
    import torch

MODES: tuple[str, ...] = ("trunc", "regularize", "clamp")
DEFAULT_EPSILON = 1e-6
DEFAULT_MODE = "trunc"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InputError(f"VAMP mode: expected one of {', '.join(MODES)}, got {mode!r}")


def covariances(
    x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean-free ``(C00, C01, C11)`` of paired samples, normalised by ``T - 1`` (float64)."""
    if x.shape != y.shape or x.ndim != 2:
        raise InputError(
            f"VAMP features: expected two (T, d) arrays of equal shape, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise InputError(f"VAMP features: expected at least 2 pairs, got {x.shape[0]}")
    x = x.double()
    y = y.double()
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    norm = 1.0 / (x.shape[0] - 1)
    return norm * x.T @ x, norm * x.T @ y, norm * y.T @ y


def inv_sqrt(
    c: torch.Tensor, epsilon: float = DEFAULT_EPSILON, mode: str = DEFAULT_MODE
) -> torch.Tensor:
    """Regularised ``C^{-1/2}`` of a symmetric positive semi-definite matrix (see module doc)."""
    import torch

    _check_mode(mode)
    if mode == "regularize":
        c = c + epsilon * torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
    # Symmetrise so round-off cannot make eigh see a non-symmetric matrix.
    eigval, eigvec = torch.linalg.eigh(0.5 * (c + c.T))
    if mode == "trunc":
        keep = eigval > epsilon
        eigval, eigvec = eigval[keep], eigvec[:, keep]
    elif mode == "regularize":
        eigval = eigval.abs()
    else:
        eigval = eigval.clamp_min(epsilon)
    return (eigvec * eigval.rsqrt()) @ eigvec.T


def score_from_covariances(
    c00: torch.Tensor,
    c01: torch.Tensor,
    c11: torch.Tensor,
    epsilon: float = DEFAULT_EPSILON,
    mode: str = DEFAULT_MODE,
) -> torch.Tensor:
    """VAMP-2 from covariance matrices: ``1 + ||C00^{-1/2} C01 C11^{-1/2}||_F^2``."""
    import torch

    _check_mode(mode)
    if mode == "regularize":
        # C + eps I is positive definite, so its Cholesky factor L stands in for the square
        # root: L^-1 = Q (C + eps I)^{-1/2} with Q orthogonal, and the Frobenius norm ignores
        # Q. Same value as the eigendecomposition, but a gradient that stays finite when the
        # two eigenvalues meet (a batch of constant features gives C + eps I = eps I, where
        # eigh's gradient is infinite and one step can wreck the model).
        eye = torch.eye(c00.shape[0], dtype=c00.dtype, device=c00.device)
        l0 = torch.linalg.cholesky(0.5 * (c00 + c00.T) + epsilon * eye)
        l1 = torch.linalg.cholesky(0.5 * (c11 + c11.T) + epsilon * eye)
        half = torch.linalg.solve_triangular(l0, c01, upper=False)
        koopman = torch.linalg.solve_triangular(l1, half.T, upper=False).T
    else:
        koopman = inv_sqrt(c00, epsilon, mode) @ c01 @ inv_sqrt(c11, epsilon, mode)
    return 1.0 + (koopman**2).sum()


def vamp2_score(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float = DEFAULT_EPSILON,
    mode: str = DEFAULT_MODE,
) -> torch.Tensor:
    """Differentiable VAMP-2 score (float64 scalar) of features at ``t`` and ``t + tau``."""
    return score_from_covariances(*covariances(x, y), epsilon=epsilon, mode=mode)


def vamp2_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float = DEFAULT_EPSILON,
    mode: str = DEFAULT_MODE,
) -> torch.Tensor:
    """The training loss, ``-VAMP-2`` (paper Eq. 5)."""
    return -vamp2_score(x, y, epsilon, mode)


class CovarianceAccumulator:
    """Streaming VAMP-2 over many chunks of pairs (the full-data validation score).

    Sums are kept in float64 so a score over millions of pairs equals the one-shot score
    of the concatenated data to round-off, in memory independent of the number of pairs.
    """

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.sx = np.zeros(dim)
        self.sy = np.zeros(dim)
        self.sxx = np.zeros((dim, dim))
        self.sxy = np.zeros((dim, dim))
        self.syy = np.zeros((dim, dim))

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add paired samples ``x[i] -> y[i]`` (each (T, d))."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 2 or x.shape[1] != self.sx.shape[0]:
            raise InputError(
                f"VAMP features: expected two (T, {self.sx.shape[0]}) arrays, got "
                f"{x.shape} and {y.shape}"
            )
        self.n += x.shape[0]
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.sxx += x.T @ x
        self.sxy += x.T @ y
        self.syy += y.T @ y

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean-free covariances normalised by ``n - 1``, as :func:`covariances`."""
        if self.n < 2:
            raise InputError(f"VAMP features: expected at least 2 pairs, got {self.n}")
        mx, my = self.sx / self.n, self.sy / self.n
        norm = 1.0 / (self.n - 1)
        c00 = norm * (self.sxx - self.n * np.outer(mx, mx))
        c01 = norm * (self.sxy - self.n * np.outer(mx, my))
        c11 = norm * (self.syy - self.n * np.outer(my, my))
        return c00, c01, c11

    def score(self, epsilon: float = DEFAULT_EPSILON, mode: str = DEFAULT_MODE) -> float:
        """VAMP-2 of everything added so far."""
        import torch

        c00, c01, c11 = (torch.from_numpy(c) for c in self.covariances())
        return float(score_from_covariances(c00, c01, c11, epsilon, mode))
