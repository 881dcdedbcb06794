"""Tests of geometry/safe_ops.py and geometry/checks.py: goldens, float64 gradients, the clear errors."""

import numpy as np
import pytest
import tensorflow as tf

from geometry.checks import check_cloud, check_image_size
from geometry.safe_ops import safe_divide, safe_norm


def test_safe_norm_golden_and_zero_gradient_at_zero():
    v = tf.constant([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(v)
        norm = safe_norm(v)
    np.testing.assert_array_equal(norm, [5.0, 0.0])
    np.testing.assert_allclose(tape.gradient(norm, v), [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]], rtol=1e-15)
    with tf.GradientTape() as tape:  # the plain norm: NaN at zero, which safe_norm avoids
        tape.watch(v)
        plain = tf.norm(v, axis=-1)
    assert np.isnan(tape.gradient(plain, v).numpy()[1]).all()


def test_safe_norm_gradient_matches_finite_differences():
    v = tf.constant(np.random.default_rng(0).normal(size=(4, 3)))
    theoretical, numerical = tf.test.compute_gradient(safe_norm, [v])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-7)  # central differences


def test_safe_divide_golden_and_finite_gradients():
    num = tf.constant([6.0, 1.0, -2.0], tf.float64)
    den = tf.constant([3.0, 0.0, -1.0], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([num, den])
        out = safe_divide(num, den)
    np.testing.assert_array_equal(out, [2.0, 0.0, 0.0])  # den <= 0: 0
    g_num, g_den = tape.gradient(out, [num, den])
    np.testing.assert_allclose(g_num, [1.0 / 3.0, 0.0, 0.0], rtol=1e-15)
    np.testing.assert_allclose(g_den, [-6.0 / 9.0, 0.0, 0.0], rtol=1e-15)


def test_checks_name_the_caller():
    for bad in (0, -64, 64.0, True, "64"):
        with pytest.raises(ValueError, match=r"renderer: image_size must be a positive int"):
            check_image_size(bad, "renderer")
    check_image_size(64, "renderer")
    assert check_cloud([[1, 2, 3]], "here").dtype == np.float64
    with pytest.raises(ValueError, match=r"here: pred must be a non-empty \[N, 3\] cloud, got shape \(0, 3\)"):
        check_cloud(np.zeros((0, 3)), "here", "pred")
    with pytest.raises(ValueError, match="here: cloud contains non-finite"):
        check_cloud([[np.nan, 0, 0]], "here")
