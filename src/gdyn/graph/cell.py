"""Periodic cell geometry: lattice checks, face widths, image boxes, image brute force.

Rows of a lattice are its vectors; any non-degenerate (triclinic) cell is allowed. Two
searches over explicit periodic images live here: :func:`_image_pairs`, the batched
brute force the M-nearest-neighbour search uses for tiny cells, and :func:`pairs_within`,
every centre -> point pair within a radius (the state-weighted RDF's distance search).
"""

from __future__ import annotations

import math

import numpy as np

from gdyn.errors import InputError

# |det| below this fraction of |a||b||c| is a degenerate (flat) cell.
SINGULAR_RTOL = 1e-8
# Candidate (frame, centre, point, image) distances held at once by pairs_within; frames
# are processed in blocks of about this many (the hits do not depend on the blocks).
PAIRS_BLOCK = 2**20


def check_lattice(lattice: np.ndarray, where: str = "lattice") -> None:
    """Raise :class:`InputError` unless ``lattice`` is a finite, non-degenerate 3x3 cell."""
    lat = np.asarray(lattice, dtype=np.float64)
    if lat.shape != (3, 3):
        raise InputError(f"{where}: expected a (3, 3) lattice (rows = vectors), got {lat.shape}")
    if not np.isfinite(lat).all():
        raise InputError(f"{where}: expected finite lattice vectors, got {lat.tolist()}")
    det = float(np.linalg.det(lat))
    scale = float(np.prod(np.linalg.norm(lat, axis=1)))
    if not abs(det) > SINGULAR_RTOL * scale:
        raise InputError(
            f"{where}: expected a non-degenerate cell, got det = {det:.3g} "
            f"(lattice vectors coplanar or zero: {lat.tolist()})"
        )


def _check_frames(
    coords: np.ndarray, lattices: np.ndarray, first: int, where: str, step: int = 1
) -> None:
    """Finite coordinates and usable cells for a chunk of frames ``first``, ``first +
    step``, ... (frame numbers in messages)."""
    finite = np.isfinite(coords).all(axis=(1, 2))
    if not finite.all():
        f = first + step * int(np.argmin(finite))
        raise InputError(
            f"{where}: key 'traj_coords': expected finite coordinates, frame {f} has NaN or inf"
        )
    # Vectorised screen; the per-frame check names the first bad frame.
    with np.errstate(invalid="ignore"):
        det = np.abs(np.linalg.det(lattices))
        scale = np.prod(np.linalg.norm(lattices, axis=2), axis=1)
    bad = ~(np.isfinite(lattices).all(axis=(1, 2)) & (det > SINGULAR_RTOL * scale))
    if bad.any():
        k = int(np.argmax(bad))
        check_lattice(lattices[k], f"{where}: key 'lattices': frame {first + step * k}")


def face_widths(lattices: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of each cell, (..., 3) for lattices (..., 3, 3).

    Column k of inv(lattice) is the reciprocal vector b_k (a_i . b_k = delta_ik), whose
    length is 1 / (distance between the faces spanned by the other two vectors).
    """
    return 1.0 / np.linalg.norm(np.linalg.inv(lattices), axis=-2)


def _image_range(cutoff: float, min_width: float) -> int:
    """Half-width R of the image box [-R, R]^3 that holds every point within ``cutoff``.

    With coordinates wrapped into the cell (fractions in [0, 1)), a point within distance
    rho has integer shift |S_k| < rho / width_k + 1 along each axis, so R = ceil(rho /
    width) suffices; the tiny relative pad covers rounding in the wrap.
    """
    return max(1, math.ceil(cutoff * (1 + 1e-6) / min_width))


def _image_pairs(
    coords: np.ndarray, lattices: np.ndarray, rows: np.ndarray | None, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed pairs (row, j, d) with d < cutoff for a batch of small frames (B, N, 3).

    Brute force over the image box of :func:`_image_range`, vectorised over frames, so
    tiny cells (the toy: 5 atoms) cost microseconds per frame instead of one library call
    each. Row ids are flattened as frame * R + row. The squared-distance expansion only
    screens candidates; kept distances are recomputed from the displacement itself.
    """
    b, n = coords.shape[:2]
    inverse = np.linalg.inv(lattices)
    xw = coords - np.matmul(np.floor(np.matmul(coords, inverse)), lattices)
    row_ids = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    r = _image_range(cutoff, float((1.0 / np.linalg.norm(inverse, axis=-2)).min()))
    grid = np.arange(-r, r + 1, dtype=np.float64)
    shifts = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    # Drop whole images that cannot come within the cutoff: fractional displacements to
    # image S have |f| >= |max(|S| - 1, 0)|, and |f @ lattice| >= sigma_min * |f|.
    sigma_min = float(np.linalg.svd(lattices, compute_uv=False)[:, -1].min())
    reach = np.sqrt((np.maximum(np.abs(shifts) - 1.0, 0.0) ** 2).sum(-1)) * sigma_min
    shifts = shifts[reach < cutoff * (1 + 1e-6)]
    zero = int(np.flatnonzero((shifts == 0).all(axis=1))[0])
    images = np.matmul(shifts, lattices)  # (B, S, 3)
    delta = (xw[:, None, :, :] - xw[:, row_ids, None, :]).reshape(b, -1, 3)  # (B, R*N, 3)
    n_img = shifts.shape[0]
    # |delta + image|^2 = [delta, |delta|^2, 1] . [2 image, 1, |image|^2]: one matmul.
    left = np.empty((b, delta.shape[1], 5))
    left[..., :3] = delta
    left[..., 3] = np.einsum("bpk,bpk->bp", delta, delta)
    left[..., 4] = 1.0
    right = np.empty((b, 5, n_img))
    right[:, :3] = 2.0 * images.transpose(0, 2, 1)
    right[:, 3] = 1.0
    right[:, 4] = np.einsum("bsk,bsk->bs", images, images)
    d2 = np.matmul(left, right)  # (B, R*N, S)
    # flatnonzero + arithmetic is ~20x faster than nonzero on a 3-d array.
    flat = np.flatnonzero(d2 < cutoff * cutoff * (1 + 1e-9) + 1e-12)
    fbp, fs = np.divmod(flat, n_img)
    fb, frn = np.divmod(fbp, delta.shape[1])
    vec = delta[fb, frn] + images[fb, fs]
    d = np.sqrt(np.einsum("pk,pk->p", vec, vec))
    fr, fj = np.divmod(frn, n)
    # Drop the atom itself at zero shift and anything the screen let through beyond cutoff.
    keep = (d < cutoff) & ~((fs == zero) & (row_ids[fr] == fj))
    return (fb * row_ids.size + fr)[keep], fj[keep], d[keep]


def image_shifts(lattices: np.ndarray, r_max: float) -> np.ndarray:
    """Integer cell shifts (n_img, 3) that can hold an image within ``r_max``.

    For a point whose fractional offset from the centre is wrapped into [-0.5, 0.5), an
    image at shift S lies at least |f_k + S_k| x (face width k) away, so
    |S_k| <= floor(r_max / width_k + 0.5) covers every image within ``r_max`` in every
    cell of ``lattices`` ((3, 3) or (..., 3, 3): the box of the narrowest widths).
    Ordered by |S|_1, then lexicographically; (0, 0, 0) first.
    """
    h = face_widths(np.asarray(lattices, dtype=np.float64).reshape(-1, 3, 3)).min(axis=0)
    n = np.floor(r_max / h + 0.5).astype(int)
    grid = np.stack(np.meshgrid(*(np.arange(-k, k + 1) for k in n), indexing="ij"), -1)
    grid = grid.reshape(-1, 3)
    return grid[np.argsort(np.abs(grid).sum(axis=1), kind="stable")]


def _image_distances(
    centres: np.ndarray,
    points: np.ndarray,
    lattices: np.ndarray,
    shifts: np.ndarray,
    exclude: np.ndarray | None,
) -> np.ndarray:
    """(T, n, m, n_img) distances from each centre to every listed image of each point."""
    inv = np.linalg.inv(lattices)  # (T, 3, 3)
    frac = (
        np.einsum("tmj,tjk->tmk", points, inv)[:, None]
        - np.einsum("tnj,tjk->tnk", centres, inv)[:, :, None]
    )
    frac -= np.floor(frac + 0.5)
    base = np.einsum("tnmj,tjk->tnmk", frac, lattices)  # (T, n, m, 3)
    offsets = np.einsum("ij,tjk->tik", shifts.astype(np.float64), lattices)  # (T, n_img, 3)
    cart = base[:, :, :, None, :] + offsets[:, None, None]
    d = np.sqrt(np.einsum("...k,...k->...", cart, cart))
    if exclude is not None and exclude.any():
        ci, mi = np.nonzero(exclude)
        sub = d[:, ci, mi]  # (T, n_ex, n_img)
        closest = np.argmin(sub, axis=-1)
        np.put_along_axis(sub, closest[..., None], np.inf, axis=-1)
        d[:, ci, mi] = sub
    return d


def pairs_within(
    centres: np.ndarray,
    points: np.ndarray,
    lattices: np.ndarray,
    r_max: float,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every periodic image of every point within ``r_max`` of each centre, per frame.

    Parameters
    ----------
    centres : (T, n, 3) float
        Centre positions (Angstrom) in each of T frames; need not be wrapped.
    points : (T, m, 3) float
        Point positions in the same frames; need not be wrapped.
    lattices : (T, 3, 3) float
        Cell of each frame, rows are lattice vectors (any non-degenerate cell).
    r_max : float
        Search radius (Angstrom), any size: larger than the cell is fine.
    exclude : (n, m) bool, optional
        ``exclude[c, p]`` marks point p as one of centre c's own atoms: the closest image
        of p to c (for a centre made of its own atoms, the atom itself) is dropped, its
        other images are kept: a reference never counts itself, but counts its own
        periodic images. Of exactly equidistant closest images, the first in image order
        is dropped.

    Returns
    -------
    frame, centre, point : (H,) int64
        The hits: frame index into the batch (0 .. T - 1), centre index, point index.
    distance : (H,) float64
        Their distances, strictly below ``r_max``.

    Notes
    -----
    Hits are the entries ``d < r_max`` of the distance array D[t, c, p, s] from centre c
    to image s of point p, in C order (frame, centre, point, image), the images ordered
    as by :func:`image_shifts` (|S|_1, then lexicographic). One point can therefore hit
    one centre several times (several images). D is the displacement's fractional
    coordinates wrapped into [-0.5, 0.5) plus the integer shift, times the lattice: the
    same arithmetic, hence the same float64 distances and the same hit order, as the
    pre-refactor ``gdyn.structure.pair_distances`` with its ``image_shifts``; the hits
    do not depend on which superset of the needed shifts is examined, nor on how frames
    are blocked. Memory is bounded by processing frames in blocks (:data:`PAIRS_BLOCK`).
    """
    c = np.asarray(centres, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    lat = np.asarray(lattices, dtype=np.float64)
    if c.ndim != 3 or c.shape[2] != 3:
        raise InputError(f"centres: expected shape (T, n, 3), got {c.shape}")
    t, n = c.shape[:2]
    if p.ndim != 3 or p.shape[0] != t or p.shape[2] != 3:
        raise InputError(f"points: expected shape ({t}, m, 3), got {p.shape}")
    if lat.shape != (t, 3, 3):
        raise InputError(f"lattices: expected shape ({t}, 3, 3), got {lat.shape}")
    m = p.shape[1]
    if not (math.isfinite(r_max) and r_max > 0):
        raise InputError(f"r_max: expected a positive finite radius, got {r_max}")
    ex = None
    if exclude is not None:
        ex = np.asarray(exclude, dtype=bool)
        if ex.shape != (n, m):
            raise InputError(f"exclude: expected shape ({n}, {m}), got {ex.shape}")
    empty = np.empty(0, dtype=np.int64)
    if t == 0 or n == 0 or m == 0:
        return empty, empty, empty, np.empty(0, dtype=np.float64)
    shifts = image_shifts(lat, r_max)
    step = max(1, PAIRS_BLOCK // (n * m * shifts.shape[0]))
    hits: list[tuple[np.ndarray, ...]] = []
    for lo in range(0, t, step):
        sl = slice(lo, lo + step)
        d = _image_distances(c[sl], p[sl], lat[sl], shifts, ex)
        inside = d < r_max
        ft, fc, fp, _ = np.nonzero(inside)
        hits.append((ft + lo, fc, fp, d[inside]))
    frame, centre, point, distance = (np.concatenate(parts) for parts in zip(*hits, strict=True))
    return (
        frame.astype(np.int64, copy=False),
        centre.astype(np.int64, copy=False),
        point.astype(np.int64, copy=False),
        distance,
    )
