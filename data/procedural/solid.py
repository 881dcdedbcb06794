"""Coloured solids for the procedural generators: primitives and one boolean union of all parts.

A generator describes an object as an `Assembly`: solids added (and cut away) in order, each with an
RGB colour. `Assembly.mesh()` evaluates the whole construction with manifold3d (exact boolean
operations with a manifold guarantee), so the result is one closed, consistently oriented surface with
no faces hidden inside the solid: the surface samplers of data.sampling then draw only visible
surface. manifold3d keeps, for every output triangle, the id of the input solid it came from; that id
gives the triangle its colour, including on the walls that a cut leaves (they take the cutter's colour).

Coordinates: metres, y up, +z the object's front (data.procedural's frame). Every primitive takes its
number of circular segments explicitly, so no global manifold3d default changes a mesh.
"""

from __future__ import annotations

import manifold3d
import numpy as np
import trimesh

Manifold = manifold3d.Manifold

# Rotations (proper, det +1) taking a polygon's plane (local X, Y) and the extrusion direction (local Z)
# to the world axes named in `prism`'s docstring: axis -> (polygon's first, second world axis, extrusion).
_PRISM_ROTATIONS = {
    "x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),  # (z, y), extruded along -x
    "y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),  # (x, z), extruded along -y
    "z": np.eye(3),                                                        # (x, y), extruded along +z
}


def box(lo, hi) -> Manifold:
    """Axis-aligned box with corners `lo` [3] and `hi` [3] (hi > lo)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    return Manifold.cube(tuple(hi - lo)).translate(tuple(lo))


def rounded_box(lo, hi, radius: float, segments: int = 8) -> Manifold:
    """Box with corners `lo`, `hi` whose edges are rounded with `radius` (hull of 8 corner spheres)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    radius = min(radius, 0.49 * float(np.min(hi - lo)))
    sphere = Manifold.sphere(radius, segments)
    corners = [(x, y, z) for x in (lo[0] + radius, hi[0] - radius) for y in (lo[1] + radius, hi[1] - radius)
               for z in (lo[2] + radius, hi[2] - radius)]
    return Manifold.batch_hull([sphere.translate(c) for c in corners])


def cylinder(p0, p1, radius: float, radius_end: float | None = None, segments: int = 16) -> Manifold:
    """Cylinder (or cone frustum) from point `p0` [3] to point `p1` [3] with radii `radius`, `radius_end`."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    axis = p1 - p0
    height = float(np.linalg.norm(axis))
    solid = Manifold.cylinder(height, radius, radius if radius_end is None else radius_end, segments)
    return solid.transform(_frame_with_z(axis / height, p0))


def sphere(centre, radius: float, segments: int = 12) -> Manifold:
    """Sphere of `radius` at `centre` [3]."""
    return Manifold.sphere(radius, segments).translate(tuple(np.asarray(centre, np.float64)))


def hull(points) -> Manifold:
    """Convex hull of points [P, 3] (P >= 4, not coplanar)."""
    return Manifold.hull_points(np.asarray(points, np.float64))


def prism(polygon, axis: str, lo: float, hi: float) -> Manifold:
    """A polygon extruded along a world axis, from coordinate `lo` to `hi` on that axis.

    Args:
        polygon: [P, 2] points, in either winding order, not self-intersecting: (z, y) coordinates for
            axis "x" (a side profile), (x, z) for axis "y" (a plan), (x, y) for axis "z" (a front view).
        axis: "x", "y" or "z".
        lo, hi: extent along `axis` (hi > lo).
    """
    section = manifold3d.CrossSection([np.asarray(polygon, np.float64)], manifold3d.FillRule.NonZero)
    rotation = _PRISM_ROTATIONS[axis]
    start = np.zeros(3)  # where local z = 0 lands: lo on +z, hi on the axes extruded negatively
    start["xyz".index(axis)] = lo if axis == "z" else hi
    return Manifold.extrude(section, hi - lo).transform(np.column_stack([rotation, start]))


def rounded_polygon(u0: float, u1: float, v0: float, v1: float, radius: float,
                    segments: int = 4) -> np.ndarray:
    """[4 * (segments + 1), 2] counter-clockwise outline of the rectangle [u0, u1] x [v0, v1] with
    corners rounded by `radius` (clipped to just under half the shorter side)."""
    radius = min(radius, 0.49 * min(u1 - u0, v1 - v0))
    points = []
    for cu, cv, start in ((u1 - radius, v0 + radius, -0.5), (u1 - radius, v1 - radius, 0.0),
                          (u0 + radius, v1 - radius, 0.5), (u0 + radius, v0 + radius, 1.0)):
        angles = np.pi * (start + 0.5 * np.arange(segments + 1) / segments)
        points += [(cu + radius * np.cos(a), cv + radius * np.sin(a)) for a in angles]
    return np.array(points)


def beam_points(a, b, thickness: float) -> np.ndarray:
    """[16, 3] corners of two axis-aligned cubes of side `thickness` centred on points a and b [3]."""
    offsets = 0.5 * thickness * np.array([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    return np.concatenate([np.asarray(a, np.float64) + offsets, np.asarray(b, np.float64) + offsets])


def beam(a, b, thickness: float) -> Manifold:
    """A beam of about square section `thickness` from point a [3] to point b [3] (hull of two cubes)."""
    return hull(beam_points(a, b, thickness))


def _frame_with_z(direction: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """[3, 4] affine transform: a rotation taking +z to the unit vector `direction`, then `origin`."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x_axis = np.cross(helper, direction)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(direction, x_axis)
    return np.column_stack([x_axis, y_axis, direction, origin])


class Assembly:
    """An object under construction: coloured solids added or cut away in order (module docstring)."""

    def __init__(self):
        self._solid: Manifold | None = None
        self._colours: dict[int, np.ndarray] = {}  # manifold3d original id -> RGB uint8 [3]

    def _tag(self, solid: Manifold, colour) -> Manifold:
        tagged = solid.as_original()
        rgb = np.clip(np.round(np.asarray(colour, np.float64) * 255.0), 0, 255).astype(np.uint8)
        self._colours[tagged.original_id()] = rgb
        return tagged

    def add(self, colour, *solids: Manifold) -> None:
        """Unites `solids` with the object; their surface gets `colour` (RGB in [0, 1])."""
        parts = [self._tag(s, colour) for s in solids]
        if self._solid is not None:
            parts.insert(0, self._solid)
        self._solid = Manifold.batch_boolean(parts, manifold3d.OpType.Add)

    def cut(self, colour, *solids: Manifold) -> None:
        """Removes `solids` from the object; the walls they leave get `colour`."""
        if self._solid is None:
            raise ValueError("Assembly.cut: nothing to cut from yet")
        parts = [self._solid] + [self._tag(s, colour) for s in solids]
        self._solid = Manifold.batch_boolean(parts, manifold3d.OpType.Subtract)

    def mesh(self) -> trimesh.Trimesh:
        """Evaluates the construction into one triangle mesh with per-face colours.

        Returns:
            trimesh.Trimesh with vertices [V, 3] float64, faces [F, 3] int64 (closed, outward-facing
            winding) and face colours [F, 4] uint8 (alpha 255).

        Raises:
            ValueError: nothing was added, or manifold3d reports an error or an empty result.
        """
        if self._solid is None:
            raise ValueError("Assembly.mesh: no solid was added")
        status = self._solid.status()
        if status != manifold3d.Error.NoError or self._solid.is_empty():
            raise ValueError(f"Assembly.mesh: manifold3d gave {status} (empty: {self._solid.is_empty()})")
        result = self._solid.to_mesh64()
        vertices = np.asarray(result.vert_properties, np.float64)[:, :3]
        faces = np.asarray(result.tri_verts, np.int64).reshape(-1, 3)
        run_index = np.asarray(result.run_index, np.int64) // 3  # run r: faces [run_index[r], run_index[r+1])
        run_colour = np.stack([self._colours[int(i)] for i in result.run_original_id])  # [R, 3]
        face_rgb = np.repeat(run_colour, np.diff(run_index), axis=0)
        face_colours = np.concatenate([face_rgb, np.full((len(faces), 1), 255, np.uint8)], axis=1)
        return trimesh.Trimesh(vertices, faces, face_colors=face_colours, process=False)
