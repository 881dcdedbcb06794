"""Evaluation throughput: prediction + global rotation fit + metrics, per Chamfer backend, in one run.

    python -m bench.bench_eval [--data_dir DIR] [--align_iters 5000]

Data: the shared real meshes (`<repo>/../shared/data/realmeshes`, 25 cars + 55 chairs), built once into
`generated/datasets/realmeshes_64` (1 view, 64 px, 50/50 split) when `--data_dir` is not given. The network is
freshly initialised: its weights do not change the cost of any step. The protocol is the evaluation package's with
the baseline's settings (§10.2-10.3): the rotation is fitted on the train split and applied to the test split.

Printed: seconds of each stage, the rotation fit's time per Adam step and for the whole fit, models per
second end to end with the Chamfer op and with the pure-TF backend `tf` for the fit, the KD-tree metrics against
the brute-force reference, and the ratios.
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import time
from pathlib import Path

from absl import app, flags

from data import build
from evaluation import alignment, metrics
from evaluation.predictions import predict_split
from losses import chamfer
from model import trainer

REALMESHES = Path(__file__).resolve().parents[2] / "shared" / "data" / "realmeshes"

FLAGS = flags.FLAGS


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _data_dir() -> Path:
    if FLAGS.data_dir:
        return Path(FLAGS.data_dir)
    return build.ensure_dataset(build.DEFAULT_OUT / "realmeshes_64", source=str(REALMESHES), views=1, image_size=64)


def main(argv):
    del argv
    data_dir = _data_dir()
    nets = trainer.build_networks(64, 1024, 128)
    gt_types = ("uniform",)
    predict_split(*nets, data_dir, "test", FLAGS.batch_size, gt_types, progress=False)  # warm-up
    test, t_pred_test = _timed(predict_split, *nets, data_dir, "test", FLAGS.batch_size, gt_types, progress=False)
    fit_set, t_pred_fit = _timed(predict_split, *nets, data_dir, "train", FLAGS.batch_size, gt_types,
                                 progress=False)
    m_test, m_fit = len(test.xyz), len(fit_set.xyz)
    print(f"data {data_dir}: {m_fit} fit (train) + {m_test} test models; available Chamfer backends: "
          f"{chamfer.available_backends()}")
    print(f"prediction: {t_pred_test:.2f} s test, {t_pred_fit:.2f} s train "
          f"({(m_test + m_fit) / (t_pred_test + t_pred_fit):.1f} models/s)")

    gts = test.gt["uniform"]
    _, t_kd = _timed(metrics.per_model_metrics, gts, test.xyz, "kdtree")
    _, t_brute = _timed(metrics.per_model_metrics, gts, test.xyz, "brute")
    print(f"metrics (normalise + fwd/bwd): KD-tree {t_kd:.3f} s, brute force {t_brute:.3f} s, "
          f"ratio brute/KD-tree {t_brute / t_kd:.1f}x")

    totals = {}
    for backend in [b for b in ("op", "tf") if b in chamfer.available_backends()]:
        fit, t_fit = _timed(alignment.fit_global_rotation, fit_set.xyz, fit_set.gt["uniform"],
                            n_iters=FLAGS.align_iters, backend=backend)
        _, t_rot = _timed(alignment.rotate, test.xyz, fit.rotation)
        totals[backend] = t_pred_test + t_pred_fit + t_fit + t_rot + t_kd
        print(f"rotation fit [{backend}]: {t_fit:.2f} s for {FLAGS.align_iters} steps "
              f"({1e3 * t_fit / FLAGS.align_iters:.2f} ms/step, compile included); "
              f"end to end {totals[backend]:.2f} s = {m_test / totals[backend]:.2f} test models/s")
    if len(totals) == 2:
        print(f"ratio end-to-end tf/op: {totals['tf'] / totals['op']:.2f}x")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("data_dir", "", "Built data set (default: the shared real meshes, built when missing).")
    flags.DEFINE_integer("align_iters", alignment.ALIGN_ITERS, "Adam steps of the rotation fit (5000: baseline).")
    flags.DEFINE_integer("batch_size", 32, "Prediction batch size.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
