"""Ground-truth sampling time per mesh, both pipelines, against a reference measured in the same run.

* baseline GT (16384 uniform samples -> FPS 1024): `data.sampling.baseline_gt` against
  `trimesh.sample.sample_surface` + the straightforward FPS below (one `np.linalg.norm` over all points
  per pick).
* area GT (1024 area-proportional samples): `data.sampling.area_gt` against `trimesh.sample.sample_surface`.

Meshes are loaded and normalised first (not timed); each figure is the median over the meshes of the
best of `repeats` runs.

    python -m bench.bench_sampling --source ../shared/data/realmeshes
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import time

import numpy as np
import trimesh
from absl import app, flags

from data import meshes, sampling

FLAGS = flags.FLAGS


def reference_fps(points: np.ndarray, k: int, start: int) -> np.ndarray:
    """Straightforward FPS: keep every point's distance to the picked set, update it per pick."""
    picked = [start]
    min_dist = np.linalg.norm(points - points[start], axis=1)
    for _ in range(k - 1):
        picked.append(int(np.argmax(min_dist)))
        min_dist = np.minimum(min_dist, np.linalg.norm(points - points[picked[-1]], axis=1))
    return np.array(picked)


def reference_baseline_gt(mesh: trimesh.Trimesh, n_points: int, seed: int) -> np.ndarray:
    dense, _ = trimesh.sample.sample_surface(mesh, sampling.BASELINE_N_DENSE, seed=seed)
    return dense[reference_fps(dense, n_points, 0)].astype(np.float32)


def reference_area_gt(mesh: trimesh.Trimesh, n_points: int, seed: int) -> np.ndarray:
    return trimesh.sample.sample_surface(mesh, n_points, seed=seed)[0].astype(np.float32)


def _best_time(fn, repeats: int) -> float:
    best = np.inf
    for seed in range(repeats):
        start = time.perf_counter()
        fn(seed)
        best = min(best, time.perf_counter() - start)
    return best


METHODS = {  # name -> fn(mesh, n_points, seed) -> [N, 3] float32
    "baseline_gt": lambda mesh, n, seed: sampling.baseline_gt(mesh.vertices, mesh.faces, n, seed=seed),
    "reference baseline (trimesh + plain FPS)": reference_baseline_gt,
    "area_gt": lambda mesh, n, seed: sampling.area_gt(mesh.vertices, mesh.faces, n, seed=seed),
    "reference area (trimesh.sample_surface)": reference_area_gt,
}


def main(argv):
    del argv
    n = FLAGS.n_points
    times = {name: [] for name in METHODS}
    items = meshes.discover(FLAGS.source)
    for item in items:
        mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(item.path)))
        for name, fn in METHODS.items():
            times[name].append(_best_time(lambda seed: fn(mesh, n, seed), FLAGS.repeats))
    median = {name: float(np.median(t)) for name, t in times.items()}
    print(f"{len(items)} meshes from {FLAGS.source}, N = {n}; median over meshes of the best of "
          f"{FLAGS.repeats} runs:")
    for name, seconds in median.items():
        print(f"  {name:42s} {1e3 * seconds:8.2f} ms/mesh")
    for ours, ref in (("baseline_gt", "reference baseline (trimesh + plain FPS)"),
                      ("area_gt", "reference area (trimesh.sample_surface)")):
        print(f"  {ours}: speed-up over its reference {median[ref] / median[ours]:.2f}x")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("source", "builtin", "mesh source for data.meshes.discover")
    flags.DEFINE_integer("n_points", sampling.DEFAULT_N_POINTS, "points per GT cloud")
    flags.DEFINE_integer("repeats", 3, "runs per mesh and method (the best one counts)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
