"""The training step and loop (baseline §6–§8): two nets, two Adam optimisers, one compiled step.

Shape legend: B global batch (split evenly over the R replicas of the distribution strategy, b = B/R
each), N points, H = W image size, P = N_PROJ.

One ``tf.function`` step (:meth:`Trainer.train_step`):

1. in cross-replica context, draw the P−1 random poses of the whole global batch (§7.9) and the KRO
   partition count k from the run's seeded ``tf.random.Generator`` (checkpointed, so a resumed run
   continues the same random stream); every replica takes the rows of its own samples, so the step is
   the same computation on 1 or R devices;
2. per replica: forward (§6) and losses (§7) under ONE persistent tape; the recon net's gradient is taken
   of ``recon_loss`` and the pose net's of ``pose_loss`` (§7.8, §14), each scaled by 1/R;
3. gradients and losses are summed over replicas; when every loss and gradient is finite both
   optimisers apply (the pose optimiser only with ``optimise_pose`` and no GT pose), otherwise nothing
   changes (the step is skipped and reported, model/optimiser state untouched).

The step is plain graph code (no data-dependent Python control flow), so it is traced without
AutoGraph, which makes the first call several times faster.

The loop (:func:`fit`) logs, saves renders/clouds and checkpoints into the run directory of
model/checkpointing.py (the chief process only, in a multi-worker run), shows a progress bar on request
and stops after ``max_nonfinite`` skipped steps in a row.
"""

import dataclasses
import os
import re
import sys
import time
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from model import checkpointing, run_config
from model.config import TrainConfig
from model.monitor import CollapseMonitor, summary_line
from model.optimizer import make_optimizer
from model.objective import LOSS_NAMES, compute_losses, forward, optimised_terms, random_poses
from model.pose_net import build_pose_net
from model.recon_net import build_recon_net
from model.run_config import RunConfig
from model.run_logging import RunLogger, save_samples

#: Message of a failed tf.debugging numerics check (check_numerics, assert_all_finite).
_NUMERICS_ERROR = re.compile(r"NaN|Inf")
#: Keys of a batch the step reads (the rest, e.g. model_id, stays on the host).
_STEP_KEYS = ("image", "mask", "pose")
#: Keys the step also reads with nearest-neighbour data (data/neighbours.py, baseline §6).
_NEIGHBOUR_KEYS = ("image_2", "mask_2")


#: Layers of the recon net whose kernel's gradient norm every step reports (first and last convolution of the
#: encoder, the bottleneck, the xyz head): how much of the loss's gradient reaches the encoder.
GRADIENT_LAYERS = ("s1", "s4", "s5", "s8")

#: make_strategy modes (--distribute); N is a device count >= 1.
STRATEGY_MODES = ("auto", "none", "gpu", "gpu:N", "cpu:N")


class NonFiniteLossError(RuntimeError):
    """Training stopped after too many consecutive steps with a non-finite loss or gradient."""


def parse_strategy_mode(mode: str) -> tuple[str, int | None]:
    """(kind, device count) of a make_strategy mode: ("auto"|"none"|"gpu", None) or ("gpu"|"cpu", N).

    Raises:
        ValueError: not one of STRATEGY_MODES.
    """
    kind, sep, count = mode.partition(":")
    if not sep and kind in ("auto", "none", "gpu"):
        return kind, None
    if sep and kind in ("gpu", "cpu") and count.isdigit() and int(count) >= 1:
        return kind, int(count)
    raise ValueError(f"distribution mode {mode!r} is none of {', '.join(STRATEGY_MODES)} (N >= 1)")


def make_strategy(mode: str = "auto") -> tf.distribute.Strategy:
    """The distribution strategy of a run.

    Args:
        mode: one of STRATEGY_MODES. "auto": MultiWorkerMirroredStrategy when the TF_CONFIG environment
            variable is set, MirroredStrategy over the local GPUs when there is at least one, else the
            default strategy; "none": the default strategy; "gpu": MirroredStrategy over every local GPU,
            "gpu:N" over the first N; "cpu:N": MirroredStrategy over N logical devices made of the CPU (for
            development: several replicas on one machine without GPUs). "cpu:N" configures the logical
            devices, which TensorFlow allows only before it initialises them: call make_strategy before
            anything runs an op.

    Raises:
        ValueError: an unknown mode, fewer GPUs than asked for, TF_CONFIG with a single-machine mode, or
            "cpu:N" after TensorFlow has initialised its devices with another count.
    """
    kind, count = parse_strategy_mode(mode)
    if kind == "none":
        return tf.distribute.get_strategy()
    if os.environ.get("TF_CONFIG"):
        if kind != "auto":
            raise ValueError(f"--distribute {mode} runs on one machine, but TF_CONFIG is set (a multi-worker "
                             "run): use --distribute auto, or unset TF_CONFIG")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "cpu":
        return tf.distribute.MirroredStrategy(_logical_cpus(count))
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if kind == "gpu" and len(gpus) < (count or 1):
        raise ValueError(f"--distribute {mode}: TensorFlow sees {len(gpus)} GPU(s)")
    if gpus:
        return tf.distribute.MirroredStrategy(gpus[:count])
    return tf.distribute.get_strategy()


def _logical_cpus(count: int) -> list[str]:
    """Names of ``count`` logical devices made of the first physical CPU (configured now if need be)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # already initialised: usable only if it already has that many
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise ValueError(f"--distribute cpu:{count} must be set up before TensorFlow initialises its "
                             "devices (make_strategy first)") from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory: a single process always; of a multi-worker run, the
    task "chief", or worker 0 when the cluster has no chief (the others train but write nothing there)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def build_networks(image_size: int, n_points: int, bottleneck: int, weight_decay: bool = False,
                   dense_init: str = "tflearn"):
    """(recon_net, pose_net) of baseline §3–§4 (``dense_init``: model.layers.DENSE_INITS)."""
    return (build_recon_net(image_size=image_size, n_points=n_points, bottleneck=bottleneck,
                            weight_decay=weight_decay, dense_init=dense_init),
            build_pose_net(image_size=image_size, bottleneck=bottleneck, weight_decay=weight_decay,
                           dense_init=dense_init))


def _regularisation(net) -> tf.Tensor:
    """Sum of a net's declared L2 terms (empty, hence 0, unless built with weight_decay)."""
    return tf.add_n(net.losses) if net.losses else tf.zeros([], tf.float32)


def _all_finite(tensors) -> tf.Tensor:
    """bool scalar: every element of every tensor is finite."""
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


class Trainer:
    """Networks, optimisers, step counter and random generator of a run, and the compiled step.

    Args:
        config: the step's configuration.
        global_batch_size: B, a multiple of the number of replicas.
        strategy: a tf.distribute strategy (default: the default strategy).
    """

    def __init__(self, config: TrainConfig, global_batch_size: int, strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if global_batch_size % replicas:
            raise ValueError(f"batch size {global_batch_size} is not a multiple of the {replicas} replicas")
        self.global_batch_size = global_batch_size
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self.recon_net, self.pose_net = build_networks(config.image_size, config.n_points,
                                                           config.bottleneck, config.weight_decay,
                                                           config.dense_init)
            self.optim_recon = make_optimizer(config.lr, config.beta1, config.adam, "optim_recon")
            self.optim_pose = make_optimizer(config.lr, config.beta1, config.adam, "optim_pose")
            self.optim_recon.build(self.recon_net.trainable_variables)
            self.optim_pose.build(self.pose_net.trainable_variables)
        # Used only in cross-replica context, so created outside the strategy's scope.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.rng = tf.random.Generator.from_seed(config.seed)
        self._step_fn = tf.function(self._step, autograph=False)
        self._terms_fn = None  # traced on the first step skipped for a non-finite gradient

    def checkpoint(self) -> tf.train.Checkpoint:
        """Checkpoint of both nets, both optimisers, the step counter and the RNG state."""
        return tf.train.Checkpoint(recon_net=self.recon_net, pose_net=self.pose_net,
                                   optim_recon=self.optim_recon, optim_pose=self.optim_pose,
                                   step=self.step, rng=self.rng)

    def distribute(self, batch: dict):
        """Place a host batch (global B rows) on the replicas: replica r gets rows [r·b, (r+1)·b).

        Only the tensors the step reads are placed (image, mask, pose, and the GT cloud and the neighbour
        image and mask when used).
        """
        keys = (_STEP_KEYS + ((self.config.gt_feature,) if self.config.use_gt_pcl else ())
                + (_NEIGHBOUR_KEYS if self.config.neighbours else ()))
        missing = [key for key in keys if key not in batch]
        if missing:
            raise ValueError(f"model/trainer.py: the batch lacks {missing}, which this configuration reads "
                             "(image_2/mask_2 come from data/neighbours.py)")
        batch = {key: tf.convert_to_tensor(batch[key]) for key in keys}
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            return batch
        local = self.global_batch_size // replicas

        def slice_for(ctx):
            start = ctx.replica_id_in_sync_group * local
            return {key: value[start:start + local] for key, value in batch.items()}

        return self.strategy.experimental_distribute_values_from_function(slice_for)

    def train_step(self, batch: dict) -> tuple[dict, dict, dict | None]:
        """Run one step on a host batch of B samples.

        A numerics check failing inside the step (e.g. losses.chamfer's check of its input clouds) aborts
        the step before any update; it is reported like a non-finite loss.

        Returns:
            (losses, status, sample): ``losses`` dict over LOSS_NAMES of numpy float32 scalars (means over
            the global batch; NaN when a numerics check aborted the step); ``status`` = {"applied": bool,
            "grads_recon_finite": bool, "grads_pose_finite": bool, "error": the failed check's message or
            "", "grad_norms": {layer: float} the norm of the recon loss's gradient w.r.t. the kernel of each
            layer of GRADIENT_LAYERS (empty when aborted), "nonfinite_terms": {"recon_loss": [...],
            "pose_loss": [...]} the terms of each sum whose own gradient (w.r.t. what the losses read: clouds,
            colours, poses, renders) is non-finite, looked for only when that sum's gradient is}; ``sample``
            (None when aborted) = numpy arrays of the first replica's samples: ``xyz0`` [b, N, 3], ``rgb0``
            [b, N, 3], ``poses`` [b, P, 2], ``images`` [P, b, H, W, 3], ``masks`` [P, b, H, W].
        """
        try:
            losses, status, sample, draws = self._step_fn(self.distribute(batch))
        except tf.errors.InvalidArgumentError as err:
            if not _NUMERICS_ERROR.search(err.message):
                raise
            # The failed check precedes every update (they need the losses), so nothing changed.
            self.step.assign_add(1)
            nan = np.float32("nan")
            return (dict.fromkeys(LOSS_NAMES, nan),
                    {"applied": False, "grads_recon_finite": False, "grads_pose_finite": False,
                     "error": next(line.strip() for line in err.message.splitlines()
                                   if _NUMERICS_ERROR.search(line)), "grad_norms": {},
                     "nonfinite_terms": {"recon_loss": [], "pose_loss": []}}, None)
        self.step.assign_add(1)
        as_np = lambda d: {key: value.numpy() for key, value in d.items()}  # noqa: E731
        grad_norms = {key: float(value) for key, value in as_np(status.pop("grad_norms")).items()}
        status = {key: bool(value) for key, value in as_np(status).items()}
        finite = status["grads_recon_finite"] and status["grads_pose_finite"]
        status["nonfinite_terms"] = (self._nonfinite_terms(batch, draws) if not finite
                                     else {"recon_loss": [], "pose_loss": []})
        return as_np(losses), {**status, "error": "", "grad_norms": grad_norms}, as_np(sample)

    def _step(self, batch):
        c = self.config
        poses = random_poses(self.rng, self.global_batch_size, c.n_proj - 1)
        k = c.kro.draw_k(self.rng) if c.kro.enabled else tf.zeros([], tf.int32)
        kro_seed = self.rng.make_seeds(1)[:, 0] if c.kro.enabled and c.kro.needs_seed else tf.zeros([2], tf.int64)
        losses, grads_recon, grads_pose, sample = self.strategy.run(self._replica_step,
                                                                    args=(batch, poses, k, kro_seed))
        total = lambda value: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)  # noqa: E731
        losses = {name: total(value) for name, value in losses.items()}
        grads_recon = [total(g) for g in grads_recon]
        grads_pose = [total(g) for g in grads_pose]
        status = {"grads_recon_finite": _all_finite(grads_recon),
                  "grads_pose_finite": _all_finite(grads_pose) if grads_pose else tf.constant(True)}
        kernels = {v.path: g for g, v in zip(grads_recon, self.recon_net.trainable_variables)}
        grad_norms = {name: tf.norm(kernels[f"{name}/kernel"]) for name in GRADIENT_LAYERS}
        # Only what is optimised decides: a logged-only term (e.g. loss_symm without --symmetry_loss) may
        # be non-finite without touching the weights.
        optimised = [losses["recon_loss"]] + ([losses["pose_loss"]] if grads_pose else [])
        applied = _all_finite(optimised) & status["grads_recon_finite"] & status["grads_pose_finite"]

        def apply():
            self.optim_recon.apply_gradients(zip(grads_recon, self.recon_net.trainable_variables))
            if grads_pose:
                self.optim_pose.apply_gradients(zip(grads_pose, self.pose_net.trainable_variables))
            return tf.constant(True)

        status["applied"] = tf.cond(applied, apply, lambda: tf.constant(False))
        status["grad_norms"] = grad_norms
        first = lambda value: self.strategy.experimental_local_results(value)[0]  # noqa: E731
        return losses, status, {key: first(value) for key, value in sample.items()}, (poses, k, kro_seed)

    def _replica_step(self, batch, poses_global, k, kro_seed):
        c = self.config
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync
        local = tf.shape(batch["image"])[0]
        start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * local
        poses_random = poses_global[start:start + local]
        with tf.GradientTape(persistent=True) as tape:
            out = forward(self.recon_net, self.pose_net, batch["image"], poses_random,
                          batch["pose"] if c.use_gt_pose else None, image_size=c.image_size,
                          projection=c.projection, sigma_sq=c.sigma_sq,
                          images_2=batch["image_2"] if c.neighbours else None)
            losses = compute_losses(c, batch, out, k, kro_seed, _regularisation(self.recon_net),
                                    _regularisation(self.pose_net))
            losses = {name: value / replicas for name, value in losses.items()}
        grads_recon = tape.gradient(losses["recon_loss"], self.recon_net.trainable_variables)
        grads_pose = (tape.gradient(losses["pose_loss"], self.pose_net.trainable_variables)
                      if c.trains_pose_net else [])
        del tape
        for grads, net in ((grads_recon, self.recon_net), (grads_pose, self.pose_net)):
            missing = [v.path for g, v in zip(grads, net.trainable_variables) if g is None]
            if missing:
                raise ValueError(f"model/trainer.py: no gradient reaches {missing}")
        sample = {"xyz0": out["xyz"][0], "rgb0": out["rgb0"], "poses": out["poses"],
                  "images": out["images"], "masks": out["masks"]}
        return losses, grads_recon, grads_pose, sample

    def _nonfinite_terms(self, batch, draws) -> dict[str, list[str]]:
        """The terms of each optimised sum whose own gradient is non-finite in a step that was skipped for a
        non-finite gradient: the step's forward again on its host batch with its random draws (global
        batch, one device), then the losses on its outputs held fixed and one backward per term through the
        losses alone. Run only for such steps, so a normal step pays nothing for it."""
        if self._terms_fn is None:
            self._terms_fn = tf.function(self._term_flags, autograph=False)
        keys = [key for key in _STEP_KEYS + (self.config.gt_feature,) + _NEIGHBOUR_KEYS if key in batch]
        flags = self._terms_fn({key: tf.convert_to_tensor(batch[key]) for key in keys}, *draws)
        return {loss: [name for name, bad in zip(names, flags[loss].numpy()) if bad]
                for loss, names in optimised_terms(self.config).items()}

    def _term_flags(self, batch, poses_random, k, kro_seed):
        c = self.config
        out = forward(self.recon_net, self.pose_net, batch["image"], poses_random,
                      batch["pose"] if c.use_gt_pose else None, image_size=c.image_size, projection=c.projection,
                      sigma_sq=c.sigma_sq, images_2=batch["image_2"] if c.neighbours else None)
        held = tf.nest.map_structure(tf.stop_gradient, out)
        inputs = tf.nest.flatten(held)
        zero = tf.zeros([], tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(inputs)
            losses = compute_losses(c, batch, held, k, kro_seed, zero, zero)
        flags = {}
        for loss, names in optimised_terms(c).items():
            found = []
            for name in names:
                grads = [tf.convert_to_tensor(g) for g in tape.gradient(losses[name], inputs) if g is not None]
                found.append(tf.logical_not(_all_finite(grads)) if grads else tf.constant(False))
            flags[loss] = tf.stack(found)
        return flags


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Schedule and outputs of the training loop (baseline §8).

    Attributes:
        exp_dir: the run directory.
        n_iters: train until the step counter reaches this (--N_ITERS).
        print_n: log interval in steps.
        save_n: renders/clouds every save_n steps (step indices 0, save_n, 2·save_n, …).
        save_model_n: checkpoint whenever the number of completed steps is a multiple of it (and at the end).
        chief: this process writes the run directory (logs, CSV, TensorBoard, renders and clouds; the
            checkpoint manager given to fit points there); False for the other workers of a multi-worker
            run, which write none of it (their manager points to a folder of their own).
    """

    exp_dir: str
    n_iters: int
    print_n: int = 100
    save_n: int = 1000
    save_model_n: int = 5000
    chief: bool = True


def describe_nonfinite(losses: dict, status: dict) -> str:
    """Name what was non-finite in a skipped step: the failed check, else the losses, else the gradients and
    the terms they come from."""
    if status["error"]:
        return status["error"]
    bad = [name for name in LOSS_NAMES if not np.isfinite(losses[name])]
    for key, loss in (("grads_recon_finite", "recon_loss"), ("grads_pose_finite", "pose_loss")):
        if not status[key]:
            terms = status.get("nonfinite_terms", {}).get(loss)
            bad.append(f"gradient of {loss} " + (f"(from {', '.join(terms)})" if terms else
                                                "(from no loss term: in the projection or the networks)"))
    return ", ".join(bad)


def restore_latest(trainer: Trainer, manager: tf.train.CheckpointManager) -> str | None:
    """Restore the newest checkpoint of ``manager`` into ``trainer`` (automatic resume, §8).

    Returns:
        The checkpoint prefix restored, or None when there is none (fresh start).
    """
    path = manager.latest_checkpoint
    if path is not None:
        manager.checkpoint.restore(path).assert_existing_objects_matched()
    return path


def fit(trainer: Trainer, batches: Iterator[dict], loop: LoopConfig, manager: tf.train.CheckpointManager,
        log: Callable[[str], None] = print, monitor: CollapseMonitor | None = None,
        progress: bool = False) -> int:
    """Train from ``trainer.step`` up to ``loop.n_iters`` steps.

    Args:
        trainer: a Trainer, already restored when resuming.
        batches: host batches of B samples (dicts of data/tfrecords.py).
        loop: schedule and run directory.
        manager: checkpoint manager of ``trainer.checkpoint()``.
        log: where progress lines go.
        monitor: measured at every print interval (monitor.csv, TensorBoard and a log line, with the mean
            gradient norms of GRADIENT_LAYERS over the interval as ``grad/<layer>``), or None.
        progress: show a progress bar on stderr (steps/s, time left, the last step's recon_loss); the
            ``log`` lines are written above it.

    Returns:
        The number of completed steps.

    Raises:
        NonFiniteLossError: ``max_nonfinite`` consecutive steps were skipped; the model was not changed by
            them and the newest checkpoint, if any, is the last good state (the message says which).
        OSError: a file of the run directory or a checkpoint could not be written (the message names it).
    """
    start = int(trainer.step.numpy())
    logger = RunLogger(loop.exp_dir, start) if loop.chief else None
    bar = None  # opened after the first step, whose tracing logs its choices (and would skew the rate)

    def say(line: str) -> None:
        if bar is None or bar.disable:
            log(line)
            return
        with tqdm.external_write_mode(file=sys.stderr):  # the bar steps aside for the line
            log(line)

    sums, applied, skipped_in_row, skipped_total = dict.fromkeys(LOSS_NAMES, 0.0), 0, 0, 0
    grad_sums = dict.fromkeys(GRADIENT_LAYERS, 0.0)
    skipped_at_interval_start = 0
    t_start = t_interval = time.perf_counter()
    interval_start = start
    try:
        for it in range(start, loop.n_iters):
            batch = next(batches)
            losses, status, sample = trainer.train_step(batch)
            if bar is None:
                bar = tqdm(total=loop.n_iters, initial=it, desc="train", unit="step", disable=not progress,
                           file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
            if status["applied"]:
                skipped_in_row, applied = 0, applied + 1
                for name in LOSS_NAMES:
                    sums[name] += float(losses[name])
                for name in GRADIENT_LAYERS:
                    grad_sums[name] += status["grad_norms"][name]
                bar.set_postfix_str(f"recon_loss {float(losses['recon_loss']):.4g}", refresh=False)
            else:
                skipped_in_row, skipped_total = skipped_in_row + 1, skipped_total + 1
                say(f"step {it}: non-finite {describe_nonfinite(losses, status)}; step skipped, model "
                    f"unchanged ({skipped_in_row} in a row, {skipped_total} in this run)")
                if skipped_in_row >= trainer.config.max_nonfinite:
                    raise NonFiniteLossError(
                        f"training stopped at step {it}: {skipped_in_row} steps in a row had a non-finite loss "
                        f"or gradient ({describe_nonfinite(losses, status)}); " + _last_good(manager))
            bar.update()
            if loop.chief and it % loop.save_n == 0 and sample is not None:
                save_samples(loop.exp_dir, it, {k: np.asarray(v) for k, v in batch.items()}, sample)
            done = it + 1
            if done % loop.print_n == 0:
                now = time.perf_counter()
                means = {n: sums[n] / applied for n in LOSS_NAMES} if applied else None
                if logger is not None:
                    say(logger.write(done, means, (done - interval_start) / (now - t_interval),
                                     (now - t_start) / 60.0, skipped_total - skipped_at_interval_start))
                if monitor is not None and logger is not None:
                    stats = monitor.measure()
                    stats.update({f"grad/{name}": grad_sums[name] / applied if applied else float("nan")
                                  for name in GRADIENT_LAYERS})
                    logger.write_monitor(done, stats)
                    say(summary_line(stats))
                sums, applied, interval_start, t_interval = dict.fromkeys(LOSS_NAMES, 0.0), 0, done, now
                grad_sums = dict.fromkeys(GRADIENT_LAYERS, 0.0)
                skipped_at_interval_start = skipped_total
            if done % loop.save_model_n == 0:
                checkpointing.save(manager, done)
        final = int(trainer.step.numpy())
        if manager.latest_checkpoint is None or checkpointing.checkpoint_step(manager.latest_checkpoint) != final:
            checkpointing.save(manager, final)
        return final
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()


def _last_good(manager: tf.train.CheckpointManager) -> str:
    """Where the last good state of a run that stopped is, in words."""
    if manager.latest_checkpoint is None:
        return (f"no checkpoint was written before it (into {manager.directory}): the run has no state to "
                "resume from; start it again with other settings")
    return (f"the newest checkpoint, {manager.latest_checkpoint} (step "
            f"{checkpointing.checkpoint_step(manager.latest_checkpoint)}), holds the last good state")


def load_for_inference(exp_dir, step: int | None = None) -> tuple[keras.Model, keras.Model, RunConfig]:
    """The trained networks of a run, for evaluation and prediction.

    Args:
        exp_dir: a run directory written by train.py.
        step: the checkpoint's step; None for the newest.

    Returns:
        (recon_net, pose_net, run): the two Keras models with the checkpoint's weights and the run's
        configuration (model.run_config.load).

    Raises:
        FileNotFoundError: no config.json or flags.json, or no (such) checkpoint; the message says which.
    """
    run = run_config.load(exp_dir)
    recon_net, pose_net = build_networks(run.train.image_size, run.train.n_points, run.train.bottleneck)
    path = checkpointing.checkpoint_path(exp_dir, step)
    tf.train.Checkpoint(recon_net=recon_net, pose_net=pose_net).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    return recon_net, pose_net, run
