"""How often an object runs past the image border, for each normalisation of data.meshes.

Renders every model of a source at the poses a build draws (`data.build.view_pose`, seed 0) and counts the
masks with a foreground pixel on the image border, per category, for each scale of
`data.meshes.NORMALISATIONS`; the mean share of foreground pixels is printed beside it.

    python -m bench.bench_framing --source ../shared/data/realmeshes --views 10
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import numpy as np
from absl import app, flags

from data import build, meshes, render

FLAGS = flags.FLAGS


def main(argv):
    del argv
    renderer = render.Renderer(image_size=FLAGS.size)
    items = meshes.discover(FLAGS.source)
    for scale in meshes.NORMALISATIONS:
        touching, fill = {}, {}
        for item in items:
            mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(item.path), scale=scale))
            poses = np.stack([build.view_pose(0, item.category, item.model_id, v) for v in range(FLAGS.views)])
            _, masks = renderer.render_views(mesh, poses, render.model_colour(item.model_id))
            masks = masks > 0
            border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
            touching.setdefault(item.category, []).extend(border)
            fill.setdefault(item.category, []).extend(masks.mean(axis=(1, 2)))
        every = np.concatenate([np.asarray(t) for t in touching.values()])
        for category in sorted(touching):
            print(f"{scale:>12} {category:>6}: {100 * np.mean(touching[category]):5.1f} % of "
                  f"{len(touching[category])} masks touch the border; mean foreground "
                  f"{100 * np.mean(fill[category]):.1f} % of the image")
        print(f"{scale:>12}    all: {100 * every.mean():5.2f} % of {len(every)} masks touch the border")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("source", "builtin", "mesh source for data.meshes.discover")
    flags.DEFINE_integer("views", 10, "views per model", lower_bound=1, upper_bound=build.MAX_VIEWS)
    flags.DEFINE_integer("size", 64, "image size in pixels", lower_bound=8)


if __name__ == "__main__":
    define_flags()
    app.run(main)
