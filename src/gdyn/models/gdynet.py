"""GDyNet's torch module (paper Methods Eqs. 7-10, Supplementary Note 1).

A batch of graphs is flattened into one set of tensors, so thousands of small graphs (the
toy's 5-atom cells) go through every layer as a single tensor operation:

* ``atom_types`` (A,) atomic numbers of every atom of every frame in the batch;
* ``rows`` (R,) flat atom ids of the rows of the graph store (the atoms a convolution
  updates), or None when every atom is a row (the store is not pruned);
* ``nbr`` (R, M) flat atom ids of each row's M neighbours, ``dist`` (R, M) their distances;
* ``targets`` (n, k) row positions of the atoms of every target set.

Atoms outside ``rows`` keep their element embedding; by the pruning contract of the graph
store this is exact for the target atoms of a K-layer model.

The convolution (Eqs. 8-9) on ``z_ij = v_i + v_j + u_ij`` (concatenation) is evaluated as
``z W = v_i W_self + v_j W_nbr + u_ij W_edge``, which is the same linear map but never
materialises ``z`` (R x M x (2F + G)), and projects each atom once instead of once per edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gdyn.settings import default

N_ELEMENTS = 119  # embeddings indexed directly by atomic number 0..118
GAUSS_STEP_A = 0.2  # mu_t = 0.2 t Angstrom (paper Eq. 7)
GAUSS_SIGMA_A = 0.2


def n_gaussians(max_distance_A: float, step_A: float = GAUSS_STEP_A) -> int:
    """Gaussian centres ``0, step, ...`` up to and including the first one >= the distance."""
    if not math.isfinite(max_distance_A) or max_distance_A < 0:
        raise ValueError(f"max distance must be a non-negative number, got {max_distance_A!r}")
    return math.ceil(max_distance_A / step_A - 1e-9) + 1


@dataclass
class GraphBatch:
    """Flattened graphs of a batch of frames (see module docstring); tensors on one device."""

    atom_types: torch.Tensor
    rows: torch.Tensor | None
    row_types: torch.Tensor
    nbr: torch.Tensor
    dist: torch.Tensor
    targets: torch.Tensor

    def to(self, device: torch.device | str) -> GraphBatch:
        """The same batch on ``device``."""
        return GraphBatch(
            atom_types=self.atom_types.to(device, non_blocking=True),
            rows=None if self.rows is None else self.rows.to(device, non_blocking=True),
            row_types=self.row_types.to(device, non_blocking=True),
            nbr=self.nbr.to(device, non_blocking=True),
            dist=self.dist.to(device, non_blocking=True),
            targets=self.targets.to(device, non_blocking=True),
        )


class GaussianExpansion(nn.Module):
    """``u[t] = exp(-(d - mu_t)^2 / sigma^2)``, ``mu_t = t * step`` (paper Eq. 7)."""

    def __init__(self, n_gauss: int, step_A: float = GAUSS_STEP_A, sigma_A: float = GAUSS_SIGMA_A):
        super().__init__()
        self.register_buffer("mu", torch.arange(n_gauss, dtype=torch.float32) * step_A)
        self.sigma = float(sigma_A)

    def forward(self, dist: torch.Tensor) -> torch.Tensor:
        """(..., ) distances -> (..., n_gauss) edge features."""
        u = dist.unsqueeze(-1) - self.mu
        # In place (one allocation); exp(-x) = 2^(-x log2 e) because torch's exp2 kernel is
        # several times faster than exp on CPU.
        return u.square_().mul_(-math.log2(math.e) / self.sigma**2).exp2_()


class GatedConv(nn.Module):
    """One gated (attention) graph convolution, paper Eqs. 8-9.

    ``fc`` maps ``z_ij`` (2F + G) to F + 1 outputs: column 0 is the attention logit
    ``z W_a + b_a`` (softmax over the M neighbours gives the scalar alpha_ij), columns 1..F
    the message ``z W_n + b_n`` (ReLU).
    """

    def __init__(self, atom_fea_len: int, n_gauss: int,
                 batch_norm: bool = default("train", "batch_norm")):
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.fc = nn.Linear(2 * atom_fea_len + n_gauss, atom_fea_len + 1)
        self.bn = nn.BatchNorm1d(atom_fea_len) if batch_norm else None

    def forward(
        self,
        v_rows: torch.Tensor,
        elem_emb: torch.Tensor,
        batch: GraphBatch,
        gauss: torch.Tensor,
    ) -> torch.Tensor:
        """Updated row embeddings (R, F) from the current ones and the edge features
        ``u_ij`` (R, M, G)."""
        f = self.atom_fea_len
        w, b = self.fc.weight, self.fc.bias
        w_self, w_nbr, w_edge = w[:, :f], w[:, f : 2 * f], w[:, 2 * f :]
        # Attention logit (row 0 of W) and message (rows 1..F) are computed as separate
        # tensors: slicing one (R, M, F+1) activation would zero-fill a full-size gradient
        # per slice in the backward pass.
        q_att = v_rows @ w_self[0] + b[0]  # (R,)
        q_msg = torch.addmm(b[1:], v_rows, w_self[1:].T)  # (R, F)
        p_att, p_msg = v_rows @ w_nbr[0], v_rows @ w_nbr[1:].T
        if batch.rows is not None:
            # Atoms outside rows still carry their element embedding.
            e_att = (elem_emb @ w_nbr[0]).index_select(0, batch.atom_types)
            e_msg = (elem_emb @ w_nbr[1:].T).index_select(0, batch.atom_types)
            p_att = e_att.index_copy(0, batch.rows, p_att)
            p_msg = e_msg.index_copy(0, batch.rows, p_msg)
        n_rows, m = batch.nbr.shape
        nbr = batch.nbr.reshape(-1)
        # The first sum allocates; the rest is in place on that (non-view) tensor. In-place
        # ops on a view would make autograd clone the base (CopySlices) in the backward.
        logit = torch.add(p_att.index_select(0, nbr).view(n_rows, m), q_att.unsqueeze(1))
        logit.add_(gauss @ w_edge[0])
        alpha = torch.softmax(logit, dim=1)  # over the M neighbours (Eq. 8)
        pre = torch.add(p_msg.index_select(0, nbr).view(n_rows, m, f), q_msg.unsqueeze(1))
        msg = torch.relu_(pre.add_(gauss @ w_edge[1:].T))
        agg = (alpha.unsqueeze(-1) * msg).sum(dim=1)  # sum_j alpha_ij msg_ij (Eq. 9)
        if self.bn is not None:
            agg = self.bn(agg)
        return v_rows + agg


class GDyNetModule(nn.Module):
    """Element embedding -> K gated convolutions -> mean pooling over target sets -> softmax.

    The model kind ``"gdynet"`` of :data:`gdyn.models.REGISTRY` (input kind ``"graphs"``).
    """

    def __init__(
        self,
        n_states: int,
        n_gauss: int,
        atom_fea_len: int = default("train", "atom_fea_len"),
        n_conv: int = default("train", "n_conv"),
        batch_norm: bool = default("train", "batch_norm"),
        gauss_step_A: float = GAUSS_STEP_A,
        gauss_sigma_A: float = GAUSS_SIGMA_A,
    ):
        super().__init__()
        self.embedding = nn.Embedding(N_ELEMENTS, atom_fea_len)
        self.expansion = GaussianExpansion(n_gauss, gauss_step_A, gauss_sigma_A)
        self.convs = nn.ModuleList(
            GatedConv(atom_fea_len, n_gauss, batch_norm) for _ in range(n_conv)
        )
        self.out = nn.Linear(atom_fea_len, n_states)

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        """Pooled embedding ``v_[l]`` (n_sets, F) of every target set (Eq. 10)."""
        v_rows = self.embedding(batch.row_types)
        if len(self.convs):
            with torch.no_grad():
                # Edge features need no gradient; only W_edge does (through the matmul).
                gauss = self.expansion(batch.dist)
            for conv in self.convs:
                v_rows = conv(v_rows, self.embedding.weight, batch, gauss)
        return v_rows[batch.targets].mean(dim=1)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """State probabilities (n_sets, n_states) of every target set in the batch."""
        return torch.softmax(self.out(self.embed(batch)), dim=-1)

    @classmethod
    def from_settings(
        cls, n_states: int, settings: Mapping[str, Any], dims: Mapping[str, Any]
    ) -> GDyNetModule:
        """A fresh model from training settings and :meth:`dims_from_data` dimensions."""
        return cls(
            n_states=n_states,
            n_gauss=int(dims["n_gaussians"]),
            atom_fea_len=int(settings["atom_fea_len"]),
            n_conv=int(settings["n_conv"]),
            batch_norm=bool(settings["batch_norm"]),
            gauss_step_A=float(dims["gauss_step_A"]),
            gauss_sigma_A=float(dims["gauss_sigma_A"]),
        )

    @staticmethod
    def dims_from_data(data: Mapping[str, Any]) -> dict[str, Any]:
        """Dimensions from the training graphs: the Gaussian grid covers the longest edge.

        ``data`` holds ``max_distance_A`` (largest neighbour distance of the training
        graphs) and ``n_neighbors`` (M).
        """
        dmax = float(data["max_distance_A"])
        return {"max_distance_A": dmax, "n_gaussians": n_gaussians(dmax),
                "gauss_step_A": GAUSS_STEP_A, "gauss_sigma_A": GAUSS_SIGMA_A,
                "n_neighbors": int(data["n_neighbors"])}
