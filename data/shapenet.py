"""Ingest of the baseline's released data layout (baseline §2.1, §2.6) into the project's model records.

Layout, relative to a root (the baseline's ``data/`` directory)::

    ShapeNet_rendered/<synset>/<model_id>/render_<v>.png   RGB(A) input view v (v = 0..9)
    ShapeNet_rendered/<synset>/<model_id>/mask_<v>.png     silhouette of view v
    ShapeNet_rendered/<synset>/<model_id>/view.txt         line v: "az el tilt dist" (degrees, units)
    ShapeNet_v1/<synset>/<model_id>/pcl_<N>_fps_trimesh.npy    [N, 3] baseline GT (name in the code)
    ShapeNet_v1/<synset>/<model_id>/pointcloud_<N>.npy         [N, 3] baseline GT (name in the download)
    ShapeNet_v1/<synset>/<model_id>/gt_pointcloud_<N>.npy      [N, 3] the study's area-based GT

A model is a directory of ``ShapeNet_rendered``. Its record has the same content as a model built from
a mesh (see `data.build`): images uint8 [V, H, W, 3], masks uint8 [V, H, W] in {0, 255}, poses float32
[V, 2] radians, and the clouds float32 [N, 3] that exist (``gt_uniform`` from either baseline file,
``gt_area`` from the study's file). Conversions:

* RGB: ``render_<v>.png`` converted to RGB by dropping any alpha channel without compositing, exactly
  what the baseline's ``decode_png(channels=3)`` does (baseline §2.4); resized to H x W with box
  (area) filtering when its size differs (DRC writes 224 px, baseline §2.1).
* mask: ``mask_<v>.png`` as grey, box-resized when needed, then binarised at half range (>= 128 → 255).
* pose: the first two numbers of line v of ``view.txt``, degrees → radians (baseline §2.5). They are
  DRC's angles; whether they match `geometry.camera`'s convention is baseline §15's open question.
* clouds: moved into the project's frames like a mesh: each cloud is centred on its bounding box and
  scaled to a bounding-box diagonal of 1 (`data.meshes.normalise`, ShapeNet v1 being y up), then
  `data.meshes.to_render_frame`.

Any missing or malformed file raises `LayoutError` naming it, and the whole model is skipped: a model
never contributes an image without its own mask and pose.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from data.meshes import SYNSET_NAMES, MeshError, normalise, to_render_frame

RENDERED_DIR = "ShapeNet_rendered"
CLOUDS_DIR = "ShapeNet_v1"
VIEW_FILE = "view.txt"
# Ground-truth files per type, first found wins; {n} is the number of points (baseline §2.1, §2.6, §11.2).
CLOUD_FILES = {
    "gt_uniform": ("pcl_{n}_fps_trimesh.npy", "pointcloud_{n}.npy"),
    "gt_area": ("gt_pointcloud_{n}.npy",),
}


class LayoutError(MeshError):
    """A model of the baseline's layout that cannot be used, with the file (`path`) and the `reason`."""


@dataclasses.dataclass(frozen=True)
class LayoutItem:
    """One model of the baseline's layout: id, category name, synset and its two directories."""

    model_id: str
    category: str
    synset: str
    render_dir: Path
    cloud_dir: Path


def discover_layout(root, category: str | None = None) -> list[LayoutItem]:
    """Lists the models of ``<root>/ShapeNet_rendered``, sorted by (category, model_id).

    Args:
        root: directory holding ``ShapeNet_rendered`` and ``ShapeNet_v1``.
        category: keep only this category (name such as "car", or synset id).

    Returns:
        LayoutItem list, non-empty. Category names come from `data.meshes.SYNSETS` (the synset id for
        others).

    Raises:
        ValueError: no ``ShapeNet_rendered`` directory, or no model in it (for `category`).
    """
    rendered = Path(root) / RENDERED_DIR
    if not rendered.is_dir():
        raise ValueError(f"{rendered} not found: --baseline_layout expects the directory holding "
                         f"{RENDERED_DIR}/ and {CLOUDS_DIR}/ (baseline §2.1)")
    items = []
    for synset_dir in sorted(d for d in rendered.iterdir() if d.is_dir()):
        name = SYNSET_NAMES.get(synset_dir.name, synset_dir.name)
        if category is not None and category not in (name, synset_dir.name):
            continue
        clouds = Path(root) / CLOUDS_DIR / synset_dir.name
        items += [LayoutItem(d.name, name, synset_dir.name, d, clouds / d.name)
                  for d in sorted(d for d in synset_dir.iterdir() if d.is_dir())]
    if not items:
        raise ValueError(f"no model directories in {rendered}"
                         + (f" for category {category!r}" if category else ""))
    items.sort(key=lambda item: (item.category, item.model_id))
    return items


def load_layout_model(item: LayoutItem, views, image_size: int, n_points: int) -> dict:
    """Reads views `views` of one model and its clouds into a model record (module docstring).

    Args:
        item: the model.
        views: view indices to read (each needs render, mask and a view.txt line).
        image_size: H = W of the record's images.
        n_points: N, rows expected in every cloud file.

    Returns:
        {"views" int64 [V], "images" uint8 [V, H, W, 3], "masks" uint8 [V, H, W], "poses" float32
        [V, 2], and "gt_uniform" / "gt_area" float32 [N, 3] for the clouds found}.

    Raises:
        LayoutError: a missing or malformed file, or no baseline cloud (``gt_uniform``) at all.
    """
    poses = _read_poses(item.render_dir / VIEW_FILE, views)
    images = np.stack([_read_rgb(item.render_dir / f"render_{v}.png", image_size) for v in views])
    masks = np.stack([_read_mask(item.render_dir / f"mask_{v}.png", image_size) for v in views])
    record = {"views": np.asarray(views, np.int64), "images": images, "masks": masks, "poses": poses}
    record.update(_read_clouds(item.cloud_dir, n_points))
    return record


def model_files(item: LayoutItem, views, n_points: int) -> list[Path]:
    """Every file `load_layout_model` may read for these views (present or not), in a fixed order."""
    renders = [item.render_dir / f"{kind}_{v}.png" for v in views for kind in ("render", "mask")]
    clouds = [item.cloud_dir / name.format(n=n_points) for names in CLOUD_FILES.values() for name in names]
    return [item.render_dir / VIEW_FILE, *renders, *clouds]


def _read_poses(path: Path, views) -> np.ndarray:
    """(az, el) in radians [V, 2] float32 from lines `views` of a DRC view.txt (baseline §2.1, §2.5)."""
    if not path.is_file():
        raise LayoutError(path, "missing")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    poses = []
    for v in views:
        if v >= len(lines):
            raise LayoutError(path, f"has {len(lines)} view lines, view {v} requested")
        try:
            az, el = float(lines[v][0]), float(lines[v][1])
        except (IndexError, ValueError) as exc:
            raise LayoutError(path, f"line {v + 1} is not 'az el tilt dist': {' '.join(lines[v])!r}") from exc
        poses.append(np.radians([az, el]))
    return np.asarray(poses, np.float32)


def _open_png(path: Path, mode: str, image_size: int) -> np.ndarray:
    """A square PNG converted to PIL `mode` ("RGB" drops alpha) and box-resized to image_size."""
    if not path.is_file():
        raise LayoutError(path, "missing")
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
    except OSError as exc:
        raise LayoutError(path, f"unreadable image: {exc}") from exc
    if image.width != image.height:
        raise LayoutError(path, f"not square ({image.width}x{image.height})")
    if image.width != image_size:
        image = image.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(image, np.uint8)


def _read_rgb(path: Path, image_size: int) -> np.ndarray:
    return _open_png(path, "RGB", image_size)


def _read_mask(path: Path, image_size: int) -> np.ndarray:
    return np.where(_open_png(path, "L", image_size) >= 128, 255, 0).astype(np.uint8)


def _read_clouds(cloud_dir: Path, n_points: int) -> dict:
    """The clouds found in `cloud_dir`, each normalised and in the render frame, {type: [N, 3]}."""
    clouds = {}
    for gt, names in CLOUD_FILES.items():
        path = next((cloud_dir / name.format(n=n_points) for name in names
                     if (cloud_dir / name.format(n=n_points)).is_file()), None)
        if path is None:
            continue
        try:
            cloud = np.load(path)
        except (OSError, ValueError) as exc:
            raise LayoutError(path, f"unreadable: {exc}") from exc
        if cloud.shape != (n_points, 3) or not np.all(np.isfinite(cloud)):
            raise LayoutError(path, f"expected {n_points} finite xyz rows, got shape {cloud.shape}")
        clouds[gt] = cloud.astype(np.float64)
    if "gt_uniform" not in clouds:
        wanted = " or ".join(name.format(n=n_points) for name in CLOUD_FILES["gt_uniform"])
        raise LayoutError(cloud_dir, f"no baseline cloud ({wanted})")
    # Each cloud on its own bounding box: the study's gt_pointcloud_1024.npy is in raw mesh coordinates,
    # which need not match the frame and scale of the baseline's clouds (baseline §11.2, §15.6).
    return {gt: to_render_frame(normalise(trimesh.PointCloud(cloud)).vertices).astype(np.float32)
            for gt, cloud in clouds.items()}
