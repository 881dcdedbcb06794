"""Ground-truth point clouds from triangle meshes: the baseline's and the study's pipelines.

Shapes: V vertices, F faces, M dense points, N = n_points output points (1024 by default; 2048 and 4096
are supported, any N >= 1 works). Coordinates come out in whatever frame the input vertices are in
(the pipeline passes render-frame vertices, see data.meshes).

* `baseline_gt`: n_dense = 16384 uniform surface samples, then farthest point sampling down to N -- what
  the baseline's file name ``pcl_1024_fps_trimesh.npy`` describes (baseline §2.6).
* `area_gt`: N points, triangles drawn with replacement with probability proportional to their area and
  a uniform point inside each -- the study's pipeline (baseline §11.2), seeded here.

Both draw from the same uniform-on-the-surface distribution (`sample_surface_uniform`); they differ only
in the FPS step, which spreads the baseline's points evenly instead of following the area density.
Everything is vectorised over points; FPS loops over its N picks, each pick vectorised over M points.
"""

from __future__ import annotations

import numpy as np

BASELINE_N_DENSE = 16384  # dense uniform samples before FPS (baseline §2.6, mission.md: 16,384 -> 1024)
DEFAULT_N_POINTS = 1024   # points per GT cloud (baseline §2.1 file names, §11.2 k = 1024)


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Areas of the triangles.

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int indices into `vertices`.

    Returns:
        [F] float64 areas, half the norm of the edge cross product (the fork's Heron formula,
        baseline §11.2 step 3, gives the same values with more round-off on thin triangles).
    """
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def sample_surface_uniform(vertices: np.ndarray, faces: np.ndarray, n: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Draws n points uniformly on the surface (area-weighted face choice, uniform inside the face).

    Faces are drawn with replacement with probability area / total area (baseline §11.2 step 4); inside
    the face, with s <= t the sorted pair of two U(0, 1) draws, the point is
    s p1 + (t - s) p2 + (1 - t) p3, which is uniform on the triangle (§11.2 step 5).

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int.
        n: number of points.
        rng: numpy Generator (consumed).

    Returns:
        [n, 3] float64 points.

    Raises:
        ValueError: the mesh has no positive total area.
    """
    areas = triangle_areas(vertices, faces)
    total = areas.sum()
    if not total > 0.0:
        raise ValueError(f"surface sampling: total area {total} of {len(areas)} faces is not positive")
    chosen = rng.choice(len(areas), size=n, p=areas / total)
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)[chosen]]  # [n, 3 corners, 3]
    s, t = np.sort(rng.random((2, n)), axis=0)
    weights = np.stack([s, t - s, 1.0 - t], axis=1)  # [n, 3] barycentric
    return np.einsum("nc,ncd->nd", weights, tri)


def farthest_point_sampling(points: np.ndarray, k: int, start) -> np.ndarray:
    """Greedy farthest point sampling: each pick maximises the distance to the points already picked.

    Args:
        points: [M, 3] float.
        k: number of points to keep, 1 <= k <= M.
        start: the first index (int), or a numpy Generator that draws it uniformly in [0, M).

    Returns:
        [k] int64 indices into `points`, distinct whenever `points` holds at least k distinct points;
        ties go to the lowest index.
    """
    coords = np.ascontiguousarray(np.asarray(points, np.float64).T)  # [3, M]: one contiguous row per axis
    m = coords.shape[1]
    if not 1 <= k <= m:
        raise ValueError(f"farthest point sampling: k={k} must be in [1, {m}] (number of input points)")
    indices = np.empty(k, np.int64)
    indices[0] = int(start.integers(m)) if isinstance(start, np.random.Generator) else int(start)
    if not 0 <= indices[0] < m:
        raise ValueError(f"farthest point sampling: start index {indices[0]} outside [0, {m})")
    min_sq = np.full(m, np.inf)
    sq, diff = np.empty(m), np.empty(m)  # scratch buffers: the loop allocates nothing
    for i in range(k):
        if i:
            indices[i] = np.argmax(min_sq)
        sq.fill(0.0)
        for axis in coords:
            np.subtract(axis, axis[indices[i]], out=diff)
            sq += np.square(diff, out=diff)
        np.minimum(min_sq, sq, out=min_sq)
    return indices


def baseline_gt(vertices: np.ndarray, faces: np.ndarray, n_points: int = DEFAULT_N_POINTS,
                n_dense: int = BASELINE_N_DENSE, seed=0) -> np.ndarray:
    """The baseline's GT: n_dense uniform surface samples, FPS down to n_points (baseline §2.6).

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int.
        n_points: N, points kept.
        n_dense: M, uniform samples before FPS (M >= N).
        seed: anything `np.random.default_rng` accepts (int or sequence of ints); it fixes both the
            samples and the FPS start index.

    Returns:
        [N, 3] float32.
    """
    rng = np.random.default_rng(seed)
    dense = sample_surface_uniform(vertices, faces, n_dense, rng)
    return dense[farthest_point_sampling(dense, n_points, rng)].astype(np.float32)


def area_gt(vertices: np.ndarray, faces: np.ndarray, n_points: int = DEFAULT_N_POINTS,
            seed=0) -> np.ndarray:
    """The study's area-based GT: n_points area-proportional surface samples (baseline §11.2, seeded).

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int.
        n_points: N.
        seed: anything `np.random.default_rng` accepts.

    Returns:
        [N, 3] float32.
    """
    return sample_surface_uniform(vertices, faces, n_points, np.random.default_rng(seed)).astype(np.float32)
