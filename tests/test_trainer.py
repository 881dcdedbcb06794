"""Tests of the training step and loop (model/trainer.py, model/objective.py; baseline §6–§8, §14).

Tiny configurations (N = 256 points, P = 2) on the tiny_dataset fixture keep every Trainer cheap; the
overfit test uses the baseline's network size (N = 1024) because the silhouette needs the points.
"""

import csv
import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from data.tfrecords import make_dataset
from losses.kro import KroConfig
from model import checkpointing
from model.config import TrainConfig
from model.objective import LOSS_NAMES, compute_losses, forward, random_poses
from model.projection import SIGMA_SQ, render
from model.run_logging import RunLogger
from model.optimizer import ADAM_EPSILON
from model.trainer import (LoopConfig, NonFiniteLossError, Trainer, build_networks, describe_nonfinite, fit,
                           restore_latest)

#: run.sh weights (baseline §9) at a tiny size.
RUN_SH = dict(lambda_ae=100.0, lambda_ae_mask=100.0, lambda_mask_fwd=1e-4, lambda_mask_bwd=1e-4,
              lambda_3d=1e4, lambda_pose=1.0, affinity_loss=True, optimise_pose=True)
TINY = dict(n_points=256, n_proj=2, lr=1e-3)


def _batches(data_dir, batch_size, count):
    ds = make_dataset(data_dir, "train", batch_size, shuffle=True, seed=0)
    return [{k: v.numpy() for k, v in b.items()} for b, _ in zip(ds, range(count))]


@pytest.fixture(scope="module")
def batches(tiny_dataset):
    """Six host batches of B = 2 from the training split."""
    return _batches(tiny_dataset, 2, 6)


def _weights(net):
    return [v.numpy().copy() for v in net.trainable_variables]


def _changed(before, net):
    return [not np.array_equal(a, v.numpy()) for a, v in zip(before, net.trainable_variables)]


@pytest.fixture(scope="module")
def full_trainer():
    """Every loss on: affinity, symmetry, KRO (sound) and GT supervision (area), weight decay."""
    config = TrainConfig(**TINY, **RUN_SH, beta1=0.5, symmetry_loss=True, lambda_symm=1.0,
                         kro=KroConfig(enabled=True, variant="sound", min_k=2, max_k=3), use_gt_pcl=True,
                         gt_type="area", lambda_gt=1.0, weight_decay=True, max_nonfinite=3, seed=1)
    return Trainer(config, 2)


def test_random_poses_ranges_and_seed():
    """§7.9: az ∈ [−π, π), el ∈ [−20°, 40°); the same seed gives the same poses."""
    poses = random_poses(tf.random.Generator.from_seed(5), 64, 3).numpy()
    assert poses.shape == (64, 3, 2)
    assert poses[..., 0].min() >= -math.pi and poses[..., 0].max() < math.pi
    assert poses[..., 1].min() >= math.radians(-20) and poses[..., 1].max() < math.radians(40)
    assert poses[..., 0].std() > 1.0  # spread over the whole circle, not a constant
    np.testing.assert_array_equal(poses, random_poses(tf.random.Generator.from_seed(5), 64, 3).numpy())


def test_forward_batched_renders_match_per_pose_loop(batches):
    """The P·B folding of forward() equals the baseline's loop over the P poses (§6)."""
    recon, pose_net = build_networks(64, 256, 128)
    images = batches[0]["image"]
    poses_random = tf.constant([[[0.3, 0.1], [-2.0, -0.2]], [[1.5, 0.5], [2.5, 0.0]]], tf.float32)
    out = forward(recon, pose_net, images, poses_random, None, image_size=64, projection="fast",
                  sigma_sq=SIGMA_SQ)
    first = recon(images)
    assert out["poses"].shape == (2, 3, 2) and len(out["xyz"]) == 4
    np.testing.assert_allclose(out["poses"][:, 0], pose_net(images)["pose"], atol=1e-6)
    for k in range(3):
        ref = render(first["xyz"], first["rgb"], out["poses"][:, k], image_size=64, method="fast")
        np.testing.assert_allclose(out["masks"][k], ref["mask"], atol=1e-5)
        np.testing.assert_allclose(out["images"][k], ref["image"], atol=1e-5)
        np.testing.assert_allclose(out["xyz"][k + 1], recon(ref["image"])["xyz"], atol=1e-4)
        np.testing.assert_allclose(out["pose_out"][:, k], pose_net(ref["image"])["pose"], atol=1e-5)


def test_step_returns_every_loss_finite(full_trainer, batches):
    wd = float(tf.add_n(full_trainer.recon_net.losses)) + float(tf.add_n(full_trainer.pose_net.losses))
    losses, status, sample = full_trainer.train_step(batches[0])
    assert set(losses) == set(LOSS_NAMES)
    assert all(np.isfinite(v) for v in losses.values()), losses
    norms = status.pop("grad_norms")
    assert status == {"applied": True, "grads_recon_finite": True, "grads_pose_finite": True, "error": "",
                      "nonfinite_terms": {"recon_loss": [], "pose_loss": []}}
    assert set(norms) == {"s1", "s4", "s5", "s8"} and all(np.isfinite(v) and v > 0 for v in norms.values())
    for name in ("loss_ae", "loss_mask", "chamfer2d_fwd", "chamfer2d_bwd", "loss_3d", "loss_pose",
                 "loss_symm", "loss_kro", "loss_gt", "loss_wd"):
        assert losses[name] > 0, name
    assert losses["loss_wd"] == pytest.approx(wd, rel=1e-5)  # the declared L2 terms of both nets (§3)
    assert sample["images"].shape == (2, 2, 64, 64, 3) and sample["xyz0"].shape == (2, 256, 3)


#: Baseline §7.8 (and §7.7 for the nearest-neighbour terms, which enter only with --use_mult_proj): which
#: logged losses each weight multiplies in each sum. Read from the baseline, not from model/objective.py.
WEIGHTED = {
    "lambda_ae": {"recon_loss": ("loss_ae",), "loss_total": ("loss_ae",)},
    "lambda_ae_pose": {"pose_loss": ("loss_ae",)},
    "lambda_ae_mask": {"recon_loss": ("loss_mask", "loss_mask_2")},
    "lambda_mask_fwd": {"recon_loss": ("chamfer2d_fwd", "chamfer2d_fwd_2")},
    "lambda_mask_bwd": {"recon_loss": ("chamfer2d_bwd", "chamfer2d_bwd_2")},
    "lambda_mask_pose": {"pose_loss": ("loss_mask",)},
    "lambda_3d": {"recon_loss": ("loss_3d",), "loss_total": ("loss_3d",)},
    "lambda_pose": {"pose_loss": ("loss_pose",), "loss_total": ("loss_pose",)},
    "lambda_symm": {"recon_loss": ("loss_symm",)},         # with --symmetry_loss only
    "lambda_gt": {"recon_loss": ("loss_gt",)},
    "kro.weight": {"recon_loss": ("loss_kro",)},
    "wd_recon": {"recon_loss": (), "loss_wd": ()},         # added as they are: derivative 1
    "wd_pose": {"pose_loss": (), "loss_wd": ()},
}
SUMS = ("recon_loss", "pose_loss", "loss_total", "loss_wd")


@pytest.mark.parametrize("symmetry, nn", [(True, True), (False, False)], ids=["all_terms", "baseline_terms"])
def test_each_weight_multiplies_its_terms_in_the_sums(batches, symmetry, nn):
    """§7.8 by derivatives: with the weights as variables, d(sum)/d(weight) equals the sum of the logged
    losses that weight multiplies (0 where it has none), and at all-zero weights every sum is 0, so no
    term enters unweighted. Every loss is on: affinity, symmetry, KRO, GT Chamfer, the NN terms."""
    keras.utils.set_random_seed(0)
    recon_net, pose_net = build_networks(64, 256, 128)
    batch = {**batches[0], "image_2": batches[0]["image"][::-1], "mask_2": batches[0]["mask"][::-1]}
    poses_random = tf.constant([[[0.3, 0.1]], [[-2.0, -0.2]]], tf.float32)
    out = forward(recon_net, pose_net, batch["image"], poses_random, None, image_size=64, projection="fast",
                  sigma_sq=SIGMA_SQ, images_2=batch["image_2"])
    names = [name for name in WEIGHTED if not name.startswith("wd_")]
    weights = {name: tf.Variable(0.5 + i / 4.0) for i, name in enumerate(WEIGHTED)}

    def losses_at(w):
        flat = {name.removeprefix("kro."): w[name] for name in names if name.startswith("kro.")}
        config = TrainConfig(**TINY, **{name: w[name] for name in names if "." not in name},
                             affinity_loss=True, symmetry_loss=symmetry, use_gt_pcl=True, gt_type="area",
                             neighbours=True, use_mult_proj=nn,
                             kro=KroConfig(enabled=True, variant="sound", max_k=3, **flat))
        return compute_losses(config, batch, out, tf.constant(2), tf.zeros([2], tf.int64), w["wd_recon"],
                              w["wd_pose"])

    with tf.GradientTape(persistent=True) as tape:
        losses = losses_at(weights)
    terms = {name: float(value) for name, value in losses.items()}
    for name in ("loss_ae", "loss_mask", "chamfer2d_fwd", "chamfer2d_bwd", "loss_3d", "loss_pose", "loss_symm",
                 "loss_kro", "loss_gt", "loss_mask_2", "chamfer2d_fwd_2", "chamfer2d_bwd_2"):
        assert terms[name] > 0, name
    for weight, per_sum in WEIGHTED.items():
        for total in SUMS:
            multiplied = per_sum.get(total)
            if weight == "lambda_symm" and not symmetry or multiplied is None:
                expected = 0.0
            elif not multiplied:
                expected = 1.0
            else:
                expected = sum(terms[t] for t in multiplied if nn or not t.endswith("_2"))
            grad = tape.gradient(losses[total], weights[weight])
            got = 0.0 if grad is None else float(grad)
            assert got == pytest.approx(expected, rel=1e-6, abs=0.0), (weight, total)
    zero = losses_at({name: tf.constant(0.0) for name in WEIGHTED})
    for total in SUMS:
        assert float(zero[total]) == 0.0, total


def test_optimisers_are_baseline_adam(full_trainer):
    """§7.8/§14: Adam(lr, beta_1 = --beta1, beta_2 = 0.999, epsilon = 1e-8), one per net."""
    for opt in (full_trainer.optim_recon, full_trainer.optim_pose):
        assert opt.epsilon == ADAM_EPSILON == 1e-8
        assert opt.beta_1 == 0.5 and opt.beta_2 == 0.999
        assert float(opt.learning_rate.numpy()) == pytest.approx(1e-3)
    assert full_trainer.optim_recon is not full_trainer.optim_pose


@pytest.mark.parametrize("only, moved, fixed", [
    (dict(lambda_pose=1.0), "pose_net", "recon_net"),
    (dict(lambda_3d=1.0, lambda_mask_fwd=1.0, lambda_mask_bwd=1.0), "recon_net", "pose_net"),
])
def test_gradient_routing(batches, only, moved, fixed):
    """§7.8: the recon net never gets L_pose; the pose net never gets L_3D or the affinity terms.

    All weights are 0 except the named ones; a net whose loss then carries none of them receives an
    all-zero gradient, so Adam leaves it bit-for-bit unchanged, while the other net moves (most of its
    variables: a ReLU unit that is off for every pixel of the batch gets no gradient).
    """
    zero = dict(lambda_ae=0.0, lambda_ae_pose=0.0, lambda_ae_mask=0.0, lambda_mask_fwd=0.0, lambda_mask_bwd=0.0,
                lambda_mask_pose=0.0, lambda_3d=0.0, lambda_pose=0.0)
    trainer = Trainer(TrainConfig(**TINY, **{**zero, **only}, affinity_loss=True, optimise_pose=True, seed=2), 2)
    nets = {"recon_net": trainer.recon_net, "pose_net": trainer.pose_net}
    before = {name: _weights(net) for name, net in nets.items()}
    _, status, _ = trainer.train_step(batches[0])
    assert status["applied"]
    assert not any(_changed(before[fixed], nets[fixed])), f"{fixed} was updated"
    moved_vars = _changed(before[moved], nets[moved])
    assert sum(moved_vars) > len(moved_vars) // 2, f"{moved}: only {sum(moved_vars)} variables updated"


def _nan_batch(batch: dict) -> dict:
    """The batch with a NaN GT cloud and its image left finite. The GT cloud reaches losses.chamfer's input
    check (the --use_gt_pcl term) through no kernel at all, so the check fires on every CPU; a NaN image
    would go through the convolutions first, and what a kernel library makes of a NaN is its own choice
    (oneDNN's fused convolution + ReLU on AVX-512 turns it into 0, so the cloud comes out finite)."""
    return {**batch, "gt_area": np.full_like(batch["gt_area"], np.nan)}


def test_nonfinite_step_is_skipped_and_named(full_trainer, batches):
    """A NaN GT cloud aborts the step at losses.chamfer's input check, which names itself: every loss is
    reported NaN, the step is skipped, model and Adam state untouched."""
    bad = _nan_batch(batches[1])
    recon, pose = _weights(full_trainer.recon_net), _weights(full_trainer.pose_net)
    slots = [v.numpy().copy() for v in full_trainer.optim_recon.variables]
    step = int(full_trainer.step.numpy())
    losses, status, _ = full_trainer.train_step(bad)
    assert not status["applied"]
    assert "losses.chamfer" in describe_nonfinite(losses, status) and np.isnan(losses["loss_ae"])
    assert not any(_changed(recon, full_trainer.recon_net)) and not any(_changed(pose, full_trainer.pose_net))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(slots, full_trainer.optim_recon.variables))
    assert int(full_trainer.step.numpy()) == step + 1  # the step counter counts batches, skipped or not


def test_nonfinite_gradient_of_faithful_kro_is_skipped(batches):
    """The faithful KRO's tf.norm has a NaN gradient for k = 1 (its anchor is the centre point): finite
    losses, non-finite gradient; the step is skipped and the gradient named."""
    trainer = Trainer(TrainConfig(**TINY, kro=KroConfig(enabled=True, variant="faithful", min_k=1, max_k=1)), 2)
    losses, status, _ = trainer.train_step(batches[0])
    assert all(np.isfinite(v) for v in losses.values())
    assert not status["applied"] and not status["grads_recon_finite"]
    assert status["nonfinite_terms"] == {"recon_loss": ["loss_kro"], "pose_loss": []}
    assert describe_nonfinite(losses, status) == "gradient of recon_loss (from loss_kro)"
    assert int(trainer.optim_recon.iterations.numpy()) == 0


def test_fit_stops_after_max_nonfinite_and_keeps_last_good_checkpoint(full_trainer, batches, tmp_path):
    manager = checkpointing.checkpoint_manager(full_trainer.checkpoint(), tmp_path, keep=2)
    manager.save(checkpoint_number=int(full_trainer.step.numpy()))
    weights = _weights(full_trainer.recon_net)
    bad = _nan_batch(batches[1])
    lines = []
    loop = LoopConfig(exp_dir=str(tmp_path), n_iters=int(full_trainer.step.numpy()) + 50, print_n=1,
                      save_n=1000, save_model_n=1)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        fit(full_trainer, iter([bad] * 50), loop, manager, log=lines.append)
    skipped = [line for line in lines if "step skipped" in line]
    assert len(skipped) == 3 and all("NaN" in line for line in skipped)
    # The intervals of steps 1 and 2 (print_n = 1) had no applied step: their lines say so instead of
    # listing NaN losses; losses.csv has their rows (NaN losses, the skipped count), logs.txt none.
    intervals = [line for line in lines if "every step of the interval skipped" in line]
    assert len(intervals) == 2 and not any("nan" in line for line in intervals)
    with open(tmp_path / "losses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["skipped_steps"] for row in rows] == ["1", "1"] and all(row["loss_ae"] == "nan" for row in rows)
    assert len((tmp_path / "logs.txt").read_text().splitlines()) == 1  # the header
    assert not any(_changed(weights, full_trainer.recon_net))
    kernel = full_trainer.recon_net.trainable_variables[0]
    kernel.assign_add(tf.ones_like(kernel))
    full_trainer.checkpoint().restore(manager.latest_checkpoint).assert_existing_objects_matched()
    assert not any(_changed(weights, full_trainer.recon_net))


def test_resume_continues_exactly(batches, tmp_path):
    """Checkpoint after 3 steps, restore into a fresh Trainer: the next steps give the same losses and
    weights as the uninterrupted run (nets, both Adams, step counter and random-pose stream restored)."""
    config = TrainConfig(**TINY, **RUN_SH, seed=4)
    first = Trainer(config, 2)
    manager = checkpointing.checkpoint_manager(first.checkpoint(), tmp_path, keep=2)
    for batch in batches[:3]:
        first.train_step(batch)
    manager.save(checkpoint_number=3)
    expected = [first.train_step(batch)[0] for batch in batches[3:5]]

    second = Trainer(config, 2)
    manager2 = checkpointing.checkpoint_manager(second.checkpoint(), tmp_path, keep=2)
    assert restore_latest(second, manager2).endswith("ckpt-3")
    assert int(second.step.numpy()) == 3
    assert int(second.optim_recon.iterations.numpy()) == 3 == int(second.optim_pose.iterations.numpy())
    got = [second.train_step(batch)[0] for batch in batches[3:5]]
    for e, g in zip(expected, got):
        for name in LOSS_NAMES:
            np.testing.assert_allclose(g[name], e[name], rtol=1e-5, atol=1e-7, err_msg=name)
    for a, b in zip(first.recon_net.trainable_variables + first.optim_recon.variables,
                    second.recon_net.trainable_variables + second.optim_recon.variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("first, second", [("keras", "fused"), ("fused", "keras")])
def test_checkpoints_restore_across_the_two_adam_updates(batches, tmp_path, first, second):
    """A run checkpointed with one Adam update (e.g. a run from before --adam fused existed) resumes with the
    other: every weight and slot restores bit for bit, and the next step computes the same losses and, up to
    float rounding, the same update as the run that kept its update."""
    config = TrainConfig(**TINY, **RUN_SH, seed=5)
    writer = Trainer(dataclasses.replace(config, adam=first), 2)
    manager = checkpointing.checkpoint_manager(writer.checkpoint(), tmp_path, keep=2)
    for batch in batches[:3]:
        writer.train_step(batch)
    manager.save(checkpoint_number=3)
    state = lambda t: [v.numpy() for v in (t.recon_net.variables + t.pose_net.variables  # noqa: E731
                                           + t.optim_recon.variables + t.optim_pose.variables)]
    saved = state(writer)
    expected = writer.train_step(batches[3])[0]

    reader = Trainer(dataclasses.replace(config, adam=second), 2)
    assert restore_latest(reader, checkpointing.checkpoint_manager(reader.checkpoint(), tmp_path, keep=2))
    for got, want in zip(state(reader), saved):
        np.testing.assert_array_equal(got, want)
    got = reader.train_step(batches[3])[0]
    for name in LOSS_NAMES:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)
    for got, want in zip(state(reader), state(writer)):  # Adam moves a weight by about lr = 1e-3 per step
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * config.lr)


OVERFIT_STEPS = 80


def test_overfit_drives_silhouette_iou_above_0_7(tiny_dataset):
    """--overfit with the run.sh weights (N = 1024, P = 2, B = 1): the IoU between the render at the
    predicted pose (soft mask > 0.5) and the input mask goes from its start (< 0.2: the initial cloud
    is a tiny blob) to > 0.7 within OVERFIT_STEPS = 80 steps."""
    batch = _batches(tiny_dataset, 1, 1)[0]
    trainer = Trainer(TrainConfig(n_points=1024, n_proj=2, lr=5e-4, **RUN_SH), 1)
    target = batch["mask"][0] > 0.5

    def iou(sample):
        pred = sample["masks"][0, 0] > 0.5
        return (pred & target).sum() / (pred | target).sum()

    start = iou(trainer.train_step(batch)[2])
    for _ in range(OVERFIT_STEPS - 1):
        _, status, sample = trainer.train_step(batch)
        assert status["applied"]
    assert start < 0.2
    assert iou(sample) > 0.7, f"IoU {start:.3f} -> {iou(sample):.3f} after {OVERFIT_STEPS} steps"


@pytest.mark.parametrize("bad, message", [
    (dict(n_proj=1), "N_PROJ must be >= 2"),
    (dict(include_last_render=True, cycle_mode="adj_model"), "include_last_render applies to init_model"),
    (dict(use_mult_proj=True), "needs neighbour data"),
    (dict(projection="dense"), "projection must be one of"),
])
def test_config_rejects_inconsistent_settings_with_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_a_stop_before_any_checkpoint_says_there_is_none(batches, tmp_path):
    trainer = Trainer(TrainConfig(**TINY, use_gt_pcl=True, gt_type="area", max_nonfinite=2), 2)
    manager = checkpointing.checkpoint_manager(trainer.checkpoint(), tmp_path, keep=2)
    loop = LoopConfig(exp_dir=str(tmp_path), n_iters=10, print_n=5, save_n=1000, save_model_n=5)
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written before it") as stop:
        fit(trainer, iter([_nan_batch(batches[1])] * 10), loop, manager, log=lambda line: None)
    assert "holds the last good state" not in str(stop.value) and manager.latest_checkpoint is None


def test_a_checkpoint_that_cannot_be_written_names_its_folder(batches, tmp_path, monkeypatch):
    trainer = Trainer(TrainConfig(**TINY), 2)
    manager = checkpointing.checkpoint_manager(trainer.checkpoint(), tmp_path, keep=2)

    def full_disk(**kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(manager, "save", full_disk)
    loop = LoopConfig(exp_dir=str(tmp_path), n_iters=2, print_n=1, save_n=1000, save_model_n=1)
    with pytest.raises(OSError, match=f"saving checkpoint 1 into {tmp_path}.*failed: No space left on device"):
        fit(trainer, iter(batches), loop, manager, log=lambda line: None)


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_on_request_and_the_log_lines_stay(batches, tmp_path, capsys, progress):
    trainer = Trainer(TrainConfig(**TINY), 2)
    manager = checkpointing.checkpoint_manager(trainer.checkpoint(), tmp_path, keep=2)
    lines = []
    loop = LoopConfig(exp_dir=str(tmp_path), n_iters=3, print_n=1, save_n=1000, save_model_n=100)
    fit(trainer, iter(batches), loop, manager, log=lines.append, progress=progress)
    assert len([line for line in lines if line.startswith("step")]) == 3  # the per-print_n lines
    bar = capsys.readouterr().err
    if progress:
        assert "train: 100%" in bar and "3/3" in bar and "step/s" in bar and "recon_loss" in bar
    else:
        assert "step/s" not in bar


def test_a_multi_worker_non_chief_writes_nothing_into_the_run_directory(batches, tmp_path):
    trainer = Trainer(TrainConfig(**TINY), 2)
    run, own = tmp_path / "run", tmp_path / "own"
    manager = checkpointing.checkpoint_manager(trainer.checkpoint(), own, keep=1)
    loop = LoopConfig(exp_dir=str(run), n_iters=2, print_n=1, save_n=1, save_model_n=1, chief=False)
    assert fit(trainer, iter(batches), loop, manager, log=lambda line: None) == 2
    assert not run.exists() and manager.latest_checkpoint.endswith("ckpt-2")


def test_resumed_logs_drop_the_rows_past_the_restored_step(tmp_path):
    means = {name: 0.5 for name in LOSS_NAMES}
    logger = RunLogger(tmp_path, 0)
    for step in range(1, 6):
        logger.write(step, means, 1.0, 0.0)
    logger.close()
    RunLogger(tmp_path, 3).close()  # resumed from the checkpoint of step 3 after a kill at step 5
    with open(tmp_path / "losses.csv", newline="") as handle:
        assert [row["step"] for row in csv.DictReader(handle)] == ["1", "2", "3"]
    assert [line.split(",")[0] for line in (tmp_path / "logs.txt").read_text().splitlines()[1:]] == \
        ["000001", "000002", "000003"]
