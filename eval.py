"""Evaluation of a trained run with the baseline's protocol (baseline §10), against either or both GT types.

    python eval.py --exp runs/car --split test --gt_type both

The library is the `evaluation` package (`evaluation.run.run_evaluation`): predictions of the evaluation and
fit splits, ONE global rotation per category fitted on the fit split (default `val`, else `train`;
`--fit_on_eval` fits on the evaluation split as the baseline's scripts did, §10.2), per-cloud bbox
normalisation, squared Chamfer forward and backward × 1000 (`--n_minus_1`: the baseline's n - 1 denominator,
§10.3), beside a sphere and the mean training shape as sanity references. `--icp` and `--emd` are NOT the
baseline's protocol and are labelled so everywhere.

Writes into `--out` (default `<exp>/eval_<split>`): metrics.json, per_model.csv (values × 1000), table.md
(the study's table 3 layout: model, Chamfer, Fwd, Bwd, iterations, GT type) and clouds.png
(input | aligned prediction | GT for the first models).
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

from absl import app, flags

from evaluation import alignment, report
from evaluation.protocol import NOT_BASELINE, Protocol
from evaluation.run import EvalSettings, run_evaluation
from geometry import nearest
from losses import chamfer
from model.config import GT_TYPES
from viz import clouds


def main(argv):
    del argv
    f = flags.FLAGS
    protocol = Protocol(align_iters=f.align_iters, align_lr=f.align_lr, align_batch=f.align_batch,
                        chamfer_backend=f.chamfer_backend, nn_method=f.nn_method,
                        denominator="n_minus_1" if f.n_minus_1 else "n", icp=f.icp, emd=f.emd, seed=f.seed)
    settings = EvalSettings(split=f.split, fit_split=f.fit_split or None, fit_on_eval=f.fit_on_eval,
                            gt_types=GT_TYPES if f.gt_type == "both" else (f.gt_type,), batch_size=f.batch_size,
                            data_dir=f.data_dir or None, step=f.step, max_models=f.max_models, label=f.label,
                            out_dir=f.out or None)
    evaluation = run_evaluation(f.exp, settings, protocol)
    written = [report.METRICS_JSON, report.PER_MODEL_CSV, report.TABLE_MD]
    if f.plot_models:
        written.append(clouds.evaluation_grid(evaluation, f.plot_models).name)
    print(report.summary_text(evaluation.report))
    print(f"wrote {evaluation.out_dir}/{{{','.join(written)}}}")


def define_flags() -> None:
    """Eval's own flags (the run's configuration comes from the run directory, not from the command line)."""
    flags.DEFINE_string("exp", None, "Run directory written by train.py.")
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the newest).")
    flags.DEFINE_string("split", "test", "Split to evaluate.")
    flags.DEFINE_string("fit_split", "", "Split the global rotation is fitted on (default: val, else train).")
    flags.DEFINE_boolean("fit_on_eval", False, "Fit the rotation on the evaluation split itself, as the "
                         "baseline's scripts did (§10.2).")
    flags.DEFINE_enum("gt_type", "both", [*GT_TYPES, "both"], "Ground truth to score against.")
    flags.DEFINE_integer("batch_size", 32, "Prediction batch size.")
    flags.DEFINE_string("data_dir", "", "Data set (default: the one the run was trained on).")
    flags.DEFINE_integer("max_models", 0, "Evaluate only the first this many examples of each split (0: all).")
    flags.DEFINE_integer("align_iters", alignment.ALIGN_ITERS, "Adam steps of the rotation fit (§10.2).")
    flags.DEFINE_float("align_lr", alignment.ALIGN_LR, "Adam learning rate of the rotation fit (§10.2).")
    flags.DEFINE_integer("align_batch", 1, "Models per step of the rotation fit (1 in the baseline).")
    flags.DEFINE_enum("chamfer_backend", "auto", chamfer.BACKEND_CHOICES, "Chamfer backend of the rotation fit.")
    flags.DEFINE_enum("nn_method", "kdtree", nearest.NUMPY_METHODS, "Nearest neighbours of the metrics.")
    flags.DEFINE_boolean("n_minus_1", False, "Divide the sum over models by n - 1 as the baseline did (§10.3).")
    flags.DEFINE_boolean("icp", False, f"Also report per-model ICP refinement ({NOT_BASELINE}).")
    flags.DEFINE_boolean("emd", False, f"Also report the exact EMD ({NOT_BASELINE}).")
    flags.DEFINE_integer("seed", 0, "Seed of the rotation fit's model order and the reference draw.")
    flags.DEFINE_string("out", "", "Output folder (default: <exp>/eval_<split>).")
    flags.DEFINE_string("label", None, "Run name in the table (default: the run directory's name).")
    flags.DEFINE_integer("plot_models", clouds.EVALUATION_MODELS, "Models drawn in clouds.png (0: none).")
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
