"""Contact sheet of a mesh source: each model rendered by the data pipeline's renderer at one pose.

The models are loaded (or generated, for the procedural source) and put in the render frame exactly as
`data.build` does (`data.build.render_frame_mesh`), then rendered with `data.render.Renderer` at one
(azimuth, elevation) for all, so two sheets at the same pose compare orientation and look directly,
e.g. procedural cars against real ones:

    python -m viz.contact_sheet --source procedural --category car --count 24 --out cars.png
    python -m viz.contact_sheet --source ../shared/data/realmeshes --category car --count 24 --out real.png

Azimuth 0 looks at the object's front (+z of the canonical frame), positive elevation from above.
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

from pathlib import Path

import numpy as np
from absl import app, flags

from data import build, meshes, render
from viz import clouds


def render_source(source, category: str | None, count: int, size: int, az_deg: float, el_deg: float,
                  rotate_y_deg: float = 0.0, first: int = 0,
                  normalisation: str = "diagonal") -> tuple[np.ndarray, list[str]]:
    """Renders models first .. first + count - 1 of a source (sorted as data.build enumerates them).

    Args:
        source: as data.build's `source` ("builtin", "procedural", a folder of meshes, ...).
        category: only this category (None: all, in order).
        count: number of models (fewer when the source has fewer).
        size: image size in pixels.
        az_deg, el_deg: the pose of every render, degrees (baseline camera).
        rotate_y_deg: as data.build's flag.
        first: index of the first model.
        normalisation: as data.build's `normalisation` (data.meshes.NORMALISATIONS).

    Returns:
        images uint8 [M, size, size, 3] and the M model ids.
    """
    if count < 1 or first < 0:
        raise ValueError(f"contact sheet: count must be >= 1 and first >= 0, got {count} and {first}")
    kind, items = build.discover(source, category, procedural_models=first + count)
    items = items[first:first + count]
    renderer = render.Renderer(size)
    images = []
    for item in items:
        mesh = build.render_frame_mesh(kind, item, rotate_y_deg, normalisation)
        colour = render.model_colour(item.model_id)  # for meshes without colours, as data.build does
        rgb, _ = renderer.render(mesh, np.radians(az_deg), np.radians(el_deg), colour)
        images.append(rgb)
    return np.stack(images), [item.model_id for item in items]


def contact_sheet(images: np.ndarray, titles: list[str], out_path, cols: int = 6) -> Path:
    """Draws images [M, H, W, 3] in a grid of `cols` columns, each titled; returns the PNG path."""
    rows = -(-len(images) // cols)
    fig = clouds.new_figure(rows, cols)
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(image)
        ax.set_axis_off()
        ax.set_title(title, fontsize=6)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.01, wspace=0.05, hspace=0.15)
    return clouds.save_figure(fig, out_path)


def _define_flags():
    flags.DEFINE_string("source", "procedural", "mesh source, as data.build's --source")
    flags.DEFINE_string("category", None, "only this category")
    flags.DEFINE_integer("count", 24, "models drawn", lower_bound=1)
    flags.DEFINE_integer("first", 0, "index of the first model drawn", lower_bound=0)
    flags.DEFINE_integer("size", 128, "render size in pixels", lower_bound=8)
    flags.DEFINE_float("az_deg", 35.0, "azimuth of every render (0: the object's front)")
    flags.DEFINE_float("el_deg", 20.0, "elevation of every render")
    flags.DEFINE_float("rotate_y_deg", 0.0, "as data.build's --rotate_y_deg")
    flags.DEFINE_enum("normalise", "diagonal", list(meshes.NORMALISATIONS), "as data.build's --normalise")
    flags.DEFINE_integer("cols", 6, "columns of the sheet", lower_bound=1)
    flags.DEFINE_string("out", None, "PNG to write")
    flags.mark_flag_as_required("out")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    images, ids = render_source(f.source, f.category, f.count, f.size, f.az_deg, f.el_deg, f.rotate_y_deg,
                                f.first, f.normalise)
    print(contact_sheet(images, ids, f.out, f.cols))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
