"""Geometric / pose cycle consistency, symmetry (baseline §7.4–§7.6) and GT supervision."""

import math

import numpy as np
import pytest
import tensorflow as tf

from losses.cycle import geometric_cycle_loss, pose_cycle_loss, symmetry_loss, wrap_angle
from losses.supervision import gt_loss


def t(x):
    return tf.constant(np.asarray(x, np.float64))


def reference_cd(a, b):
    """Brute-force §7.4 Chamfer in numpy: mean_b(mean_n min_m d² + mean_m min_n d²)."""
    d2 = np.sum((np.asarray(a)[:, :, None] - np.asarray(b)[:, None]) ** 2, axis=-1)
    return np.mean(d2.min(2).mean(1) + d2.min(1).mean(1))


# single-point clouds: CD(a, b) = 2‖a − b‖²
ONE_POINT = [t([[[0.0, 0, 0]]]), t([[[1.0, 0, 0]]]), t([[[0.0, 2, 0]]]), t([[[0.0, 0, 3]]]),
             t([[[4.0, 0, 0]]])]


def test_geometric_cycle_goldens():
    assert float(geometric_cycle_loss(ONE_POINT)) == pytest.approx(2 * (1 + 4 + 9))
    assert float(geometric_cycle_loss(ONE_POINT, include_last=True)) == pytest.approx(2 * (1 + 4 + 9 + 16))
    # adjacent pairs: ‖p0−p1‖² + ‖p1−p2‖² + ‖p2−p3‖² + ‖p3−p4‖² = 1 + 5 + 13 + 25
    assert float(geometric_cycle_loss(ONE_POINT, mode="adj_model")) == pytest.approx(2 * 44)


def test_init_model_ignores_the_last_render_like_the_baseline():
    rng = np.random.default_rng(0)
    clouds = [t(rng.normal(size=(2, 16, 3))) for _ in range(5)]
    moved = clouds[:4] + [clouds[4] + 10.0]
    assert float(geometric_cycle_loss(moved)) == float(geometric_cycle_loss(clouds))
    assert float(geometric_cycle_loss(moved, include_last=True)) > float(
        geometric_cycle_loss(clouds, include_last=True))
    expected = sum(reference_cd(clouds[k].numpy(), clouds[0].numpy()) for k in range(1, 4))
    assert float(geometric_cycle_loss(clouds)) == pytest.approx(expected, rel=1e-10)


def test_geometric_cycle_gradient_reaches_xyz0_and_the_reconstructions():
    rng = np.random.default_rng(1)
    clouds = [tf.Variable(rng.normal(size=(1, 8, 3))) for _ in range(3)]
    with tf.GradientTape() as tape:
        loss = geometric_cycle_loss(clouds)
    grads = tape.gradient(loss, clouds)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads[:2])
    assert grads[2] is None                                         # pcl_outs[P], unused (off by one)


def test_geometric_cycle_errors():
    with pytest.raises(ValueError, match="include_last"):
        geometric_cycle_loss(ONE_POINT, mode="adj_model", include_last=True)
    with pytest.raises(ValueError, match="mode"):
        geometric_cycle_loss(ONE_POINT, mode="emd")
    with pytest.raises(ValueError, match="P \\+ 1"):
        geometric_cycle_loss(ONE_POINT[:1])


def test_pose_cycle_golden_and_wrap():
    sampled = t([[[3.1, 0.2], [0.0, -0.1]]])
    pred = t([[[-3.1, 0.1], [0.5, 0.0]]])
    plain = (6.2 + 0.1 + 0.5 + 0.1) / 4
    assert float(pose_cycle_loss(sampled, pred)) == pytest.approx(plain)
    wrapped = (2 * math.pi - 6.2 + 0.1 + 0.5 + 0.1) / 4
    assert float(pose_cycle_loss(sampled, pred, wrap=True)) == pytest.approx(wrapped)


def test_wrap_angle_range_and_gradient():
    angles = tf.Variable(np.linspace(-10.0, 10.0, 41))
    with tf.GradientTape() as tape:
        wrapped = wrap_angle(angles)
    w = wrapped.numpy()
    assert np.all(w >= -math.pi) and np.all(w < math.pi)
    np.testing.assert_allclose(np.cos(w), np.cos(angles.numpy()), atol=1e-12)
    np.testing.assert_allclose(tape.gradient(wrapped, angles).numpy(), 1.0)


def test_symmetry_main_goldens():
    mirrored = t([[[1.0, 2.0, 3.0], [1.0, -2.0, 3.0]]])
    assert float(symmetry_loss(mirrored)) == pytest.approx(0.0)
    # P⁺ = {(0,1,0), origin}, P⁻ = {origin, (0,3,0)}: fwd (1 + 0)/2, bwd (0 + 4)/2
    assert float(symmetry_loss(t([[[0.0, 1.0, 0.0], [0.0, -3.0, 0.0]]]))) == pytest.approx(2.5)


def test_symmetry_multi_mask_golden():
    assert float(symmetry_loss(t([[[1.0, 2.0, -3.0]]]), kind="multi_mask")) == pytest.approx(10.0 / 3.0)
    with pytest.raises(ValueError, match="symmetry_loss"):
        symmetry_loss(t([[[1.0, 2.0, 3.0]]]), kind="x")


def test_gt_loss_golden_with_different_point_counts():
    pred = t([[[0.0, 0, 0], [2.0, 0, 0]]])
    gt = t([[[0.0, 0, 1], [2.0, 0, 0], [3.0, 0, 0]]])
    # pred→gt: (1 + 0)/2; gt→pred: (1 + 0 + 1)/3
    assert float(gt_loss(pred, gt)) == pytest.approx(0.5 + 2.0 / 3.0)


def test_gt_loss_gradient_float64():
    rng = np.random.default_rng(2)
    gt = t(rng.normal(size=(1, 7, 3)))
    pred = rng.normal(size=(1, 5, 3))
    theoretical, numerical = tf.test.compute_gradient(lambda p: gt_loss(p, gt), [t(pred)], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)
