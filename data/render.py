"""Headless renders of a mesh through the baseline camera: shaded RGB, binary mask, random poses.

Shapes: H = W = image_size; V views. Meshes come in the RENDER frame (data.meshes), so that projecting a
render-frame point cloud with `geometry.camera.project` at the same pose lands on the rendered mask.

Camera: the exact inverse of geometry.camera (baseline §5.1-5.2). A camera point is `p_cam = R p - (0, 0, d)`
with `R = R_el(el) R_az(az)` and d = 2, and pixel (i, j) has its centre at u = i (row, from x) and
v = j (column, from y), with `u = c + f x / |z|`, `v = c + f y / |z|` (f = 120, c = 32 at 64 px, both
scaled by image_size / 64). A ray through image point (u, v) therefore leaves the camera centre
R^T (0, 0, d) along R^T ((u - c) / f, (v - c) / f, -1).

Sampling and mask: s x s rays per pixel on a regular sub-pixel grid (s = 1: the pixel centre). The
mask is 1 where any of them hits the mesh, i.e. where the pixel contains visible surface, which is the
limit of "some projected surface point rounds to this pixel" -- what the baseline's point splatting
(§5.3) draws from a dense cloud. The colour is the mean over the rays that hit, so mask and image
agree. Default s = ceil(224 / image_size) (4 at 64 px, 2 at 128, 1 at 224): the baseline's 64-px
images were downsampled from DRC's 224-px renders (baseline §2.1, §15.3), so thin parts such as chair
legs, narrower than a 64-px pixel, stay in the mask as they do in the GT clouds (measured on the shared
chairs: with s = 1 up to a third of a thin chair's GT points fell outside its mask, with s = 3 under a
tenth, and all within one pixel of it).

Shading: Lambertian with a headlight (a light at the camera) plus ambient light,
`rgb = albedo * (AMBIENT + DIFFUSE * |n . r|)` for face normal n and unit ray r, both-sided because CAD
meshes are rarely consistently oriented. AMBIENT + DIFFUSE = 1, so a surface facing the camera shows its
albedo exactly; AMBIENT > 0 keeps grazing surfaces visible (every mask pixel has a non-black colour).
Background: black (0), as the baseline's renders presumably are (baseline §2.4).

Albedo: a mesh's own face or vertex colours (vertex colours interpolated barycentrically at the hit
point; textures are reduced to vertex colours by trimesh). A mesh without colours gets the `colour`
argument; `model_colour(model_id)` is the project's choice for it: a hue drawn from the SHA-256 of the
model id, so each model keeps one colour across views, runs and machines, and colour varies across the
data set as it does across ShapeNet's textured models.

Why ray casting with trimesh + embreex (Embree BVH) rather than OpenGL: no GL library and no apt
package, safe inside a process that imported TensorFlow 2.21 (Mesa-based renderers segfault there; this
module imports TensorFlow itself, through geometry.camera) and in forked workers (docs: rendering-notes).
Measured with `python -m bench.bench_render --source <repo>/../shared/data/realmeshes` (80 meshes,
108-124k faces, one process on a shared 2-core machine, OPENBLAS_NUM_THREADS=1): 16.7 / 16.1 / 14.7 ms
per view at 64 / 128 / 224 px with the default sampling (3.0 / 6.4 / 15.1 ms with one ray per pixel),
plus 46 ms (median) to build a mesh's BVH once for all its views: the same order as the mesh's
baseline GT (about 0.1 s, data.sampling), so rendering does not dominate a data build.
"""

from __future__ import annotations

import colorsys
import hashlib
import math

import numpy as np
import tensorflow as tf
import trimesh
from trimesh.ray import ray_pyembree

from geometry import camera

AMBIENT = 0.3  # share of the albedo seen on surfaces edge-on to the headlight
DIFFUSE = 1.0 - AMBIENT  # Lambertian share: a surface facing the camera shows its albedo
DRC_RENDER_SIZE = 224  # DRC's render size, downsampled to the baseline's 64-px images (baseline §2.1)
MODEL_SATURATION, MODEL_VALUE = 0.6, 0.9  # HSV of model_colour: saturated and bright on black


def model_colour(model_id: str) -> np.ndarray:
    """Deterministic albedo of an uncoloured model: hue from the SHA-256 digest of its id.

    Args:
        model_id: the model id (data.meshes.MeshItem.model_id).

    Returns:
        [3] float64 RGB in (0, 1].
    """
    hue = int.from_bytes(hashlib.sha256(model_id.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    return np.array(colorsys.hsv_to_rgb(hue, MODEL_SATURATION, MODEL_VALUE))


def sample_views(n_views: int, rng: np.random.Generator) -> np.ndarray:
    """Random render poses, as the baseline draws its random poses (baseline §7.9, ranges of §2.1).

    With r ~ U[0, 1)^2: az = 2 pi r0 - pi in [-pi, pi), el = (60 r1 - 20) deg in [-20 deg, 40 deg).

    Args:
        n_views: V.
        rng: numpy Generator (consumed).

    Returns:
        [V, 2] float32 (azimuth, elevation) in radians; render with these exact values.
    """
    r = rng.random((n_views, 2))
    low, high = camera.ELEVATION_RANGE_DEG
    az = 2.0 * np.pi * r[:, 0] - np.pi
    el = np.radians((high - low) * r[:, 1] + low)
    return np.stack([az, el], axis=1).astype(np.float32)


class Renderer:
    """Ray-casting renderer of render-frame meshes at one image size (module docstring)."""

    def __init__(self, image_size: int = camera.BASE_IMAGE_SIZE, supersample: int | None = None):
        """Precomputes the camera-frame rays: supersample^2 per pixel, on a regular sub-pixel grid.

        Args:
            image_size: H = W in pixels (intrinsics scaled by image_size / 64, geometry.camera.intrinsics).
            supersample: s, rays per pixel side; s = 1 casts one ray through each pixel centre. Default
                ceil(224 / image_size): at least DRC's sampling density (module docstring).
        """
        self.image_size = image_size
        self.supersample = supersample or math.ceil(DRC_RENDER_SIZE / image_size)
        focal, centre = camera.intrinsics(image_size)
        offsets = (np.arange(self.supersample) + 0.5) / self.supersample - 0.5  # [s] sub-pixel centres
        sub = (np.arange(image_size)[:, None] + offsets[None, :]).ravel()  # [H*s] pixel coordinates
        rows, cols = np.meshgrid(sub, sub, indexing="ij")  # [H*s, W*s]: sub-pixel (i*s+a, j*s+b)
        rays = np.stack([(rows.ravel() - centre) / focal, (cols.ravel() - centre) / focal,
                         -np.ones(rows.size)], axis=1)  # [H*s*W*s, 3] through u = row, v = column
        self._rays_cam = rays / np.linalg.norm(rays, axis=1, keepdims=True)
        sub_row, sub_col = np.divmod(np.arange(rows.size), image_size * self.supersample)
        self._pixel_of_ray = (sub_row // self.supersample) * image_size + sub_col // self.supersample

    def rays(self, pose) -> tuple[np.ndarray, np.ndarray]:
        """World-frame camera centres and unit ray directions of every pose.

        Args:
            pose: [V, 2] float (azimuth, elevation) in radians.

        Returns:
            origins [V, 3] float64 and directions [V, H*s*W*s, 3] float64 (sub-pixel row-major order).
        """
        pose = np.asarray(pose, np.float64).reshape(-1, 2)
        rot = camera.rotation_matrix(tf.constant(pose[:, 0]), tf.constant(pose[:, 1])).numpy()  # [V, 3, 3]
        origins = rot.transpose(0, 2, 1) @ np.array([0.0, 0.0, camera.CAMERA_DISTANCE])  # R^T (0, 0, d)
        directions = np.stack([self._rays_cam @ r for r in rot])  # row form of R^T r; stays unit length
        return origins, directions

    def render(self, mesh: trimesh.Trimesh, az: float, el: float,
               colour=None) -> tuple[np.ndarray, np.ndarray]:
        """Renders one view: `render_views(mesh, [[az, el]], colour)` for a single pose."""
        rgb, mask = self.render_views(mesh, [[az, el]], colour)
        return rgb[0], mask[0]

    def render_views(self, mesh: trimesh.Trimesh, pose, colour=None) -> tuple[np.ndarray, np.ndarray]:
        """Renders V views of one mesh (one camera computation, one BVH for all of them).

        Args:
            mesh: mesh in the render frame; its own face/vertex colours are used when it has some.
            pose: [V, 2] float (azimuth, elevation) in radians (baseline §5.1 convention).
            colour: [3] RGB albedo in [0, 1] for a mesh without colours (e.g. `model_colour(model_id)`).

        Returns:
            rgb [V, H, W, 3] uint8 (black background) and mask [V, H, W] uint8 in {0, 255}.

        Raises:
            ValueError: the mesh has no colours and no `colour` was given.
            RuntimeError: trimesh is not using Embree for ray casting (embreex missing).
        """
        intersector = mesh.ray  # cached on the mesh: the BVH is built once for all its views
        if not isinstance(intersector, ray_pyembree.RayMeshIntersector):
            raise RuntimeError("render: trimesh fell back to its slow ray caster; install embreex")
        visual = mesh.visual.to_color() if mesh.visual.kind == "texture" else mesh.visual
        origins, directions = self.rays(pose)
        images = [self._shade(mesh, visual, intersector, origin, dirs, colour)
                  for origin, dirs in zip(origins, directions)]
        return np.stack([rgb for rgb, _ in images]), np.stack([mask for _, mask in images])

    def _shade(self, mesh, visual, intersector, origin, directions, colour):
        """Casts one view's rays; returns rgb [H, W, 3] uint8 and mask [H, W] uint8 (see render_views)."""
        origins = np.broadcast_to(origin, directions.shape)
        if visual.kind == "vertex":
            hits, ray, tri = intersector.intersects_location(origins, directions, multiple_hits=False)
        else:
            first = intersector.intersects_first(origins, directions)
            ray = np.flatnonzero(first >= 0)
            tri, hits = first[ray], None
        albedo = _albedo(mesh, visual, tri, hits, colour)  # [hits, 3]
        lambert = np.abs(np.einsum("nd,nd->n", mesh.face_normals[tri], directions[ray]))
        pixel = self._pixel_of_ray[ray]  # [hits] flat pixel index of each ray that hit
        n_pixels = self.image_size ** 2
        hit_count = np.bincount(pixel, minlength=n_pixels)  # [H*W]
        shaded = albedo * (AMBIENT + DIFFUSE * lambert)[:, None]  # [hits, 3]
        colour_sum = np.stack([np.bincount(pixel, shaded[:, k], minlength=n_pixels) for k in range(3)], 1)
        mean_colour = colour_sum / np.maximum(hit_count, 1)[:, None]  # over the rays that hit
        shape = (self.image_size, self.image_size)
        rgb = np.clip(np.round(mean_colour * 255.0), 0, 255).astype(np.uint8).reshape(*shape, 3)
        mask = np.where(hit_count > 0, 255, 0).astype(np.uint8).reshape(shape)
        return rgb, mask


def _albedo(mesh: trimesh.Trimesh, visual, tri: np.ndarray, hits, colour) -> np.ndarray:
    """[n, 3] float albedo in [0, 1] at n hits on faces `tri` of `mesh`.

    `visual` is the mesh's ColorVisuals; `hits` [n, 3] are the hit points (needed for vertex colours).
    """
    if visual.kind == "face":
        return visual.face_colors[tri, :3] / 255.0
    if visual.kind == "vertex":
        weights = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], hits)  # [n, 3]
        corner_colours = visual.vertex_colors[mesh.faces[tri], :3] / 255.0  # [n, 3 corners, 3]
        return np.einsum("nc,ncd->nd", weights, corner_colours)
    if colour is None:
        raise ValueError("render: the mesh has no face or vertex colours; pass colour= "
                         "(e.g. data.render.model_colour(model_id))")
    return np.broadcast_to(np.asarray(colour, np.float64), (len(tri), 3))
