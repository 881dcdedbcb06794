"""Whole-build throughput of data.build: models per second with 1 and 2 worker processes.

Each run is a complete, uncached build into a fresh temporary directory (enumeration, worker start-up,
loading, normalising, both GT clouds, renders, cache files, TFRecords and index), so the figures are
what a user waits for. The ratio to the first worker count is measured in the same process, which
cancels most of the noise of a shared machine.

    python -m bench.bench_build                     # the shared real meshes, 1 and 2 workers
    python -m bench.bench_build --workers 0,1,2 --max_models 10 --size 128
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import tempfile
import time
from pathlib import Path

from absl import app, flags

from data.build import build_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]

FLAGS = flags.FLAGS


def main(argv):
    del argv
    counts = [int(w) for w in FLAGS.workers.split(",")]
    rates = []
    for workers in counts:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = build_dataset(source=FLAGS.source, out_dir=out, views=FLAGS.views,
                                    image_size=FLAGS.size, workers=workers, max_models=FLAGS.max_models)
            seconds = time.perf_counter() - start
        built = sum(summary["built"].values())
        rates.append(built / seconds)
        print(f"workers={workers}: {built} models ({sum(summary['skipped'].values())} skipped) in "
              f"{seconds:.1f} s = {rates[-1]:.2f} models/s; ratio to workers={counts[0]}: "
              f"{rates[-1] / rates[0]:.2f}x", flush=True)


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("source", str(REPO_ROOT.parent / "shared" / "data" / "realmeshes"),
                        "mesh source (default: the shared real meshes beside the repository)")
    flags.DEFINE_string("workers", "1,2", "comma-separated worker counts to compare (0 = in-process)")
    flags.DEFINE_integer("max_models", None, "at most this many models per category")
    flags.DEFINE_integer("size", 64, "image size")
    flags.DEFINE_integer("views", 1, "views per model")


if __name__ == "__main__":
    define_flags()
    app.run(main)
