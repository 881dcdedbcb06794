"""Tests of data.render: the renderer is the exact inverse of geometry.camera (ray goldens, pixel goldens
of squares at three poses), shading and colour goldens, pose sampling, and the key check that a model's
GT cloud projected with the baseline camera at the render pose lands on the rendered mask."""

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy import ndimage

from data import meshes, render, sampling
from geometry import camera

SIZE = 64


def _square(corner, edge_a, edge_b) -> trimesh.Trimesh:
    """Two triangles spanning corner + s edge_a + t edge_b, s, t in [0, 1]."""
    c, a, b = (np.asarray(v, np.float64) for v in (corner, edge_a, edge_b))
    return trimesh.Trimesh([c, c + a, c + a + b, c + b], [[0, 1, 2], [0, 2, 3]], process=False)


@pytest.mark.parametrize("supersample", [1, 3])
def test_rays_are_the_exact_inverse_of_the_camera(supersample):
    renderer = render.Renderer(SIZE, supersample=supersample)
    pose = render.sample_views(3, np.random.default_rng(0)).astype(np.float64)
    origins, directions = renderer.rays(pose)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    sub = (np.arange(SIZE)[:, None] + offsets).ravel()
    expected_u, expected_v = (g.ravel() for g in np.meshgrid(sub, sub, indexing="ij"))
    for t in (1.0, 2.5):  # two points along every ray project to the ray's sub-pixel
        points = origins[:, None, :] + t * directions
        uvw = camera.project(points, pose, image_size=SIZE).numpy()
        np.testing.assert_allclose(uvw[..., 0], np.broadcast_to(expected_u, uvw.shape[:2]), atol=1e-9)
        np.testing.assert_allclose(uvw[..., 1], np.broadcast_to(expected_v, uvw.shape[:2]), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(origins, axis=1), camera.CAMERA_DISTANCE)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=2), 1.0)


# Squares whose edges fall on half-pixel lines u = 16.5, 47.5 (rows 17..47) and v = 20.5, 30.5
# (columns 21..30), derived by hand from baseline §5.1-5.2 at depth 2: u = 32 + 60 x_cam, v = 32 + 60 y_cam.
A, B = 15.5 / 60, 11.5 / 60
GOLDEN_SQUARES = {
    # pose (0, 0): camera at +z, x_cam = x, y_cam = y.
    "front": ((0.0, 0.0), _square((-A, -B, 0), (2 * A, 0, 0), (0, 10 / 60, 0))),
    # az = pi/2 turns about x: the camera sits at world +y and sees (x, -z) as (x_cam, y_cam).
    "azimuth_90": ((np.pi / 2, 0.0), _square((-A, 0, B), (2 * A, 0, 0), (0, 0, -10 / 60))),
    # el = pi/2 turns about y: the camera sits at world -x (canonical up) and sees (z, y).
    "elevation_90": ((0.0, np.pi / 2), _square((0, -B, -A), (0, 0, 2 * A), (0, 10 / 60, 0))),
}


@pytest.mark.parametrize("supersample", [1, 3])
@pytest.mark.parametrize("name", sorted(GOLDEN_SQUARES))
def test_square_covers_exactly_the_expected_pixels(name, supersample):
    (az, el), square = GOLDEN_SQUARES[name]
    rgb, mask = render.Renderer(SIZE, supersample=supersample).render(square, az, el, colour=(1, 1, 1))
    expected = np.zeros((SIZE, SIZE), np.uint8)
    expected[17:48, 21:31] = 255
    np.testing.assert_array_equal(mask, expected)
    assert np.all(rgb[mask == 0] == 0) and np.all(rgb[mask > 0].max(axis=1) > 0)


def test_positive_elevation_looks_from_above_and_azimuth_orbits_about_up():
    up = meshes.to_render_frame(np.array([0.0, 1.0, 0.0]))  # canonical up in the render frame
    pose = [[az, el] for az in np.linspace(-np.pi, np.pi, 7) for el in np.radians([-20.0, 0.0, 30.0])]
    origins, _ = render.Renderer(8).rays(pose)
    heights = (origins @ up).reshape(7, 3) / camera.CAMERA_DISTANCE
    np.testing.assert_allclose(heights, np.broadcast_to(np.sin(np.radians([-20.0, 0.0, 30.0])), (7, 3)),
                               atol=1e-12)


def test_headlight_lambert_shading_golden():
    renderer = render.Renderer(SIZE, supersample=1)
    colour = (1.0, 0.4, 0.0)
    facing = _square((-0.3, -0.3, 0), (0.6, 0, 0), (0, 0.6, 0))
    rgb, _ = renderer.render(facing, 0.0, 0.0, colour)
    # The ray of pixel (32, 32) runs along -z: |n . r| = 1, shade = AMBIENT + DIFFUSE = 1.
    np.testing.assert_array_equal(rgb[32, 32], [255, 102, 0])
    tilted = facing.copy()
    tilted.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 3, [1, 0, 0]))
    rgb, _ = renderer.render(tilted, 0.0, 0.0, colour)
    # Normal at 60° from the ray: shade = 0.3 + 0.7 cos 60° = 0.65 -> 165.75, 66.3, 0.
    np.testing.assert_array_equal(rgb[32, 32], [166, 66, 0])


def test_face_colours_are_used():
    square = _square((-0.3, -0.3, 0), (0.6, 0, 0), (0, 0.6, 0))  # face 0 is below the diagonal u = v
    square.visual.face_colors = [[255, 0, 0, 255], [0, 0, 255, 255]]
    rgb, _ = render.Renderer(SIZE, supersample=1).render(square, 0.0, 0.0, colour=(0, 1, 0))
    assert rgb[40, 24, 0] > 200 and rgb[40, 24, 1:].max() == 0  # row > column: face 0, red
    assert rgb[24, 40, 2] > 200 and rgb[24, 40, :2].max() == 0  # face 1, blue


def test_vertex_colours_are_interpolated():
    square = _square((-0.3, -0.3, 0), (0.6, 0, 0), (0, 0.6, 0))
    square.visual.vertex_colors = [[255, 0, 0, 255], [255, 0, 0, 255], [0, 0, 255, 255], [0, 0, 255, 255]]
    rgb, mask = render.Renderer(SIZE, supersample=1).render(square, 0.0, 0.0)
    # Colour is affine in y (red at y = -0.3, blue at 0.3); column j sees y = (j - 32) / 60.
    columns = np.arange(20, 45)
    blue_share = rgb[32, columns, 2] / (rgb[32, columns, 0].astype(float) + rgb[32, columns, 2])
    np.testing.assert_allclose(blue_share, ((columns - 32) / 60 + 0.3) / 0.6, atol=2.5 / 255)
    assert mask[32, columns].min() == 255


def test_textures_are_used():
    square = _square((-0.3, -0.3, 0), (0.6, 0, 0), (0, 0.6, 0))
    square.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]],
                                                  image=Image.new("RGB", (4, 4), (0, 200, 0)))
    rgb, _ = render.Renderer(SIZE, supersample=1).render(square, 0.0, 0.0, colour=(1, 0, 0))
    np.testing.assert_array_equal(rgb[32, 32], [0, 200, 0])  # face-on centre pixel: the texel colour


def test_uncoloured_mesh_needs_a_colour():
    square = _square((-0.3, -0.3, 0), (0.6, 0, 0), (0, 0.6, 0))
    with pytest.raises(ValueError, match="pass colour="):
        render.Renderer(SIZE).render(square, 0.0, 0.0)


def test_model_colour_is_deterministic_and_distinct():
    ids = [f"model_{i}" for i in range(50)]
    colours = np.array([render.model_colour(i) for i in ids])
    np.testing.assert_array_equal(colours, [render.model_colour(i) for i in ids])
    assert len({tuple(c) for c in colours.round(6)}) == len(ids)
    assert np.all((colours > 0) & (colours <= 1)) and np.allclose(colours.max(axis=1), render.MODEL_VALUE)


def test_sample_views_ranges_and_seeding():
    views = render.sample_views(4000, np.random.default_rng(0))
    assert views.shape == (4000, 2) and views.dtype == np.float32
    az, el = views.T
    assert -np.pi <= az.min() < -3.0 and 3.0 < az.max() < np.pi
    assert np.radians(-20) <= el.min() < np.radians(-19) and np.radians(39) < el.max() < np.radians(40)
    np.testing.assert_array_equal(views[:3], render.sample_views(3, np.random.default_rng(0)))


def test_supersampled_mask_contains_the_centre_sampled_mask(sample_dir):
    mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(
        sample_dir / "chair" / "sh3d_blendswap-cc-0_deckChair.ply")))
    pose = render.sample_views(3, np.random.default_rng(1))
    fine_renderer = render.Renderer(SIZE, supersample=3)
    _, fine = fine_renderer.render_views(mesh, pose, colour=(1, 1, 1))
    _, coarse = render.Renderer(SIZE, supersample=1).render_views(mesh, pose, colour=(1, 1, 1))
    assert np.all(fine[coarse > 0] > 0)  # the middle of 3 x 3 sub-samples is the pixel centre
    assert (fine > 0).sum() > (coarse > 0).sum()  # and thin parts add pixels
    _, mask = fine_renderer.render(mesh, float(pose[1, 0]), float(pose[1, 1]), colour=(1, 1, 1))
    np.testing.assert_array_equal(mask, fine[1])  # render == render_views, view by view


def test_default_sampling_is_at_least_drcs_224_px():
    assert [render.Renderer(size).supersample for size in (32, 64, 128, 224, 256)] == [7, 4, 2, 1, 1]


# --- The key check: GT cloud, projected by geometry.camera at the stored pose, lands on the rendered mask.
# Thresholds: mean IoU over the views of a category >= 0.9 and every view >= 0.8 (measured with these
# seeds: means 0.94-0.96, worst view 0.91, a thin-legged chair); a mirrored azimuth scores 0.47.
# 1024 FPS points on a unit-sized model seen at 60 px per unit are about 2 px apart (median nearest-
# neighbour spacing 1.1-3.8 px over the shared real meshes), so a 2-px disk closes the gaps between
# neighbouring points; dilating the mask by the same disk keeps the comparison symmetric (thin parts
# thicken equally in both).
DILATION = np.add.outer(np.arange(-2, 3) ** 2, np.arange(-2, 3) ** 2) <= 4
VIEWS_PER_MODEL = 3


def _raster(uvw: np.ndarray) -> np.ndarray:
    """[N, 3] (u, v, w) -> [H, W] bool: the pixels whose centres are nearest to the projected points."""
    ij = np.round(uvw[:, :2]).astype(int)
    ij = ij[np.all((ij >= 0) & (ij < SIZE), axis=1)]
    image = np.zeros((SIZE, SIZE), bool)
    image[ij[:, 0], ij[:, 1]] = True
    return image


def _agreement(mesh, pose, colour, flip_azimuth=False):
    """Per view: IoU of the dilated baseline-GT raster with the dilated mask, and the share of the
    baseline and area GT points whose pixel lies in the mask grown by one pixel."""
    _, masks = render.Renderer(SIZE).render_views(mesh, pose, colour)
    project_pose = pose * np.float32([-1, 1]) if flip_azimuth else pose
    rows = []
    for cloud in (sampling.baseline_gt(mesh.vertices, mesh.faces, seed=0),
                  sampling.area_gt(mesh.vertices, mesh.faces, seed=0)):
        uvw = camera.project(np.repeat(cloud[None], len(pose), 0), project_pose, image_size=SIZE).numpy()
        rows.append([_raster(view) for view in uvw])
    out = []
    for k, mask in enumerate(masks > 0):
        a, b = ndimage.binary_dilation(rows[0][k], DILATION), ndimage.binary_dilation(mask, DILATION)
        grown = ndimage.binary_dilation(mask)
        out.append([(a & b).sum() / (a | b).sum()] + [grown[r[k]].sum() / r[k].sum() for r in rows])
    return out


@pytest.mark.parametrize("source", ["builtin", "realmeshes"])
def test_projected_gt_lands_on_the_rendered_mask(source, request):
    root = "builtin" if source == "builtin" else request.getfixturevalue("realmeshes_dir")
    rng = np.random.default_rng(2024)
    per_category = {}
    for item in meshes.discover(root):
        mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(item.path)))
        pose = render.sample_views(VIEWS_PER_MODEL, rng)
        per_category.setdefault(item.category, []).extend(
            _agreement(mesh, pose, render.model_colour(item.model_id)))
    assert set(per_category) == {"car", "chair"}
    for category, rows in per_category.items():
        iou, inside_baseline, inside_area = np.array(rows).T
        assert iou.mean() >= 0.9, (category, iou.mean())
        assert iou.min() >= 0.8, (category, iou.min())
        # Measured: every point of both clouds is within one pixel of the mask, in every view but one
        # (a built-in car whose thin part, under a pixel wide at the unit-diagonal scale, leaves 2 of its
        # 1024 baseline-GT points 1-2 px off: 0.9983).
        inside = np.concatenate([inside_baseline, inside_area])
        assert inside.mean() >= 0.9999 and inside.min() >= 0.998, (category, inside.mean(), inside.min())


def _border_share(root, scale: str, views: int = 3) -> dict[str, float]:
    """Per category: the share of rendered masks with a pixel on the image border."""
    rng = np.random.default_rng(7)
    touching = {}
    for item in meshes.discover(root):
        mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(item.path), scale=scale))
        _, masks = render.Renderer(SIZE).render_views(mesh, render.sample_views(views, rng), (1, 1, 1))
        border = np.concatenate([masks[:, 0], masks[:, -1], masks[:, :, 0], masks[:, :, -1]], axis=1)
        touching.setdefault(item.category, []).extend(border.max(axis=1) > 0)
    return {category: float(np.mean(t)) for category, t in touching.items()}


def test_objects_stay_inside_the_frame_as_in_the_baseline_renders(realmeshes_dir):
    """DRC rendered ShapeNet v1 (unit bounding-box diagonal) at distance 2 without rescaling (baseline
    §2.1): objects stay inside the frame. The default normalisation reproduces that; the longest-side-1
    scale is the negative control (measured with 10 views per model: 0.25 % vs 79 % of the masks)."""
    inside = _border_share(realmeshes_dir, "diagonal")
    assert max(inside.values()) <= 0.02, inside
    clipped = _border_share(realmeshes_dir, "longest_side")
    assert min(clipped.values()) >= 0.3, clipped


def test_the_agreement_check_fails_for_a_wrong_azimuth_sign(sample_dir):
    """Negative control: the same check with the azimuth mirrored is far from the thresholds."""
    ious = []
    for path in sorted(sample_dir.glob("*/*.ply"))[::4]:
        mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(path)))
        pose = np.float32([[1.0, 0.3], [-2.0, 0.1], [2.2, -0.2]])  # away from az = 0 and pi (= -az)
        ious += [row[0] for row in _agreement(mesh, pose, (1, 1, 1), flip_azimuth=True)]
    assert np.mean(ious) < 0.8, np.mean(ious)
