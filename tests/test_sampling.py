"""Tests of data.sampling: points on the surface, area-proportional density (binomial tolerances),
farthest point sampling (golden, reference, subset, spacing), seeding and shapes."""

import numpy as np
import pytest
import trimesh

from data import meshes, sampling

N_SIGMA = 5.0  # a correct sampler fails a 5-sigma binomial check with probability about 6e-7


def _binomial_ok(count: int, n: int, p: float) -> bool:
    """|count - n p| <= 5 sigma with sigma = sqrt(n p (1 - p)), the binomial standard deviation."""
    return abs(count - n * p) <= N_SIGMA * np.sqrt(n * p * (1.0 - p))


def _distance_to_surface(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    """[N] exact distance of each point to its closest face (brute force over all point-face pairs)."""
    tri = mesh.triangles
    out = np.empty(len(points))
    for chunk in np.array_split(np.arange(len(points)), 16):
        p = np.repeat(np.asarray(points[chunk], np.float64), len(tri), axis=0)
        closest = trimesh.triangles.closest_point(np.tile(tri, (len(chunk), 1, 1)), p)
        out[chunk] = np.linalg.norm(closest - p, axis=1).reshape(len(chunk), len(tri)).min(axis=1)
    return out


@pytest.fixture(scope="module")
def chair(sample_dir):
    """A real chair of the built-in sample (1152 faces) in the render frame."""
    mesh = meshes.load_mesh(sample_dir / "chair" / "sh3d_blendswap-cc-0_deckChair.ply")
    return meshes.to_render_frame(meshes.normalise(mesh))


@pytest.mark.parametrize("pipeline", [sampling.baseline_gt, sampling.area_gt])
def test_points_lie_on_the_surface(chair, pipeline):
    points = pipeline(chair.vertices, chair.faces, seed=3)
    assert points.dtype == np.float32 and points.shape == (1024, 3)
    assert _distance_to_surface(points, chair).max() < 1e-6


def _two_triangles(small_scale: float) -> trimesh.Trimesh:
    """A unit right triangle at z = 0 and a copy scaled by `small_scale` at z = 1 (areas 1/2 and s^2/2)."""
    big = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    small = big * small_scale + [0, 0, 1]
    return trimesh.Trimesh(np.vstack([big, small]), [[0, 1, 2], [3, 4, 5]], process=False)


def test_face_choice_follows_the_area_ratio():
    mesh = _two_triangles(small_scale=0.5)  # areas 0.5 and 0.125: P(small) = 0.2
    n = 50_000
    points = sampling.sample_surface_uniform(mesh.vertices, mesh.faces, n, np.random.default_rng(0))
    on_small = int(np.sum(points[:, 2] > 0.5))
    assert _binomial_ok(on_small, n, 0.2), on_small
    assert not _binomial_ok(on_small, n, 0.5)  # what a per-face (area-blind) choice would give


def test_points_are_uniform_inside_a_triangle():
    mesh = _two_triangles(small_scale=1e-9)  # practically all points on the unit triangle
    n = 50_000
    points = sampling.sample_surface_uniform(mesh.vertices, mesh.faces, n, np.random.default_rng(1))
    x, y = points[:, 0], points[:, 1]
    assert np.all((x >= 0) & (y >= 0) & (x + y <= 1 + 1e-12))
    # The corner triangle x + y < 1/2 holds a quarter of the area; the strip x < 1/4 holds 7/16.
    assert _binomial_ok(int(np.sum(x + y < 0.5)), n, 0.25)
    assert _binomial_ok(int(np.sum(x < 0.25)), n, 7.0 / 16.0)


@pytest.mark.parametrize("n_points", [1024, 4096])
def test_area_gt_density_on_a_box(n_points):
    extents = np.array([4.0, 2.0, 1.0])
    box = trimesh.creation.box(extents=extents)
    points = sampling.area_gt(box.vertices, box.faces, n_points=n_points, seed=7)
    assert points.shape == (n_points, 3) and points.dtype == np.float32
    # A point lies on a face normal to axis a when |coordinate a| = extent a / 2 (float32 round-off).
    face_axis = np.argmax(np.isclose(np.abs(points), extents / 2, atol=1e-6), axis=1)
    pair_areas = np.array([2 * 1, 4 * 1, 4 * 2])  # faces normal to x, y, z
    for axis, area in enumerate(pair_areas):
        assert _binomial_ok(int(np.sum(face_axis == axis)), n_points, area / pair_areas.sum()), axis


def _reference_fps(points: np.ndarray, k: int, start: int) -> np.ndarray:
    """Textbook FPS: distance of every point to every picked point, recomputed at each step."""
    picked = [start]
    for _ in range(k - 1):
        d = np.linalg.norm(points[:, None, :] - points[None, picked, :], axis=2).min(axis=1)
        picked.append(int(np.argmax(d)))
    return np.array(picked)


def test_fps_golden_on_a_line():
    line = np.stack([np.arange(11.0), np.zeros(11), np.zeros(11)], axis=1)
    # From 0: the far end 10, the middle 5, then the first of the ties {2, 3, 7, 8} is 2, then 7.
    np.testing.assert_array_equal(sampling.farthest_point_sampling(line, 5, 0), [0, 10, 5, 2, 7])


def test_fps_matches_the_reference():
    points = np.random.default_rng(2).normal(size=(600, 3))
    np.testing.assert_array_equal(sampling.farthest_point_sampling(points, 64, 17),
                                  _reference_fps(points, 64, 17))


def test_fps_start_from_generator_and_errors():
    points = np.random.default_rng(3).random((100, 3))
    expected_start = np.random.default_rng(9).integers(100)
    assert sampling.farthest_point_sampling(points, 5, np.random.default_rng(9))[0] == expected_start
    with pytest.raises(ValueError, match="k=101"):
        sampling.farthest_point_sampling(points, 101, 0)
    with pytest.raises(ValueError, match="start index 100"):
        sampling.farthest_point_sampling(points, 5, 100)


def _min_spacing(points: np.ndarray) -> float:
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    return float(np.min(d[np.triu_indices(len(points), 1)]))


def test_baseline_gt_is_an_fps_subset_of_the_dense_samples_and_better_spread(chair):
    seed, n_dense, n_points = 5, 4096, 256
    gt = sampling.baseline_gt(chair.vertices, chair.faces, n_points=n_points, n_dense=n_dense, seed=seed)
    dense = sampling.sample_surface_uniform(chair.vertices, chair.faces, n_dense, np.random.default_rng(seed))
    rows = {tuple(p) for p in dense.astype(np.float32)}
    assert all(tuple(p) in rows for p in gt)
    assert len({tuple(p) for p in gt}) == n_points
    rng = np.random.default_rng(0)
    random_best = max(_min_spacing(dense[rng.choice(n_dense, n_points, replace=False)]) for _ in range(20))
    assert _min_spacing(gt) > 2 * random_best


@pytest.mark.parametrize("pipeline", [sampling.baseline_gt, sampling.area_gt])
def test_same_seed_same_cloud_other_seed_other_cloud(chair, pipeline):
    a = pipeline(chair.vertices, chair.faces, n_points=512, seed=11)
    np.testing.assert_array_equal(a, pipeline(chair.vertices, chair.faces, n_points=512, seed=11))
    assert not np.allclose(a, pipeline(chair.vertices, chair.faces, n_points=512, seed=12))


@pytest.mark.parametrize("n_points", [1024, 2048, 4096])
def test_baseline_gt_point_counts(n_points):
    box = trimesh.creation.box()
    out = sampling.baseline_gt(box.vertices, box.faces, n_points=n_points, seed=0)
    assert out.shape == (n_points, 3) and out.dtype == np.float32


def test_zero_area_surface_is_refused():
    flat = np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match="total area 0.0 of 1 faces"):
        sampling.area_gt(flat, [[0, 1, 2]], seed=0)
