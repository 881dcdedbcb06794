"""Renders per second of data.render at 64, 128 and 224 px, on real meshes.

For each size it times `Renderer.render_views` (default rays per pixel: ceil(224 / size)^2) and, as the
reference measured in the same run, one ray per pixel centre, over the same models and poses. The
Embree BVH of a mesh is built by the first view and timed separately ("first view").

    python -m bench.bench_render --source ../shared/data/realmeshes
    python -m bench.bench_render --sizes 64 --views 10
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import time

import numpy as np
from absl import app, flags

from data import meshes, render

FLAGS = flags.FLAGS


def _time_views(renderer, models, poses) -> float:
    """Seconds spent rendering every model's views."""
    start = time.perf_counter()
    for (mesh, colour), pose in zip(models, poses):
        renderer.render_views(mesh, pose, colour)
    return time.perf_counter() - start


def main(argv):
    del argv
    items = meshes.discover(FLAGS.source)
    rng = np.random.default_rng(0)
    models, first_view_s = [], []
    for item in items:
        mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(item.path)))
        colour = render.model_colour(item.model_id)
        start = time.perf_counter()
        render.Renderer(64).render(mesh, 0.0, 0.0, colour)  # builds and caches the BVH
        first_view_s.append(time.perf_counter() - start)
        models.append((mesh, colour))
    poses = [render.sample_views(FLAGS.views, rng) for _ in items]
    n_renders = len(items) * FLAGS.views
    faces = [len(mesh.faces) for mesh, _ in models]
    print(f"{len(items)} models from {FLAGS.source} ({min(faces)}-{max(faces)} faces), "
          f"{FLAGS.views} views each; first view incl. BVH build: median "
          f"{1e3 * np.median(first_view_s):.1f} ms, max {1e3 * max(first_view_s):.1f} ms")
    for size in (int(s) for s in FLAGS.sizes.split(",")):
        reference = _time_views(render.Renderer(size, supersample=1), models, poses)
        renderer = render.Renderer(size)
        default = _time_views(renderer, models, poses)
        print(f"{size:4d} px: {1e3 * default / n_renders:6.2f} ms/render = {n_renders / default:7.1f} "
              f"renders/s ({renderer.supersample}^2 rays/pixel); reference 1 ray/pixel "
              f"{1e3 * reference / n_renders:6.2f} ms/render = {n_renders / reference:7.1f} renders/s; "
              f"ratio {default / reference:.2f}x", flush=True)


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("source", "builtin", "mesh source for data.meshes.discover")
    flags.DEFINE_string("sizes", "64,128,224", "comma-separated image sizes")
    flags.DEFINE_integer("views", 5, "views per model (one render_views call)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
