"""Train the reconstruction and pose networks (baseline §6–§9; the study's KRO loss and GT supervision).

Usage::

    python train.py --flagfile=presets/demo.flags            # a few minutes on the built-in sample
    python train.py --flagfile=presets/baseline_run.flags    # the baseline's run.sh
    python train.py --exp=expts/mine --data_dir=DIR --categ=chair ...
    python train.py ... --knn_list=knn_list_chair.npy --use_mult_proj   # OURS-NN (§7.7, data/neighbours.py)

Without ``--data_dir`` the built-in sample meshes are rendered into ``generated/datasets/sample_<H>[_v<data_views>]``
the first time. Outputs go to ``--exp`` (see model/checkpointing.py, model/run_config.py and
model/run_logging.py); an interrupted run started again with the same ``--exp`` resumes from its newest
checkpoint.
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import itertools
from pathlib import Path

from absl import app, flags, logging

import common_flags
from data import build, neighbours, tfrecords
from model import checkpointing, run_config
from model.monitor import CollapseMonitor
from model.trainer import LoopConfig, NonFiniteLossError, Trainer, fit, make_strategy, restore_latest
from viz import loss_curves

FLAGS = flags.FLAGS

#: TrainConfig fields that fix the networks' shapes: a run directory cannot be resumed with other values.
_ARCHITECTURE_FIELDS = ("image_size", "n_points", "bottleneck")


def _data_dir() -> Path:
    """``--data_dir``, or the built-in sample (rendered now when missing)."""
    if FLAGS.data_dir:
        path = Path(FLAGS.data_dir)
        tfrecords.read_index(path)  # a clear error when it is not a built data set
        return path
    return build.ensure_dataset(build.builtin_out_dir(FLAGS.H, FLAGS.data_views), source="builtin",
                                views=FLAGS.data_views, image_size=FLAGS.H, progress=True, log=logging.info)


def _check_resumable(exp: Path, config) -> None:
    """Refuse to resume a run directory with networks of another shape (clear error, not a restore failure)."""
    try:
        previous = run_config.load(exp).train
    except FileNotFoundError:
        return
    changed = {name: (getattr(previous, name), getattr(config, name)) for name in _ARCHITECTURE_FIELDS
               if getattr(previous, name) != getattr(config, name)}
    if changed and (exp / checkpointing.CHECKPOINT_DIR).is_dir():
        raise app.UsageError(f"{exp} holds checkpoints of other networks (field: (was, now) = {changed}); "
                             "use another --exp")


def _batches(data_dir: Path, config, categories, start: int):
    """Host batches: the data set shuffled with a seed that moves on with the resumed step, or the
    first batch forever with --overfit (baseline §2.4); with --knn_list, the list's anchors each with a
    neighbour image (data/neighbours.py, baseline §6)."""
    seed = FLAGS.seed if FLAGS.overfit else FLAGS.seed + start
    gt_types = [config.gt_feature] if config.use_gt_pcl else []
    if FLAGS.knn_list:
        pairs = neighbours.load_pairs(FLAGS.knn_list, data_dir, FLAGS.split, categories, FLAGS.knn_ranks)
        logging.info("%s", pairs.summary)
        dataset = neighbours.paired_dataset(pairs, data_dir, FLAGS.split, FLAGS.batch_size, seed=seed,
                                            first_step=start, categories=categories, gt_types=gt_types)
    else:
        dataset = tfrecords.make_dataset(data_dir, FLAGS.split, FLAGS.batch_size, shuffle=True, seed=seed,
                                         categories=categories, gt_types=gt_types)
    batches = iter(dataset)
    return itertools.repeat(next(batches)) if FLAGS.overfit else batches


def _monitor(recon_net, data_dir: Path, categories):
    """The collapse monitor (model/monitor.py) on the first --monitor_images training images, or None."""
    if FLAGS.monitor_images < 2:
        return None
    probe = tfrecords.make_dataset(data_dir, FLAGS.split, FLAGS.monitor_images, shuffle=False, repeat=False,
                                   categories=categories, drop_remainder=False, gt_types=[])
    images = next(iter(probe))["image"]
    if images.shape[0] < 2:
        logging.info("collapse monitor off: the training split has fewer than 2 images")
        return None
    return CollapseMonitor(recon_net, images)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = common_flags.train_config_from_flags()
    categories = common_flags.categories_from_flag(FLAGS.categ)
    exp = Path(FLAGS.exp)
    _check_resumable(exp, config)
    checkpointing.write_flags(exp, common_flags.flagfile_text(), common_flags.flags_dict())
    data_dir = _data_dir()
    run_config.save(exp, run_config.RunConfig(train=config, data_dir=str(data_dir), split=FLAGS.split,
                                              categories=None if categories is None else tuple(categories)))

    strategy = make_strategy(FLAGS.distribute)
    trainer = Trainer(config, FLAGS.batch_size, strategy)
    manager = checkpointing.checkpoint_manager(trainer.checkpoint(), exp, FLAGS.keep_checkpoints)
    restored = restore_latest(trainer, manager)
    start = int(trainer.step.numpy())
    if restored:
        logging.info("resumed from %s: step %d, optimiser iterations recon %d / pose %d", restored, start,
                     int(trainer.optim_recon.iterations.numpy()), int(trainer.optim_pose.iterations.numpy()))
    else:
        logging.info("starting a new run in %s", exp)
    logging.info("data %s, %d replica(s), projection %s", data_dir, strategy.num_replicas_in_sync,
                 config.projection)

    loop = LoopConfig(exp_dir=str(exp), n_iters=FLAGS.N_ITERS, print_n=FLAGS.print_n, save_n=FLAGS.save_n,
                      save_model_n=FLAGS.save_model_n)
    try:
        final = fit(trainer, _batches(data_dir, config, categories, start), loop, manager, log=logging.info,
                    monitor=_monitor(trainer.recon_net, data_dir, categories))
    except NonFiniteLossError as err:
        logging.error("%s", err)
        raise SystemExit(f"train.py: {err}") from None
    logging.info("done: %d steps; newest checkpoint %s", final, manager.latest_checkpoint)
    try:
        logging.info("loss curves: %s", loss_curves.plot_loss_curves([str(exp)], exp / "losses.png",
                                                                     labels=[exp.name]))
    except ValueError as err:  # fewer steps than --print_n: no interval logged yet
        logging.info("no loss curves: %s", err)


def define_flags() -> None:
    """The training flags (common_flags.py); --exp is required."""
    common_flags.define_flags()
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
