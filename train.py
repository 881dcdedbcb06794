"""Train the reconstruction and pose networks (baseline §6–§9; the study's KRO loss and GT supervision).

Usage::

    python train.py --flagfile=presets/demo.flags            # a few minutes on the built-in sample
    python train.py --flagfile=presets/baseline_run.flags    # the baseline's run.sh
    python train.py --exp=expts/mine --data_dir=DIR --categ=chair ...
    python train.py ... --knn_list=knn_list_chair.npy --use_mult_proj   # OURS-NN (§7.7, data/neighbours.py)

Without ``--data_dir`` the built-in sample meshes are rendered into ``generated/datasets/sample_<H>[_v<data_views>]``
(with ``--procedural_models N``: N generated cars and chairs into ``generated/datasets/procedural_<H>_m<N>``)
the first time. Outputs go to ``--exp`` (see model/checkpointing.py, model/run_config.py and
model/run_logging.py); an interrupted run started again with the same ``--exp`` resumes from its newest
checkpoint.
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import contextlib
import itertools
import sys
import tempfile
from pathlib import Path

from absl import app, flags, logging

import common_flags
from data import build, neighbours, tfrecords
from model import checkpointing, run_config
from model.monitor import CollapseMonitor
from model.run_lock import RunInUseError, RunLock
from model.trainer import (LoopConfig, NonFiniteLossError, Trainer, fit, is_chief, make_strategy,
                           restore_latest)
from viz import loss_curves

FLAGS = flags.FLAGS

#: TrainConfig fields that fix the networks' shapes: a run directory cannot be resumed with other values.
_ARCHITECTURE_FIELDS = ("image_size", "n_points", "bottleneck")


def _fail(message) -> None:
    """Stops with a message (no traceback) and exit status 1."""
    raise SystemExit(f"train.py: {message}")


def _data_dir(categories) -> Path:
    """``--data_dir``, or the procedural set of ``--procedural_models``, or the built-in sample (either rendered
    now when missing), checked to hold examples of
    ``--split`` for the categories (a clear error otherwise: no data set, an empty split, a missing shard)."""
    if FLAGS.data_dir:
        path = Path(FLAGS.data_dir)
    elif FLAGS.procedural_models:
        path = build.ensure_dataset(build.procedural_out_dir(FLAGS.H, FLAGS.procedural_models), source="procedural",
                                    image_size=FLAGS.H, progress=True, log=logging.info,
                                    split=build.PROCEDURAL_SPLIT, procedural_models=FLAGS.procedural_models)
    else:
        path = build.ensure_dataset(build.builtin_out_dir(FLAGS.H, FLAGS.data_views), source="builtin",
                                    views=FLAGS.data_views, image_size=FLAGS.H, progress=True, log=logging.info)
    tfrecords.split_examples(path, FLAGS.split, categories)
    return path


def _check_resumable(exp: Path, config) -> None:
    """Refuse to resume a run directory with networks of another shape, or whose configuration cannot be read
    (clear error, not a restore failure)."""
    resuming = (exp / checkpointing.CHECKPOINT_DIR).is_dir()
    try:
        previous = run_config.load(exp).train
    except FileNotFoundError:
        return
    except ValueError as err:
        if resuming:
            _fail(f"cannot resume {exp}: {err}. Restore that file, or give another --exp")
        return  # no checkpoint: a new run, whose configuration is written from the flags
    changed = {name: (getattr(previous, name), getattr(config, name)) for name in _ARCHITECTURE_FIELDS
               if getattr(previous, name) != getattr(config, name)}
    if changed and resuming:
        raise app.UsageError(f"{exp} holds checkpoints of other networks (field: (was, now) = {changed}); "
                             "use another --exp")


def _prepare_run_directory(exp: Path, config, categories, data_dir: Path) -> None:
    """The chief's start in its locked run directory: a killed save's leftovers deleted, resuming checked,
    the flags and the configuration written."""
    for name in checkpointing.remove_unfinished(exp):
        logging.info("deleted %s, left by a process killed while saving a checkpoint", name)
    _check_resumable(exp, config)
    checkpointing.write_flags(exp, common_flags.flagfile_text(), common_flags.flags_dict())
    run_config.save(exp, run_config.RunConfig(train=config, data_dir=str(data_dir), split=FLAGS.split,
                                              categories=None if categories is None else tuple(categories)))


def _batches(data_dir: Path, config, categories, start: int):
    """Host batches: the data set shuffled with --seed, the first ``start`` batches skipped, so that a resumed
    run sees the batches the uninterrupted one saw; or the first batch forever with --overfit (baseline
    §2.4); with --knn_list, the list's anchors each with a neighbour image (data/neighbours.py, baseline §6).
    A damaged shard raises a ValueError naming it."""
    skip = 0 if FLAGS.overfit else start
    gt_types = [config.gt_feature] if config.use_gt_pcl else []
    if FLAGS.knn_list:
        pairs = neighbours.load_pairs(FLAGS.knn_list, data_dir, FLAGS.split, categories, FLAGS.knn_ranks)
        logging.info("%s", pairs.summary)
        dataset = neighbours.paired_dataset(pairs, data_dir, FLAGS.split, FLAGS.batch_size, seed=FLAGS.seed,
                                            first_step=skip, categories=categories, gt_types=gt_types)
    else:
        dataset = tfrecords.make_dataset(data_dir, FLAGS.split, FLAGS.batch_size, shuffle=True, seed=FLAGS.seed,
                                         categories=categories, gt_types=gt_types, skip=skip * FLAGS.batch_size)
    batches = tfrecords.named_read_errors(iter(dataset), data_dir, FLAGS.split)
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
    try:
        config = common_flags.train_config_from_flags()
        categories = common_flags.categories_from_flag(FLAGS.categ)
        strategy = make_strategy(FLAGS.distribute)  # before anything runs an op (--distribute cpu:N)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    if FLAGS.batch_size % strategy.num_replicas_in_sync:
        raise app.UsageError(f"--batch_size={FLAGS.batch_size} is not a multiple of the "
                             f"{strategy.num_replicas_in_sync} replicas of --distribute {FLAGS.distribute}")
    exp = Path(FLAGS.exp)
    if exp.exists() and not exp.is_dir():
        raise app.UsageError(f"--exp {exp} is a file, not a run directory")
    try:
        data_dir = _data_dir(categories)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    chief = is_chief(strategy)
    with contextlib.ExitStack() as stack:
        if chief:  # the one writer of the run directory; a multi-worker run's other workers write nothing there
            try:
                stack.enter_context(RunLock(exp))
                _prepare_run_directory(exp, config, categories, data_dir)
            except RunInUseError as err:
                _fail(err)
            except OSError as err:
                _fail(f"cannot write the run directory --exp {exp}: {err}")
        _train(exp, config, categories, data_dir, strategy, chief, stack)


def _train(exp: Path, config, categories, data_dir: Path, strategy, chief: bool, stack) -> None:
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
    if not chief:  # every worker saves (it may take part in collectives); the others into a folder of their own
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="train-worker-"))
        manager = checkpointing.checkpoint_manager(trainer.checkpoint(), scratch, 1)

    loop = LoopConfig(exp_dir=str(exp), n_iters=FLAGS.N_ITERS, print_n=FLAGS.print_n, save_n=FLAGS.save_n,
                      save_model_n=FLAGS.save_model_n, chief=chief)
    try:
        final = fit(trainer, _batches(data_dir, config, categories, start), loop, manager, log=logging.info,
                    monitor=_monitor(trainer.recon_net, data_dir, categories),
                    progress=chief and sys.stderr.isatty())
    except NonFiniteLossError as err:
        logging.error("%s", err)
        _fail(err)
    except OSError as err:
        _fail(f"writing the run failed: {err}; the newest checkpoint is {manager.latest_checkpoint}")
    except ValueError as err:  # a damaged shard (tfrecords.named_read_errors)
        _fail(err)
    logging.info("done: %d steps; newest checkpoint %s", final, manager.latest_checkpoint)
    if chief:
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
