"""Why training collapses: short runs of named configurations, measured with the collapse monitor.

    python -m experiments.collapse --data_dir DIR --categ car --steps 1500
    python -m experiments.collapse --data_dir DIR --config baseline --config he_lambda3d_100 --steps 3000
    python -m experiments.collapse --data_dir PROCEDURAL --test_data_dir REAL --categ all --config supervised_he

Every configuration starts from the baseline's run.sh (presets/baseline_run.flags) and changes the flags
listed in CONFIGS (the faithful baseline first, then one change at a time). Each run trains for --steps
steps from the same seed on the training split of --data_dir and is probed every --probe_n steps on the
first --probe_images training images (and test images of --test_data_dir, default --data_dir):

* the collapse monitor (model/monitor.py): dead units of the structure bottleneck s5, the across-image
  spread of the cloud (xyz_spread), and the mean gradient norms reaching s1 and s5 over the interval;
* for configurations supervised by the GT cloud, whose predictions live in the GT frame (no rotation fit
  needed): the Chamfer of each probe image's prediction to its own GT and to the GTs of the other models of
  its category (the shuffled reference), evaluation.metrics' normalisation and metric, × 1000.

At step 0 the cloud is a small random ball that does depend on the image; training first draws it to one
shape (the spread falls), and a configuration that learns then spreads again. The table reports the
spread after the first interval, its minimum (and when), and at the end, and the first probe after the
minimum at which the spread exceeds COLLAPSED_SPREAD ("follows the image again"), or "did not collapse" when
the spread never fell below it.

It prints one Markdown row per configuration (the README's "Why training collapses" tables) and writes
every probe to --out (JSON lines). ``--override`` flags are applied to every configuration (e.g. a batch
size or the categories of a data set).
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import json
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

import common_flags
from data import tfrecords
from evaluation import metrics, references
from model.monitor import COLLAPSED_SPREAD, CollapseMonitor
from model.trainer import GRADIENT_LAYERS, Trainer

FLAGS = flags.FLAGS

#: The base every configuration starts from: the baseline's run.sh (baseline §9).
BASE_FLAGFILE = Path(__file__).resolve().parents[1] / "presets" / "baseline_run.flags"
#: name -> (what it changes, flag overrides of the base).
CONFIGS = {
    "baseline": ("the baseline's run.sh (faithful)", []),
    "lr_1e-4": ("learning rate 1e-4 instead of 5e-4", ["--lr=1e-4"]),
    "batch_8": ("batch size 8 instead of 2", ["--batch_size=8"]),
    "bce_prob": ("true BCE instead of the tanh silhouette used as a logit (§7.2)", ["--loss=bce_prob"]),
    "no_cycle": ("no geometric cycle loss (lambda_3d 0 instead of 1e4)", ["--lambda_3d=0"]),
    "gt_pose": ("GT pose for the first projection (--use_gt_pose)", ["--use_gt_pose"]),
    "he": ("He initialisation of the dense layers (--dense_init=he)", ["--dense_init=he"]),
    "lambda3d_100": ("lambda_3d 100 instead of 1e4", ["--lambda_3d=100"]),
    "he_lambda3d_100": ("He init and lambda_3d 100", ["--dense_init=he", "--lambda_3d=100"]),
    "he_gt_pose_lambda3d_100": ("He init, lambda_3d 100 and the GT pose",
                                ["--dense_init=he", "--lambda_3d=100", "--use_gt_pose"]),
    "supervised": ("GT Chamfer only (lambda_gt 1e4; image, mask, affinity and cycle terms off)",
                   ["--use_gt_pcl", "--lambda_gt=1e4", "--lambda_ae=0", "--lambda_ae_mask=0",
                    "--noaffinity_loss", "--lambda_3d=0"]),
    "supervised_he": ("GT Chamfer only, He init",
                      ["--use_gt_pcl", "--lambda_gt=1e4", "--lambda_ae=0", "--lambda_ae_mask=0",
                       "--noaffinity_loss", "--lambda_3d=0", "--dense_init=he"]),
}


def _config(name: str):
    """(TrainConfig, batch size) of a named configuration, with --seed and --categ of the command line."""
    values = flags.FlagValues()
    common_flags.define_flags(values)
    values(["collapse", f"--flagfile={BASE_FLAGFILE}", *CONFIGS[name][1], *FLAGS.override,
            f"--seed={FLAGS.seed}", "--exp=unused"])
    return common_flags.train_config_from_flags(values), values.batch_size


def _probe_set(data_dir, split: str, categories) -> dict:
    """The first --probe_images examples of a split, in file order: numpy arrays of data.tfrecords."""
    dataset = tfrecords.make_dataset(data_dir, split, FLAGS.probe_images, shuffle=False, repeat=False,
                                     categories=categories, drop_remainder=False, gt_types=["gt_uniform"])
    batch = next(iter(dataset))
    return {key: value.numpy() for key, value in batch.items()}


def matched_and_shuffled(preds: np.ndarray, probe: dict) -> tuple[float, float]:
    """Mean Chamfer × 1000 of each prediction to its own GT, and of each GT to the predictions of the other
    models of its category (all views of the same model excluded), both in the GT frame.

    Args:
        preds: float [P, N, 3] predictions for the probe images.
        probe: a probe set (``gt_uniform`` [P, K, 3], ``model_id`` and ``category`` [P]).
    """
    gts = [metrics.normalise_bbox(g) for g in probe["gt_uniform"]]
    preds = [metrics.normalise_bbox(p, clip=metrics.PRED_CLIP) for p in preds]
    matched = metrics.per_model_metrics(gts, preds, normalise=False)["chamfer"]
    shuffled = np.full(len(gts), np.nan)  # NaN for a GT whose category holds no other model
    for category in set(probe["category"]):
        index = np.flatnonzero(probe["category"] == category)
        # every prediction of another model (at most len(index) of them: nothing is drawn away)
        draws = references.other_model_draws(probe["model_id"][index], len(index), np.random.default_rng(0))
        if all(len(d) for d in draws):
            shuffled[index] = references.shuffled_per_model([gts[i] for i in index], [preds[i] for i in index],
                                                            draws)["chamfer"]
    return metrics.METRIC_SCALE * float(np.mean(matched)), metrics.METRIC_SCALE * float(np.nanmean(shuffled))


def run(name: str, categories, out) -> list[dict]:
    """Trains one configuration for --steps steps, probing every --probe_n; returns the probe records."""
    config, batch_size = _config(name)
    data_dir = Path(FLAGS.data_dir)
    trainer = Trainer(config, batch_size)
    batches = iter(tfrecords.make_dataset(data_dir, "train", batch_size, shuffle=True, seed=FLAGS.seed,
                                          categories=categories,
                                          gt_types=[config.gt_feature] if config.use_gt_pcl else []))
    probes = {"train": _probe_set(data_dir, "train", categories),
              "test": _probe_set(Path(FLAGS.test_data_dir or data_dir), "test", categories)}
    monitor = CollapseMonitor(trainer.recon_net, probes["train"]["image"])
    grads, probes_out, start = [], [], time.perf_counter()
    for step in range(FLAGS.steps + 1):
        if step % FLAGS.probe_n == 0:
            record = {"config": name, "step": step, "seconds": round(time.perf_counter() - start, 1),
                      **monitor.measure(),
                      **{f"grad/{k}": float(np.mean([g[k] for g in grads])) if grads else float("nan")
                         for k in GRADIENT_LAYERS}}
            if config.use_gt_pcl:
                for split, probe in probes.items():
                    preds = trainer.recon_net(probe["image"], training=False)["xyz"].numpy()
                    record[f"{split}_chamfer"], record[f"{split}_shuffled"] = matched_and_shuffled(preds, probe)
            probes_out.append(record)
            logging.info("%s", json.dumps(record))
            if out:
                out.write(json.dumps(record) + "\n")
                out.flush()
            grads = []
        if step == FLAGS.steps:
            break
        _, status, _ = trainer.train_step(next(batches))
        if status["applied"]:
            grads.append(status["grad_norms"])
    return probes_out


def summarise(records: list[dict]) -> dict:
    """The table row's values of one configuration's probe records (in step order)."""
    trained = records[1:] or records
    lowest = min(trained, key=lambda r: r["xyz_spread"])
    follows = next((r["step"] for r in trained if r["step"] > lowest["step"]
                    and r["xyz_spread"] > COLLAPSED_SPREAD), None)
    return {"config": records[0]["config"], "first": records[0], "second": trained[0], "lowest": lowest,
            "last": records[-1], "follows_from": follows}


def _follows(summary: dict) -> str:
    """The table's "follows the image again from" cell of one configuration."""
    if summary["lowest"]["xyz_spread"] > COLLAPSED_SPREAD:
        return "did not collapse"
    return "never" if summary["follows_from"] is None else f"step {summary['follows_from']}"


def table(summaries: list[dict]) -> str:
    """The Markdown table of the runs (one row each)."""
    supervised = any("train_chamfer" in s["last"] for s in summaries)
    header = ["configuration", "s5 dead, step 0 → end", "xyz spread: first probe / lowest (step) / end",
              "follows the image again from", "gradient norm at s1, first interval → last"]
    if supervised:
        header += ["train: own GT / shuffled", "test: own GT / shuffled"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for s in summaries:
        first, last = s["first"], s["last"]
        second = s["second"]
        row = [f"`{s['config']}`: {CONFIGS[s['config']][0]}",
               f"{100 * first['dead/s5']:.0f} % → {100 * last['dead/s5']:.0f} %",
               f"{second['xyz_spread']:.3g} / {s['lowest']['xyz_spread']:.3g} ({s['lowest']['step']}) / "
               f"{last['xyz_spread']:.3g}",
               _follows(s),
               f"{second['grad/s1']:.3g} → {last['grad/s1']:.3g}"]
        if supervised:
            row += [f"{last[f'{k}_chamfer']:.2f} / {last[f'{k}_shuffled']:.2f}" if f"{k}_chamfer" in last
                    else "—" for k in ("train", "test")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = [name for name in FLAGS.config if name not in CONFIGS]
    if unknown:
        raise app.UsageError(f"unknown --config {unknown}; known: {list(CONFIGS)}")
    if FLAGS.table_from:
        by_config = {}
        for line in Path(FLAGS.table_from).read_text().splitlines():
            record = json.loads(line)
            by_config.setdefault(record["config"], []).append(record)
        print(table([summarise(sorted(records, key=lambda r: r["step"])) for records in by_config.values()]))
        return
    if not FLAGS.data_dir:
        raise app.UsageError("--data_dir is required (unless --table_from)")
    categories = common_flags.categories_from_flag(FLAGS.categ)
    out = open(FLAGS.out, "a") if FLAGS.out else None
    summaries = []
    try:
        for name in FLAGS.config or list(CONFIGS):
            summaries.append(summarise(run(name, categories, out)))
            print(table(summaries[-1:]), flush=True)
    finally:
        if out:
            out.close()
    print(table(summaries))


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("data_dir", "", "Built data set whose train split the runs train on.")
    flags.DEFINE_string("table_from", "", "Print the table of the probes recorded in this JSON-lines file (an "
                        "earlier --out) instead of training.")
    flags.DEFINE_string("test_data_dir", "", "Built data set whose test split is probed (default: --data_dir).")
    flags.DEFINE_string("categ", "car", "Categories to train on: a name, a comma-separated list or 'all'.")
    flags.DEFINE_multi_string("config", [], f"Configurations to run (repeat the flag; default: all): "
                              f"{', '.join(CONFIGS)}.")
    flags.DEFINE_integer("steps", 1500, "Training steps per configuration.", lower_bound=1)
    flags.DEFINE_integer("probe_n", 100, "Probe every this many steps.", lower_bound=1)
    flags.DEFINE_integer("probe_images", 48, "Probe images per split.", lower_bound=2)
    flags.DEFINE_integer("seed", 0, "Seed of the weights, the data order and the random poses.")
    flags.DEFINE_string("out", "", "Append every probe to this JSON-lines file.")
    flags.DEFINE_multi_string("override", [], "A training flag applied to every configuration, e.g. "
                              "--override=--batch_size=8 (repeat the flag).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
