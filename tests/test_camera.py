"""Tests of geometry/camera.py (baseline §5.1–5.2): hand-computed pixels, rotation order, sizes, dtypes."""

import math

import numpy as np
import pytest
import tensorflow as tf

from geometry import camera

HALF_PI = math.pi / 2

# (point, (az, el), expected (u, v, w) at 64 px), each derived by hand from §5.1–5.2:
# u = 32 + 120·x_cam/|z_cam|, v = 32 + 120·y_cam/|z_cam|, w = |z_cam|, z_cam = (R p)_z − 2.
GOLDEN_64 = [
    ((0.0, 0.0, 0.0), (0.0, 0.0), (32.0, 32.0, 2.0)),  # origin → principal point
    ((0.1, -0.2, 0.5), (0.0, 0.0), (40.0, 16.0, 1.5)),  # cam (0.1, −0.2, −1.5): 32 + 8, 32 − 16
    # R_az(π/2) maps (x, y, z) → (x, −z, y)
    ((0.0, 0.5, 0.0), (HALF_PI, 0.0), (32.0, 32.0, 1.5)),  # → (0, 0, 0.5): nearer the camera
    ((0.0, 0.0, 0.4), (HALF_PI, 0.0), (32.0, 8.0, 2.0)),  # → (0, −0.4, 0): 32 − 120·0.4/2
    # R_el(π/2) maps (x, y, z) → (z, y, −x)
    ((0.5, 0.0, 0.0), (0.0, HALF_PI), (32.0, 32.0, 2.5)),  # → (0, 0, −0.5)
    ((0.0, 0.0, 0.4), (0.0, HALF_PI), (56.0, 32.0, 2.0)),  # → (0.4, 0, 0): 32 + 24
    # both: azimuth first, then elevation: (0, 0.5, 0) → (0, 0, 0.5) → (0.5, 0, 0): u = 32 + 30.
    # (the other order would give (0, 0.5, 0) → (0, 0, 0.5) → u = 32, v = 32.)
    ((0.0, 0.5, 0.0), (HALF_PI, HALF_PI), (62.0, 32.0, 2.0)),
    ((0.0, 0.0, 0.4), (HALF_PI, HALF_PI), (32.0, 8.0, 2.0)),
]


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("point,pose,expected", GOLDEN_64)
def test_project_golden_pixels(point, pose, expected, dtype):
    uvw = camera.project(tf.constant([[point]], dtype), tf.constant([pose], dtype), image_size=64)
    assert uvw.dtype == dtype and uvw.shape == (1, 1, 3)
    np.testing.assert_allclose(uvw.numpy()[0, 0], expected, atol=1e-5)


def test_batch_of_poses_is_per_element():
    xyz = tf.constant([[p for p, _, _ in GOLDEN_64]] * len(GOLDEN_64), tf.float64)  # [8, 8, 3]
    pose = tf.constant([pose for _, pose, _ in GOLDEN_64], tf.float64)  # [8, 2]
    uvw = camera.project(xyz, pose).numpy()
    diagonal = uvw[np.arange(len(GOLDEN_64)), np.arange(len(GOLDEN_64))]
    np.testing.assert_allclose(diagonal, [e for _, _, e in GOLDEN_64], atol=1e-9)


def test_intrinsics_exact_at_64_and_scaled():
    assert camera.intrinsics(64) == (120.0, 32.0)
    assert camera.intrinsics(128) == (240.0, 64.0)
    assert camera.intrinsics(32) == (60.0, 16.0)
    for bad in (0, -64, 64.0, True):
        with pytest.raises(ValueError, match="image_size"):
            camera.intrinsics(bad)


def test_other_image_size_scales_pixels():
    # cam (0.1, −0.2, −1.5) at 128 px: u = 64 + 240·0.1/1.5 = 80, v = 64 − 240·0.2/1.5 = 32.
    uvw = camera.project(tf.constant([[[0.1, -0.2, 0.5]]]), tf.zeros([1, 2]), image_size=128)
    np.testing.assert_allclose(uvw.numpy()[0, 0], (80.0, 32.0, 1.5), atol=1e-5)


def test_perspective_transform_is_the_baseline_matrix_form():
    # (a, b, c) = K·(x, y, z) with K = [[120, 0, −32], [0, 120, −32], [0, 0, 1]]; u = a/|z|, v = b/|z|.
    rng = np.random.default_rng(0)
    cam = rng.uniform(-1, 1, (2, 5, 3))
    cam[..., 2] -= 2.0
    k = np.array([[120.0, 0, -32.0], [0, 120.0, -32.0], [0, 0, 1.0]])
    abc = cam @ k.T
    expected = np.stack([abc[..., 0] / np.abs(cam[..., 2]), abc[..., 1] / np.abs(cam[..., 2]),
                         np.abs(abc[..., 2])], -1)
    np.testing.assert_allclose(camera.perspective_transform(tf.constant(cam)).numpy(), expected, rtol=1e-12)


def test_rotation_matrix_any_batch_shape():
    rng = np.random.default_rng(1)
    az, el = rng.uniform(-np.pi, np.pi, (2, 3)), rng.uniform(-1, 1, (2, 3))
    rot = camera.rotation_matrix(tf.constant(az), tf.constant(el)).numpy()
    assert rot.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    ca, sa, ce, se = np.cos(az), np.sin(az), np.cos(el), np.sin(el)
    closed_form = np.stack([np.stack([ce, se * sa, se * ca], -1),
                            np.stack([np.zeros_like(ca), ca, -sa], -1),
                            np.stack([-se, ce * sa, ce * ca], -1)], -2)
    np.testing.assert_allclose(rot, closed_form, atol=1e-12)
    assert camera.rotation_matrix(0.3, 0.2).shape == (3, 3)


def test_project_gradients_float64():
    rng = np.random.default_rng(2)
    xyz = tf.constant(rng.uniform(-0.5, 0.5, (2, 4, 3)))
    pose = tf.constant(rng.uniform(-1, 1, (2, 2)))
    for args, wrt in (((xyz,), lambda x: camera.project(x, pose)), ((pose,), lambda p: camera.project(xyz, p))):
        theoretical, numerical = tf.test.compute_gradient(wrt, list(args))
        np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-6)
