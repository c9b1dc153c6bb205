"""GDyNet model (gdyn.models.gdynet): Gaussian edges, the convolution against the paper's
concatenated form, flat batching, pruning exactness and equivariance (permutation,
translation, rotation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gdyn.models.gdynet import (
    GatedConv,
    GaussianExpansion,
    GDyNetModule,
    GraphBatch,
    n_gaussians,
)


def periodic_neighbours(
    coords: np.ndarray, lattice: np.ndarray, m: int, reach: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force M nearest neighbours under PBC: (F, N, 3), (F, 3, 3) -> (F, N, M) x2.

    Periodic images are distinct neighbours; ties are broken by atom id, then image (a
    stable sort over candidates ordered that way). Independent of gdyn.graph on purpose.
    """
    coords = np.asarray(coords, dtype=np.float64)
    lattice = np.asarray(lattice, dtype=np.float64)
    if lattice.ndim == 2:
        lattice = np.broadcast_to(lattice, (coords.shape[0], 3, 3))
    r = np.arange(-reach, reach + 1)
    shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3).astype(float)
    n_img = len(shifts)
    n = coords.shape[1]
    zero = int(np.flatnonzero((shifts == 0).all(1))[0])
    index = np.empty((coords.shape[0], n, m), dtype=np.int32)
    dist = np.empty((coords.shape[0], n, m), dtype=np.float32)
    for f in range(coords.shape[0]):
        img = shifts @ lattice[f]  # (I, 3)
        cand = coords[f][:, None, :] + img[None]  # (N atom, I, 3), atom-major then image
        d = np.linalg.norm(coords[f][:, None, None, :] - cand[None], axis=-1)  # (N, N, I)
        d = d.reshape(n, n * n_img)
        d[np.arange(n), np.arange(n) * n_img + zero] = np.inf  # not its own neighbour
        order = np.argsort(d, axis=1, kind="stable")[:, :m]
        index[f] = order // n_img
        dist[f] = np.take_along_axis(d, order, axis=1)
    return index, dist


def batch_from_graphs(
    types: np.ndarray,
    index: np.ndarray,
    dist: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray | None = None,
) -> GraphBatch:
    """GraphBatch of F frames of one system: index/dist (F, N', M), targets (n, k) atom ids."""
    n_frames = index.shape[0]
    n_atoms = len(types)
    rows_local = np.arange(n_atoms) if rows is None else np.asarray(rows)
    pos = np.full(n_atoms, -1)
    pos[rows_local] = np.arange(len(rows_local))
    off_atoms = (np.arange(n_frames) * n_atoms)[:, None, None]
    off_rows = (np.arange(n_frames) * len(rows_local))[:, None, None]
    nbr = (index.astype(np.int64) + off_atoms).reshape(-1, index.shape[2])
    tgt = (pos[targets][None] + off_rows).reshape(-1, targets.shape[1])
    all_types = torch.from_numpy(np.tile(types, n_frames).astype(np.int64))
    flat_rows = (rows_local[None] + np.arange(n_frames)[:, None] * n_atoms).reshape(-1)
    rows_t = None if rows is None else torch.from_numpy(flat_rows.astype(np.int64))
    return GraphBatch(
        atom_types=all_types,
        rows=rows_t,
        row_types=all_types if rows_t is None else all_types[rows_t],
        nbr=torch.from_numpy(nbr),
        dist=torch.from_numpy(dist.reshape(-1, dist.shape[2]).astype(np.float32)),
        targets=torch.from_numpy(tgt.astype(np.int64)),
    )


def _cell(seed: int, n_atoms: int = 9, a: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lattice = np.eye(3) * a
    coords = rng.uniform(0, a, size=(1, n_atoms, 3))
    types = rng.choice([3, 8, 16], size=n_atoms)
    return coords, lattice, types


def _model(n_states: int = 3, n_gauss: int = 30, **kw) -> GDyNetModule:
    torch.manual_seed(0)
    return GDyNetModule(n_states=n_states, n_gauss=n_gauss, **kw).double().eval()


def test_gaussian_expansion_is_eq7() -> None:
    g = GaussianExpansion(5)
    assert torch.allclose(g.mu, torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8]))
    u = g(torch.tensor([0.4, 0.6]))
    # At a centre the Gaussian is 1; one sigma (0.2 A) away it is exp(-1).
    assert u[0, 2].item() == pytest.approx(1.0)
    assert u[0, 1].item() == pytest.approx(math.exp(-1), rel=1e-6)
    assert u[0, 4].item() == pytest.approx(math.exp(-4), rel=1e-5)
    assert u[1, 3].item() == pytest.approx(1.0)
    assert n_gaussians(4.6) == 24 and n_gaussians(4.61) == 25 and n_gaussians(0.0) == 1


def test_conv_equals_concatenated_form() -> None:
    """The split-weight evaluation equals Eqs. 8-9 on z = v_i + v_j + u_ij (concatenation)."""
    torch.manual_seed(1)
    f, g, n, m = 4, 7, 6, 5
    conv = GatedConv(f, g).double()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, size=(n, m))
    d = rng.uniform(1, 2, size=(n, m))
    v = torch.randn(n, f, dtype=torch.float64)
    batch = GraphBatch(
        atom_types=torch.zeros(n, dtype=torch.long), rows=None,
        row_types=torch.zeros(n, dtype=torch.long), nbr=torch.from_numpy(idx),
        dist=torch.from_numpy(d), targets=torch.zeros((1, 1), dtype=torch.long),
    )
    u = torch.randn(n, m, g, dtype=torch.float64)
    got = conv(v, torch.zeros(1, f, dtype=torch.float64), batch, u)

    w, b = conv.fc.weight.detach(), conv.fc.bias.detach()
    want = torch.empty_like(v)
    for i in range(n):
        z = torch.cat([v[i].expand(m, f), v[torch.from_numpy(idx[i])], u[i]], dim=1)
        logits = z @ w[0] + b[0]
        alpha = torch.exp(logits) / torch.exp(logits).sum()
        want[i] = v[i] + (alpha[:, None] * torch.relu(z @ w[1:].T + b[1:])).sum(0)
    assert torch.allclose(got, want, atol=1e-12)


def test_flat_batch_equals_frame_by_frame() -> None:
    """Many graphs in one tensor op give exactly the per-graph outputs."""
    rng = np.random.default_rng(3)
    types = np.array([3, 16, 16, 16, 16])
    coords = rng.uniform(0, 6.5, size=(6, 5, 3))
    index, dist = periodic_neighbours(coords, np.eye(3) * 6.5, 12)
    model = _model()
    targets = np.array([[0]])
    together = model(batch_from_graphs(types, index, dist, targets))
    alone = torch.cat([model(batch_from_graphs(types, index[i : i + 1], dist[i : i + 1], targets))
                       for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-12)
    assert torch.allclose(together.sum(1), torch.ones(6, dtype=torch.float64))


def _hops(index: np.ndarray, start: np.ndarray, k: int) -> np.ndarray:
    """Atoms within k hops of ``start`` along atom -> neighbour edges (whose messages arrive)."""
    reach = set(start.tolist())
    for _ in range(k):
        reach |= {int(j) for j in index[sorted(reach)].reshape(-1)}
    return np.array(sorted(reach))


@pytest.mark.parametrize("n_conv", [1, 2, 3])
def test_pruned_rows_are_exact_for_targets(n_conv: int) -> None:
    """Updating only atoms within K-1 hops of the targets leaves target outputs unchanged."""
    coords, lattice, types = _cell(5, n_atoms=40, a=9.0)
    index, dist = periodic_neighbours(coords, lattice, 4)
    targets = np.array([[0, 1], [7, 12]])
    # Rows needed: atoms whose embedding feeds a target within n_conv layers.
    rows = _hops(index[0], targets.reshape(-1), n_conv - 1)
    assert len(rows) < len(types)  # the test must actually prune
    model = _model(n_conv=n_conv)
    full = model(batch_from_graphs(types, index, dist, targets))
    pruned = model(batch_from_graphs(types, index[:, rows], dist[:, rows], targets, rows=rows))
    assert torch.allclose(full, pruned, atol=1e-12)
    # ... and pruning one layer too deep does change them (the test can fail).
    if n_conv > 1:
        short = _hops(index[0], targets.reshape(-1), n_conv - 2)
        wrong = model(batch_from_graphs(types, index[:, short], dist[:, short], targets,
                                        rows=short))
        assert not torch.allclose(full, wrong, atol=1e-6)


def _outputs(coords: np.ndarray, lattice: np.ndarray, types: np.ndarray, targets: np.ndarray,
             model: GDyNetModule) -> torch.Tensor:
    index, dist = periodic_neighbours(coords, lattice, 12)
    return model(batch_from_graphs(types, index, dist, targets))


def test_permuting_atoms_leaves_outputs_unchanged() -> None:
    coords, lattice, types = _cell(7)
    targets = np.array([[0], [3]])
    model = _model()
    ref = _outputs(coords, lattice, types, targets, model)
    perm = np.random.default_rng(1).permutation(len(types))
    inv = np.argsort(perm)
    got = _outputs(coords[:, perm], lattice, types[perm], inv[targets], model)
    assert torch.allclose(ref, got, atol=1e-10)


def test_translating_the_cell_leaves_outputs_unchanged() -> None:
    coords, lattice, types = _cell(8)
    targets = np.array([[2], [5]])
    model = _model()
    ref = _outputs(coords, lattice, types, targets, model)
    shifted = (coords + np.array([1.7, -3.2, 12.9])) % 6.0  # translate, then wrap back
    got = _outputs(shifted, lattice, types, targets, model)
    assert torch.allclose(ref, got, atol=1e-10)


def test_rotating_a_cubic_cell_leaves_outputs_unchanged() -> None:
    coords, lattice, types = _cell(9)
    targets = np.array([[1], [4]])
    model = _model()
    ref = _outputs(coords, lattice, types, targets, model)
    # A generic rotation applied to atoms and lattice vectors alike.
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    got = _outputs(coords @ q.T, lattice @ q.T, types, targets, model)
    assert torch.allclose(ref, got, atol=1e-9)
    # A 90 degree turn about z maps the cubic cell onto itself: same cell, moved atoms.
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    got = _outputs((coords @ rz.T) % 6.0, lattice, types, targets, model)
    assert torch.allclose(ref, got, atol=1e-9)


def test_moving_an_atom_changes_outputs() -> None:
    """Guards the invariance tests: the model is not constant."""
    coords, lattice, types = _cell(10)
    targets = np.array([[0]])
    model = _model()
    moved = coords.copy()
    moved[0, 0] += 0.5
    assert not torch.allclose(_outputs(coords, lattice, types, targets, model),
                              _outputs(moved, lattice, types, targets, model), atol=1e-6)


def test_batch_norm_model_runs_and_normalises() -> None:
    coords, lattice, types = _cell(11)
    index, dist = periodic_neighbours(np.repeat(coords, 4, 0) + np.random.default_rng(0).normal(
        0, 0.1, size=(4, 9, 3)), lattice, 12)
    model = _model(batch_norm=True).train()
    out = model(batch_from_graphs(types, index, dist, np.array([[0]])))
    assert out.shape == (4, 3) and torch.isfinite(out).all()
