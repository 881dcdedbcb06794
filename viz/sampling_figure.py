"""The study's table 1 as a figure: for a car and a chair, the CAD model, the baseline's uniform GT
(16,384 uniform samples -> farthest point sampling to 1024) and the study's area-based GT (1024
area-proportional samples), all drawn from the same viewpoint (mission.md; baseline §2.6, §11.2).

    python -m viz.sampling_figure --out table1.png

Meshes come from the built-in sample (`data/sample`), are normalised to the canonical frame and rotated into
the render frame exactly as the data build does (`data.meshes`), and sampled with `data.sampling`, so the
clouds are the ones the TFRecords store. The CAD column is a flat-shaded matplotlib drawing of the mesh
(Lambert shading from face normals), not the training renderer, so all three columns share one camera.
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

from pathlib import Path

import numpy as np
from absl import app, flags
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from data import meshes, sampling
from viz import clouds

FLAGS = flags.FLAGS

DEFAULT_MODELS = {"car": "sh3d_scopia_suv.ply", "chair": "sh3d_scopia_office_chair.ply"}
VIEW = (20.0, -60.0)  # (elevation, azimuth) of matplotlib's camera, degrees: a three-quarter view from above
_LIGHT = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])  # display-frame light direction
_MESH_GREY = 0.85
COLUMNS = ("CAD model", "uniform (baseline GT)", "area-based (study GT)")


def default_mesh(category: str) -> Path:
    """The built-in sample's mesh shown for `category` (DEFAULT_MODELS)."""
    return meshes.BUILTIN_DIR / category / DEFAULT_MODELS[category]


def load_render_frame_mesh(path):
    """Loads a mesh and returns it normalised (canonical frame) and rotated into the render frame."""
    return meshes.to_render_frame(meshes.normalise(meshes.load_mesh(path)))


def draw_mesh(ax, mesh, view=VIEW, title: str | None = None) -> None:
    """Flat-shaded drawing of a render-frame trimesh on a 3D axis (same framing as `clouds.draw_cloud`)."""
    vertices = clouds.to_display(mesh.vertices)
    triangles = vertices[mesh.faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    shade = 0.35 + 0.65 * np.abs(normals @ _LIGHT)  # two-sided: meshes of the sample are not all oriented
    colours = np.repeat(_MESH_GREY * shade[:, None], 3, axis=1)
    ax.add_collection3d(Poly3DCollection(triangles, facecolors=colours, edgecolors="none"))
    centre = (vertices.max(axis=0) + vertices.min(axis=0)) / 2.0
    half = float(np.max(vertices.max(axis=0) - vertices.min(axis=0))) / 2.0
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - half, c + half)
    ax.set_box_aspect((1.0, 1.0, 1.0), zoom=clouds.PANEL_ZOOM)
    ax.view_init(elev=view[0], azim=view[1])
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def sampling_figure(mesh_paths: dict, out_path, n_points: int = sampling.DEFAULT_N_POINTS, seed: int = 0) -> Path:
    """Writes the table-1 figure: one row per category, columns CAD | uniform GT | area-based GT.

    Args:
      mesh_paths: {category name: mesh file}.
      out_path: PNG to write.
      n_points: points per GT cloud.
      seed: sampling seed (same for both pipelines).

    Returns:
      The PNG path; size len(COLUMNS) × len(mesh_paths) panels of clouds.FIGURE_INCHES_PER_PANEL · DPI px.
    """
    fig = clouds.new_figure(len(mesh_paths), len(COLUMNS))
    for row, (category, path) in enumerate(mesh_paths.items()):
        mesh = load_render_frame_mesh(path)
        uniform = sampling.baseline_gt(mesh.vertices, mesh.faces, n_points=n_points, seed=seed)
        area = sampling.area_gt(mesh.vertices, mesh.faces, n_points=n_points, seed=seed)
        draw_mesh(fig.add_subplot(len(mesh_paths), 3, 3 * row + 1, projection="3d"), mesh,
                  title=f"{category}: {COLUMNS[0]}")
        for col, cloud in ((1, uniform), (2, area)):
            clouds.draw_cloud(fig.add_subplot(len(mesh_paths), 3, 3 * row + col + 1, projection="3d"), cloud,
                              VIEW, title=COLUMNS[col], point_size=2.0)
    fig.subplots_adjust(left=0.0, right=1.0, top=0.93, bottom=0.0, wspace=0.0, hspace=0.1)
    return clouds.save_figure(fig, out_path)


def main(argv):
    del argv
    mesh_paths = {"car": FLAGS.car, "chair": FLAGS.chair}
    out = sampling_figure(mesh_paths, FLAGS.out, n_points=FLAGS.n_points, seed=FLAGS.seed)
    print(f"wrote {out}")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("out", "table1.png", "PNG file to write.")
    flags.DEFINE_string("car", str(default_mesh("car")), "Car mesh file.")
    flags.DEFINE_string("chair", str(default_mesh("chair")), "Chair mesh file.")
    flags.DEFINE_integer("n_points", sampling.DEFAULT_N_POINTS, "Points per GT cloud.")
    flags.DEFINE_integer("seed", 0, "Sampling seed.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
