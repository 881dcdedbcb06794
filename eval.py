"""Evaluation of a trained run with the baseline's protocol (baseline §10), against either or both GT types.

    python eval.py --exp runs/car --split test --gt_type both
    python eval.py --exp runs/car --data_dir OTHER_BUILT_SET --split test     # any built data set and split

The library is the `evaluation` package (`evaluation.run.run_evaluation`): predictions of the evaluation split
(`--data_dir`, default the run's data set), ONE global rotation per category fitted on the reference data (the
run's own data set, `--reference_data_dir` to change it: its `val` split when it has one, as the baseline,
else the run's training split or `--reference_split`; `--fit_split` names it; `--fit_on_eval` fits on the
evaluation split itself as the baseline's scripts did, §10.2), per-cloud bbox normalisation, squared Chamfer
forward and backward × 1000 (`--n_minus_1`: the baseline's n - 1 denominator, §10.3), beside a sphere, the mean
training shape (from the reference split) and the shuffled reference (each GT against other models'
predictions), the spread ratio, the verdict (a model "learned something" only when it beats the shuffled
reference) and the pose net's accuracy. `--icp` and `--emd` are NOT the baseline's protocol and are labelled
so everywhere. `--refine_steps N` refines the networks on each test image first (evaluation/refinement.py).

Writes into `--out` (default `<exp>/eval/<data name>_<split>_step<k>[_refine<N>][_first<M>]`): metrics.json,
per_model.csv (values × 1000, pose errors in degrees), table.md, chart.png (the scores beside the references)
and clouds.png (several models per category: input | prediction and GT from the same viewpoints). Predictions,
rotations and mean shapes are cached in `<exp>/eval/cache/` (with `--out DIR`: `DIR/cache/`).
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

from absl import app, flags

from evaluation import alignment, references, report
from evaluation.protocol import NOT_BASELINE, Protocol
from evaluation.run import EvalSettings, run_evaluation
from geometry import nearest
from losses import chamfer
from model.config import GT_TYPES
from viz import charts, clouds


def main(argv):
    del argv
    f = flags.FLAGS
    protocol = Protocol(align_iters=f.align_iters, align_lr=f.align_lr, align_batch=f.align_batch,
                        align_init_deg=tuple(float(a) for a in f.align_init_deg), chamfer_backend=f.chamfer_backend,
                        nn_method=f.nn_method, denominator="n_minus_1" if f.n_minus_1 else "n", icp=f.icp, emd=f.emd,
                        seed=f.seed, shuffled_others=f.shuffled_others, spread_pairs=f.spread_pairs)
    settings = EvalSettings(split=f.split, data_dir=f.data_dir or None, reference_data_dir=f.reference_data_dir or None,
                            reference_split=f.reference_split or None, fit_split=f.fit_split or None,
                            fit_on_eval=f.fit_on_eval, gt_types=GT_TYPES if f.gt_type == "both" else (f.gt_type,),
                            batch_size=f.batch_size, step=f.step, max_models=f.max_models,
                            refine_steps=f.refine_steps, label=f.label, out_dir=f.out or None, cache=f.cache)
    evaluation = run_evaluation(f.exp, settings, protocol)
    written = [report.METRICS_JSON, report.PER_MODEL_CSV, report.TABLE_MD,
               charts.evaluation_chart(evaluation.report, evaluation.out_dir / charts.EVALUATION_CHART).name]
    if f.plot_models:
        written.append(clouds.evaluation_grid(evaluation, f.plot_models).name)
    print(report.summary_text(evaluation.report))
    print(f"wrote {evaluation.out_dir}/{{{','.join(written)}}}")


def define_flags() -> None:
    """Eval's own flags (the run's configuration comes from the run directory, not from the command line)."""
    flags.DEFINE_string("exp", None, "Run directory written by train.py.")
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the newest).")
    flags.DEFINE_string("split", "test", "Split to evaluate.")
    flags.DEFINE_string("data_dir", "", "Data set to evaluate, any built one (default: the one the run was "
                        "trained on).")
    flags.DEFINE_string("reference_data_dir", "", "Data set of the rotation fit and of the mean training shape "
                        "(default: the one the run was trained on).")
    flags.DEFINE_string("reference_split", "", "Split of --reference_data_dir for the mean training shape and, "
                        "when given, the rotation fit (default: the run's training split; the fit prefers val).")
    flags.DEFINE_string("fit_split", "", "Split of the reference data the rotation is fitted on (default: val, "
                        "else the reference split).")
    flags.DEFINE_boolean("fit_on_eval", False, "Fit the rotation on the evaluation split itself, as the "
                         "baseline's scripts did (§10.2).")
    flags.DEFINE_enum("gt_type", "both", [*GT_TYPES, "both"], "Ground truth to score against.")
    flags.DEFINE_integer("batch_size", 32, "Prediction batch size.")
    flags.DEFINE_integer("max_models", 0, "Evaluate only the first this many examples of each split (0: all).")
    flags.DEFINE_integer("refine_steps", 0, "Test-time refinement: Adam steps on each evaluation image's own "
                         "silhouette and colour losses before predicting it (0: none).")
    flags.DEFINE_integer("align_iters", alignment.ALIGN_ITERS, "Adam steps of the rotation fit (§10.2).")
    flags.DEFINE_float("align_lr", alignment.ALIGN_LR, "Adam learning rate of the rotation fit (§10.2).")
    flags.DEFINE_integer("align_batch", 1, "Models per step of the rotation fit (1 in the baseline).")
    flags.DEFINE_list("align_init_deg", [f"{a:g}" for a in alignment.INIT_DEG], "Initial (az, el, tilt) of "
                      "the rotation fit in degrees (§10.2: 29,0,270).")
    flags.DEFINE_enum("chamfer_backend", "auto", chamfer.BACKEND_CHOICES, "Chamfer backend of the rotation fit.")
    flags.DEFINE_enum("nn_method", "kdtree", nearest.NUMPY_METHODS, "Nearest neighbours of the metrics.")
    flags.DEFINE_boolean("n_minus_1", False, "Divide the sum over models by n - 1 as the baseline did (§10.3).")
    flags.DEFINE_boolean("icp", False, f"Also report per-model ICP refinement ({NOT_BASELINE}).")
    flags.DEFINE_boolean("emd", False, f"Also report the exact EMD ({NOT_BASELINE}).")
    flags.DEFINE_integer("shuffled_others", references.SHUFFLED_OTHERS, "Shuffled reference: at most this many "
                         "other models' predictions per GT, drawn with --seed.")
    flags.DEFINE_integer("spread_pairs", references.SPREAD_PAIRS, "Spread ratio: at most this many pairs of "
                         "models, drawn with --seed.")
    flags.DEFINE_integer("seed", 0, "Seed of the rotation fit's model order and of the references' draws.")
    flags.DEFINE_boolean("cache", True, "Read and write the cache of predictions, rotations and mean shapes "
                         "(--nocache: predict and fit again).")
    flags.DEFINE_string("out", "", "Output folder (default: <exp>/eval/<data name>_<split>_step<k>...).")
    flags.DEFINE_string("label", None, "Run name in the table (default: the run directory's name).")
    flags.DEFINE_integer("plot_models", clouds.EVALUATION_MODELS, "Models per category drawn in clouds.png "
                         "(0: no picture).")
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
