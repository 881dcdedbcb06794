"""Speed and shape diversity of the procedural source, against the real development meshes in the same run.

Speed:
  * generation alone: models/s of `data.procedural.generate` per category; reference: reading the real
    meshes from disk (`data.meshes.load_mesh`), the step that generation replaces;
  * a complete, uncached build (`data.build.build_dataset`: worker start-up, normalising, both GT clouds,
    renders, cache, TFRecords) of `--models` procedural models per category with `--workers` processes;
    reference: the same build of the real meshes. Also the share of the build's CPU time per model that
    generation takes (generation s/model ÷ (build wall s × workers / models)).
Diversity: the mean pairwise Chamfer distance between the area-based GT clouds of the two builds, all
pairs within a category, with the evaluation protocol (`evaluation.metrics`: each cloud normalised on its
bounding box, forward + backward mean squared nearest-neighbour distance, × 1000), procedural ÷ real;
and each model's Chamfer to its nearest other model of the same source, beside the floor that sampling
alone gives (two independent 1024-point area samples of one procedural model). The
shared real cars do not all face one way (the TORCS cars lie along x, front +x; the others along z,
front +z, as the procedural ones do), which inflates their diversity; the real cars are therefore also
scored with every car that lies along x turned by -90 degrees about the up axis, as
`--rotate_y_deg=-90` would have built it.

    python -m bench.bench_procedural                         # 100 models per category, 2 workers
    python -m bench.bench_procedural --models 300 --workers 2 --real ../shared/data/realmeshes
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from data import build, meshes, procedural, sampling
from evaluation import metrics

REPO_ROOT = Path(__file__).resolve().parents[1]

FLAGS = flags.FLAGS


def _timed_build(source, out_dir, **kwargs) -> tuple[dict, float]:
    start = time.perf_counter()
    summary = build.build_dataset(source=source, out_dir=out_dir, views=1, image_size=64, n_points=1024,
                                  workers=FLAGS.workers, **kwargs)
    return summary, time.perf_counter() - start


def _clouds(out_dir: Path, category: str) -> list[np.ndarray]:
    """The bbox-normalised area-based GT clouds [1024, 3] of every model of a category in a build's cache."""
    return [metrics.normalise_bbox(np.load(path)["gt_area"])
            for path in sorted((out_dir / build.MODELS_DIR / category).glob("*.npz"))]


def _turned_to_z(cloud: np.ndarray) -> np.ndarray:
    """A render-frame cloud lying along canonical x (render y) turned by -90 degrees about the up axis:
    canonical (x, y, z) -> (-z, y, x), i.e. render (x, y, z) -> (x, -z, y); others unchanged."""
    extent = np.ptp(cloud, axis=0)
    return np.stack([cloud[:, 0], -cloud[:, 2], cloud[:, 1]], axis=1) if extent[1] > extent[2] else cloud


def _sampling_floor(category: str, n_models: int = 20) -> float:
    """Median Chamfer x 1000 between two independent area-based samples of the same procedural model."""
    values = []
    for item in procedural.discover(n_models, category):
        mesh = build.render_frame_mesh(build.PROCEDURAL, item)
        a, b = (metrics.normalise_bbox(sampling.area_gt(mesh.vertices, mesh.faces, 1024, seed=seed))
                for seed in (0, 1))
        values.append(metrics.METRIC_SCALE * sum(metrics.chamfer_fwd_bwd(a, b)))
    return float(np.median(values))


def _pairwise_chamfer(clouds: list[np.ndarray]) -> np.ndarray:
    """[M, M] Chamfer × 1000 between every pair (diagonal: inf)."""
    m = len(clouds)
    table = np.full((m, m), np.inf)
    for i in range(m):
        for j in range(i + 1, m):
            chamfer = sum(metrics.chamfer_fwd_bwd(clouds[i], clouds[j]))
            table[i, j] = table[j, i] = metrics.METRIC_SCALE * chamfer
    return table


def _describe(table: np.ndarray) -> tuple[float, str]:
    pairs = table[np.triu_indices(len(table), 1)]
    nearest = table.min(axis=1)
    text = (f"pairs {len(pairs)}: mean {pairs.mean():6.2f}, median {np.median(pairs):6.2f}, "
            f"10-90% {np.percentile(pairs, 10):5.2f}-{np.percentile(pairs, 90):5.2f}; "
            f"nearest other model: min {nearest.min():5.2f}, median {np.median(nearest):5.2f}")
    return float(pairs.mean()), text


def main(argv):
    del argv
    _, real_items = build.discover(FLAGS.real)
    generate_times = []
    for category in procedural.CATEGORIES:
        ids = [item.model_id for item in procedural.discover(FLAGS.models, category)]
        start, cpu_start = time.perf_counter(), time.process_time()
        for model_id in ids:
            procedural.generate(model_id)
        generate_s = (time.perf_counter() - start) / len(ids)
        generate_cpu_s = (time.process_time() - cpu_start) / len(ids)
        generate_times.append(generate_s)
        paths = [item.path for item in real_items if item.category == category]
        start = time.perf_counter()
        for path in paths:
            meshes.load_mesh(path)
        load_s = (time.perf_counter() - start) / len(paths)
        print(f"{category}: generation {1 / generate_s:7.1f} models/s ({1e3 * generate_s:5.1f} ms/model, "
              f"CPU {1e3 * generate_cpu_s:5.1f} ms/model, {len(ids)} models); reference: reading a real "
              f"mesh {1 / load_s:6.1f} models/s ({len(paths)} models); ratio {load_s / generate_s:.2f}x",
              flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        proc_dir, real_dir = Path(tmp) / "procedural", Path(tmp) / "real"
        proc, proc_s = _timed_build(build.PROCEDURAL, proc_dir, procedural_models=FLAGS.models)
        real, real_s = _timed_build(FLAGS.real, real_dir)
        n_proc, n_real = sum(proc["built"].values()), sum(real["built"].values())
        print(f"build, {FLAGS.workers} workers, 1 view at 64 px, 1024-point GTs: procedural {n_proc} models "
              f"in {proc_s:.1f} s = {n_proc / proc_s:.2f} models/s; reference: real meshes {n_real} models "
              f"in {real_s:.1f} s = {n_real / real_s:.2f} models/s; "
              f"ratio {(n_proc / proc_s) / (n_real / real_s):.2f}x", flush=True)
        cpu_per_model = proc_s * max(FLAGS.workers, 1) / n_proc
        print(f"generation share of the procedural build's time per model and worker: "
              f"{100 * np.mean(generate_times) / cpu_per_model:.0f}%", flush=True)
        for category in procedural.CATEGORIES:
            proc_mean, proc_text = _describe(_pairwise_chamfer(_clouds(proc_dir, category)))
            real_clouds = _clouds(real_dir, category)
            real_mean, real_text = _describe(_pairwise_chamfer(real_clouds))
            print(f"{category} sampling floor x1000 (two samples of one model, median of 20): "
                  f"{_sampling_floor(category):.2f}\n"
                  f"{category} pairwise Chamfer x1000, procedural: {proc_text}\n"
                  f"{category} pairwise Chamfer x1000, real:       {real_text}\n"
                  f"{category} diversity ratio procedural / real (mean pairwise): "
                  f"{proc_mean / real_mean:.2f}", flush=True)
            if category == "car":
                turned = [_turned_to_z(cloud) for cloud in real_clouds]
                turned_mean, turned_text = _describe(_pairwise_chamfer(turned))
                print(f"car pairwise Chamfer x1000, real, all along z: {turned_text}\n"
                      f"car diversity ratio procedural / real all along z: {proc_mean / turned_mean:.2f}",
                      flush=True)


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_integer("models", 100, "procedural models per category", lower_bound=2)
    flags.DEFINE_integer("workers", 2, "worker processes of both builds", lower_bound=0)
    flags.DEFINE_string("real", str(REPO_ROOT.parent / "shared" / "data" / "realmeshes"),
                        "the real meshes to compare with (default: the shared ones beside the repository)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
