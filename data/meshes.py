"""Mesh input: loading with clear errors, the canonical and render frames, and source discovery.

Frames (the single statement of them for the whole project):

* CANONICAL frame: y up, the mesh centred on its axis-aligned bounding box and scaled by one of
  `NORMALISATIONS`: "diagonal" (the default) gives the bounding box a diagonal of length 1, the scale
  ShapeNetCore v1 meshes come in, which DRC rendered without rescaling for the baseline's images
  (baseline §2.1); "longest_side" gives its longest side length 1 (every coordinate in [-0.5, 0.5]).
  ShapeNetCore v1 and the built-in sample are already y up; `normalise(mesh, rotate_y_deg, scale)` first
  turns a mesh about y so that a source whose cars face another way (when the source documents it) can be
  brought into line, then centres and scales. At the baseline camera (distance 2, focal 120 px at 64 px,
  baseline §5.1-5.2) the visible half-width at the object's centre is 32 / 120 * 2 = 0.53: a unit-diagonal
  object (longest side at most 1, typically 0.8-0.9) stays inside the frame from every pose of
  `data.render.sample_views`, as DRC's renders of ShapeNet did, while a longest-side-1 object runs past the
  border in most views (measured on the shared real meshes, 10 views each: 0.25 % of the masks touch the
  border with "diagonal", 79 % with "longest_side").
* RENDER frame = the world frame of the baseline camera (baseline §5.1): `p_cam = R_el(el) R_az(az) p -
  (0, 0, 2)` with the azimuth a rotation about x, and image rows following x (u = 32 + 120 x / |z|,
  baseline §5.2-5.3). `render = CANONICAL_TO_RENDER @ canonical`, with

      CANONICAL_TO_RENDER = [[0, -1, 0],
                             [1,  0, 0],
                             [0,  0, 1]]      (a proper rotation, det = +1)

  canonical up (+y) -> render -x, i.e. towards row 0 (image up); canonical +x -> render +y (image right);
  canonical +z -> render +z (towards the camera at pose (0, 0)).

Why this choice (baseline §15.4 for our data): the baseline's azimuth spins the object about the camera
frame's x axis, which is also the image's vertical axis. DRC rendered ShapeNet with the azimuth about
the object's up axis and positive elevations looking from above (baseline §2.1, §2.5). Mapping the
object's up axis onto -x therefore makes the baseline's own `world2cam` + `perspective_transform`
reproduce DRC-like views: the azimuth orbits about the object's up axis, the object appears upright, and
the elevation range [-20°, 40°) of baseline §7.9 looks mostly from above. Every render, mask, pose and
ground-truth cloud this project writes lives in the render frame, so projecting a stored cloud with its
stored pose through the baseline formulas lands on its stored mask (tested in tests/test_render.py).

Sources understood by `discover` (deterministic order: by category, then model id):

* ``"builtin"``: the attributed sample shipped in ``data/sample/<category>/*.ply``.
* a ShapeNetCore v1 tree ``<synset>/<model_id>/model.obj`` (category named through `SYNSETS`).
* any folder of meshes: one category per sub-folder, or all files of the folder given one `category`.

Model ids: the ShapeNet model directory name, otherwise the file stem.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import fast_simplification
import numpy as np
import trimesh

SYNSETS = {"car": "02958343", "chair": "03001627", "airplane": "02691156"}
SYNSET_NAMES = {synset: name for name, synset in SYNSETS.items()}

MESH_SUFFIXES = (".obj", ".off", ".ply", ".glb")
SHAPENET_MODEL_FILE = "model.obj"
BUILTIN_DIR = Path(__file__).resolve().parent / "sample"

# Meshes with more faces than this are decimated to it: it leaves every shared real mesh untouched
# (the largest has 124k faces and loads, samples and renders in well under a second) and bounds the
# memory and BVH cost of the rare models with millions of faces.
DEFAULT_MAX_FACES = 200_000
# Decimating three of the shared real meshes 3-9x changed their area by 0.5-4.5%; a change beyond
# a quarter means whole parts were dropped (e.g. a soup of disconnected triangles), so it is refused.
DECIMATION_MAX_AREA_CHANGE = 0.25

#: How `normalise` scales a mesh: bounding-box diagonal 1 (ShapeNetCore v1's scale) or longest side 1.
NORMALISATIONS = ("diagonal", "longest_side")

CANONICAL_TO_RENDER = np.array([[0.0, -1.0, 0.0],
                                [1.0, 0.0, 0.0],
                                [0.0, 0.0, 1.0]])


class MeshError(Exception):
    """A mesh file that cannot be used, with the file and the reason.

    Attributes:
        path: the offending file.
        reason: a short human-readable reason ("unreadable: ...", "empty mesh", ...).
    """

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclasses.dataclass(frozen=True)
class MeshItem:
    """One model found by `discover`: its id, category name and mesh file."""

    model_id: str
    category: str
    path: Path


def load_mesh(path, max_faces: int = DEFAULT_MAX_FACES) -> trimesh.Trimesh:
    """Loads one mesh file (.obj/.off/.ply/.glb) as a single triangle mesh in its own frame.

    Scenes (multi-part OBJ, glTF) are flattened with their node transforms and concatenated. Meshes with
    more than `max_faces` faces are decimated to `max_faces` with fast-simplification (quadric edge
    collapse; colours are dropped by it).

    Args:
        path: file to read.
        max_faces: largest face count kept as is.

    Returns:
        trimesh.Trimesh with V vertices [V, 3] float64 and F faces [F, 3] int64, F in [1, max_faces].

    Raises:
        MeshError: unreadable file, scene with no triangle geometry, empty mesh, non-finite vertices,
            zero surface area, or a decimation that failed, did not reach `max_faces` or dropped parts.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(path, "unreadable: no such file")
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as exc:  # trimesh raises many types (ValueError, KeyError, struct.error, ...)
        raise MeshError(path, f"unreadable: {type(exc).__name__}: {exc}") from exc
    if isinstance(loaded, trimesh.Scene):
        parts = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
        if not parts:
            raise MeshError(path, "scene with no triangle geometry")
        mesh = parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)
    elif isinstance(loaded, trimesh.Trimesh):
        mesh = loaded
    else:
        raise MeshError(path, f"no triangle geometry (loaded a {type(loaded).__name__})")
    _check_geometry(path, mesh)
    if len(mesh.faces) > max_faces:
        mesh = _decimate(path, mesh, max_faces)
    return mesh


def _check_geometry(path: Path, mesh: trimesh.Trimesh) -> None:
    """Raises MeshError for an empty mesh, non-finite vertices or a zero total area."""
    if len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise MeshError(path, f"empty mesh ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces)")
    if not np.all(np.isfinite(mesh.vertices)):
        bad = int(np.sum(~np.all(np.isfinite(mesh.vertices), axis=1)))
        raise MeshError(path, f"non-finite vertices ({bad} of {len(mesh.vertices)})")
    # A degenerate (collinear) triangle's cross product is zero up to float64 round-off, i.e. about
    # eps * extent^2, so a total area below that is zero.
    extent = float(np.max(np.ptp(mesh.vertices, axis=0)))
    if not mesh.area > np.finfo(np.float64).eps * extent ** 2:
        raise MeshError(path, "zero-area mesh (every face is degenerate)")


def _decimate(path: Path, mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Decimates `mesh` to at most `max_faces` faces or raises MeshError saying why it could not."""
    n_faces = len(mesh.faces)
    welded = mesh.copy()
    welded.merge_vertices(merge_tex=True, merge_norm=True)  # edge collapses need shared vertices
    try:
        vertices, faces = fast_simplification.simplify(
            welded.vertices.astype(np.float32), welded.faces.astype(np.int32),
            target_reduction=1.0 - max_faces / n_faces)
    except Exception as exc:  # the C++ extension raises RuntimeError/ValueError on odd topology
        raise MeshError(path, f"{n_faces} faces > max_faces={max_faces} and decimation failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    if len(faces) == 0 or len(faces) > max_faces:
        raise MeshError(path, f"{n_faces} faces > max_faces={max_faces} and decimation reached "
                              f"{len(faces)} faces")
    decimated = trimesh.Trimesh(vertices.astype(np.float64), faces, process=False)
    _check_geometry(path, decimated)
    change = abs(decimated.area / mesh.area - 1.0)
    if change > DECIMATION_MAX_AREA_CHANGE:
        raise MeshError(path, f"{n_faces} faces > max_faces={max_faces} and decimation changed the surface "
                              f"area by {100 * change:.0f}% (it dropped parts instead of simplifying them)")
    return decimated


def normalise(mesh: trimesh.Trimesh, rotate_y_deg: float = 0.0, scale: str = "diagonal") -> trimesh.Trimesh:
    """Returns a copy of `mesh` in the canonical frame (module docstring).

    Args:
        mesh: a y-up mesh in its source's units.
        rotate_y_deg: rotation about +y (right-handed, degrees) applied before centring, for sources
            whose cars face another way than the project's other sources.
        scale: one of NORMALISATIONS: "diagonal" (bounding-box diagonal 1) or "longest_side" (longest
            bounding-box side 1).

    Returns:
        A new Trimesh, centred on its bounding box and scaled as `scale` says; visuals are kept.
    """
    if scale not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {scale!r}")
    out = mesh.copy()
    if rotate_y_deg:
        out.apply_transform(trimesh.transformations.rotation_matrix(np.radians(rotate_y_deg),
                                                                    [0.0, 1.0, 0.0]))
    lo, hi = out.bounds
    size = float(np.linalg.norm(hi - lo) if scale == "diagonal" else np.max(hi - lo))
    transform = np.eye(4)
    transform[:3, :3] *= 1.0 / size
    transform[:3, 3] = -0.5 * (lo + hi) / size
    out.apply_transform(transform)
    return out


def to_render_frame(mesh_or_points):
    """Rotates a canonical-frame mesh or point array into the render frame (CANONICAL_TO_RENDER).

    Args:
        mesh_or_points: trimesh.Trimesh, or points [..., 3] (any float dtype).

    Returns:
        A new Trimesh, or points [..., 3] of the input dtype.
    """
    if isinstance(mesh_or_points, trimesh.Trimesh):
        out = mesh_or_points.copy()
        transform = np.eye(4)
        transform[:3, :3] = CANONICAL_TO_RENDER
        out.apply_transform(transform)
        return out
    points = np.asarray(mesh_or_points)
    return (points @ CANONICAL_TO_RENDER.T.astype(points.dtype)).astype(points.dtype)


def discover(source, category: str | None = None) -> list[MeshItem]:
    """Lists the models of a source (module docstring), sorted by (category, model_id).

    Args:
        source: "builtin", a ShapeNetCore v1 root (``<synset>/<model_id>/model.obj``), or a folder of
            meshes (one category per sub-folder, or mesh files directly in it when `category` is given).
        category: keep only this category (a name, or a synset id for ShapeNet trees); for a flat
            folder, the category given to all of its files.

    Returns:
        MeshItem list, non-empty.

    Raises:
        ValueError: the source does not exist, is ambiguous, holds no mesh, or has duplicate model ids.
    """
    root = BUILTIN_DIR if str(source) == "builtin" else Path(source)
    if not root.is_dir():
        raise ValueError(f"mesh source {source!r} is not 'builtin' or a directory")
    synset_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name.isdigit()
                         and any(d.glob(f"*/{SHAPENET_MODEL_FILE}")))
    items = _discover_shapenet(synset_dirs, category) if synset_dirs else _discover_folder(root, category)
    if not items:
        raise ValueError(f"no meshes ({', '.join(MESH_SUFFIXES)}) found in {root}"
                         + (f" for category {category!r}" if category else ""))
    items.sort(key=lambda item: (item.category, item.model_id))
    seen = {}
    for item in items:
        key = (item.category, item.model_id)
        if key in seen:
            raise ValueError(f"duplicate model id {item.model_id!r} in category {item.category!r}: "
                             f"{seen[key]} and {item.path}")
        seen[key] = item.path
    return items


def _discover_shapenet(synset_dirs: list[Path], category: str | None) -> list[MeshItem]:
    """Models of a ShapeNetCore v1 tree, optionally only one category (name or synset)."""
    items = []
    for synset_dir in synset_dirs:
        name = SYNSET_NAMES.get(synset_dir.name, synset_dir.name)
        if category is not None and category not in (name, synset_dir.name):
            continue
        items += [MeshItem(f.parent.name, name, f)
                  for f in sorted(synset_dir.glob(f"*/{SHAPENET_MODEL_FILE}"))]
    return items


def _mesh_files(folder: Path) -> list[Path]:
    """Mesh files directly inside `folder`, sorted by name."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in MESH_SUFFIXES)


def _discover_folder(root: Path, category: str | None) -> list[MeshItem]:
    """Models of a plain folder: sub-folder = category, or flat files all of `category`."""
    if category is not None and (root / category).is_dir():
        return [MeshItem(f.stem, category, f) for f in _mesh_files(root / category)]
    flat = _mesh_files(root)
    if flat:
        if category is None:
            raise ValueError(f"{root} holds mesh files directly ({flat[0].name}, ...): pass a category "
                             "for them, or put them in one sub-folder per category")
        return [MeshItem(f.stem, category, f) for f in flat]
    if category is not None:
        raise ValueError(f"{root} has no sub-folder {category!r} and no mesh files of its own")
    return [MeshItem(f.stem, d.name, f)
            for d in sorted(d for d in root.iterdir() if d.is_dir())
            for f in _mesh_files(d)]
