"""Tests of evaluation/alignment.py: the baseline's global rotation fit (baseline §10.2) and the ICP option."""

import numpy as np
import pytest
import tensorflow as tf

from evaluation import alignment


def _rx(a):
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _ry(a):
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _rz(a):
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def test_euler_rotation_order_and_goldens():
    # R_x(90°) (azimuth alone) maps +y to +z; R_z(90°) (tilt alone) maps +x to +y.
    np.testing.assert_allclose(alignment.euler_rotation(np.radians([90.0, 0.0, 0.0])).numpy() @ [0, 1, 0],
                               [0, 0, 1], atol=1e-7)
    np.testing.assert_allclose(alignment.euler_rotation(np.radians([0.0, 0.0, 90.0])).numpy() @ [1, 0, 0],
                               [0, 1, 0], atol=1e-7)
    az, el, tilt = np.radians(alignment.INIT_DEG)
    expected = _rz(tilt) @ _ry(el) @ _rx(az)
    got = alignment.euler_rotation(tf.constant([az, el, tilt], tf.float64)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got @ got.T, np.eye(3), atol=1e-12)


def test_euler_rotation_gradient_float64():
    angles = tf.constant([0.3, -0.2, 1.1], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(alignment.euler_rotation, [angles])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-7)


def _asymmetric_clouds(rng, m=6, n=256):
    """Anisotropic blobs with an off-centre lump each: no rotational symmetry, so the rotation is unique."""
    clouds = rng.normal(size=(m, n, 3)) * [0.35, 0.2, 0.1]
    clouds[:, : n // 8] = rng.normal(size=(m, n // 8, 3)) * 0.05 + [0.3, 0.25, 0.1]
    return clouds.astype(np.float32)


def test_fit_recovers_a_known_global_rotation():
    rng = np.random.default_rng(0)
    gts = _asymmetric_clouds(rng)
    true_deg = np.asarray(alignment.INIT_DEG) + [12.0, -9.0, 10.0]
    true_rotation = alignment.euler_rotation(np.radians(true_deg)).numpy()
    # The model's frame: gt = R_true · pred, so pred = R_true^T · gt (rows: gt @ R_true).
    preds = gts @ true_rotation
    fit = alignment.fit_global_rotation(preds, gts, n_iters=1200, lr=2e-3, batch_size=2, seed=0, backend="tf")
    assert np.linalg.norm(fit.rotation - true_rotation) < 0.03, fit.angles_deg
    np.testing.assert_allclose(alignment.rotate(preds, fit.rotation), gts, atol=0.03)
    assert fit.losses[-50:].mean() < 0.05 * fit.losses[:50].mean()
    assert fit.losses.shape == (1200,)


def test_fit_starts_from_the_baseline_initialisation():
    rng = np.random.default_rng(1)
    clouds = _asymmetric_clouds(rng, m=2, n=64)
    fit = alignment.fit_global_rotation(clouds, clouds, n_iters=1, lr=1e-12, backend="tf")
    np.testing.assert_allclose(fit.angles_deg, alignment.INIT_DEG, atol=1e-3)
    with pytest.raises(ValueError, match="same M"):
        alignment.fit_global_rotation(clouds, clouds[:1], n_iters=1)


def test_icp_refine_undoes_a_small_rigid_motion():
    rng = np.random.default_rng(2)
    gt = _asymmetric_clouds(rng, m=1, n=512)[0].astype(np.float64)
    rotation = _rz(0.15) @ _rx(-0.1)
    moved = gt @ rotation.T + [0.02, -0.01, 0.03]
    np.testing.assert_allclose(alignment.icp_refine(moved, gt, n_iters=50), gt, atol=1e-6)
