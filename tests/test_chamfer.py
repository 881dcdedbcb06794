"""Tests of losses/chamfer.py: definitions (goldens, properties, gradients), both backends, references, errors.

Every test that takes the `backend` fixture runs on the custom op ("op", built in this session when missing,
a failed build fails the tests) and on the pure-TF backend ("tf").
"""

import logging

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_graphics.nn.loss import chamfer_distance as tfg_chamfer

from losses import chamfer


@pytest.fixture(params=["op", "tf"])
def backend(request):
    if request.param == "op":
        request.getfixturevalue("op_library")
    return request.param


def _clouds(seed, b, n, m, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, n, 3)).astype(dtype), rng.normal(size=(b, m, 3)).astype(dtype)


def test_golden_tiny_clouds(backend):
    # a0 = (0,0,0) sits on b0; a1 = (1,0,0) is 1 from b0, 5 from b1 = (0,2,0), 4 from b2 = (3,0,0).
    # b1 is 4 from a0 and 5 from a1; b2 is 9 from a0 and 4 from a1.
    a = np.array([[[0, 0, 0], [1, 0, 0]]], np.float32)
    b = np.array([[[0, 0, 0], [0, 2, 0], [3, 0, 0]]], np.float32)
    d_ab, i_ab, d_ba, i_ba = chamfer.nn_distance(a, b, backend)
    np.testing.assert_array_equal(d_ab, [[0, 1]])
    np.testing.assert_array_equal(i_ab, [[0, 0]])
    np.testing.assert_array_equal(d_ba, [[0, 4, 4]])
    np.testing.assert_array_equal(i_ba, [[0, 0, 1]])
    fwd, bwd = chamfer.chamfer_distance(a, b, backend)
    np.testing.assert_allclose(fwd, [0.5])
    np.testing.assert_allclose(bwd, [8 / 3], rtol=1e-6)
    # Batch of two: the second pair is the first scaled by 2, so its terms are 4x; the loss is the batch mean.
    loss = chamfer.chamfer_loss(np.concatenate([a, 2 * a]), np.concatenate([b, 2 * b]), backend)
    np.testing.assert_allclose(loss, (0.5 + 8 / 3) * (1 + 4) / 2, rtol=1e-6)


def test_ties_go_to_the_lowest_index(backend):
    # The query is at distance 1 from b0, b1, b2, b4 and b5 (b3 is farther); b4 and b5 repeat b1.
    a = np.zeros((1, 1, 3), np.float32)
    b = np.array([[[1, 0, 0], [0, -1, 0], [0, 0, 1], [2, 2, 2], [0, -1, 0], [0, -1, 0]]], np.float32)
    _, i_ab, _, i_ba = chamfer.nn_distance(a, b, backend)
    np.testing.assert_array_equal(i_ab, [[0]])
    np.testing.assert_array_equal(i_ba, np.zeros((1, 6)))
    _, i_ab, _, _ = chamfer.nn_distance(a, b[:, 1:], backend)
    np.testing.assert_array_equal(i_ab, [[0]])


def test_properties(backend):
    a, b = _clouds(0, 3, 50, 37)
    fwd, bwd = chamfer.chamfer_distance(a, b, backend)
    # Zero on identical clouds.
    np.testing.assert_array_equal(chamfer.chamfer_distance(a, a, backend), np.zeros((2, 3)))
    # Symmetric: swapping the clouds swaps the two terms.
    fwd_s, bwd_s = chamfer.chamfer_distance(b, a, backend)
    np.testing.assert_array_equal(fwd_s, bwd)
    np.testing.assert_array_equal(bwd_s, fwd)
    # Invariant to point order (up to the order of the mean's summation).
    rng = np.random.default_rng(1)
    perm_a, perm_b = rng.permutation(50), rng.permutation(37)
    np.testing.assert_allclose(chamfer.chamfer_distance(a[:, perm_a], b[:, perm_b], backend), (fwd, bwd),
                               rtol=1e-6)
    # Invariant to a common translation (float32 rounding of the shifted coordinates only).
    shift = np.array([0.3, -1.7, 2.2], np.float32)
    np.testing.assert_allclose(chamfer.chamfer_distance(a + shift, b + shift, backend), (fwd, bwd), rtol=1e-5)
    # Scaling by s multiplies both terms by s^2 (exactly for a power of two).
    np.testing.assert_array_equal(chamfer.chamfer_distance(4 * a, 4 * b, backend), (16 * fwd, 16 * bwd))


def test_float64_gradient(backend):
    a, b = _clouds(2, 2, 9, 7, np.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda x, y: chamfer.chamfer_loss(x, y, backend), [tf.constant(a), tf.constant(b)], delta=1e-6)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-8)
    # Closed form: d loss / d a[k, i] = 2 (a[k,i] - b[k, i_ab]) / (B N) + sum over b-points whose nearest is a[k,i].
    _, i_ab, _, i_ba = (x.numpy() for x in chamfer.nn_distance(a, b, backend))
    expected = np.zeros_like(a)
    for k in range(2):
        expected[k] += 2 * (a[k] - b[k, i_ab[k]]) / (2 * 9)
        np.add.at(expected[k], i_ba[k], -2 * (b[k] - a[k, i_ba[k]]) / (2 * 7))
    a_t = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(a_t)
        loss = chamfer.chamfer_loss(a_t, b, backend)
    np.testing.assert_allclose(tape.gradient(loss, a_t), expected, rtol=1e-12)


@pytest.mark.parametrize("batch,n,m", [(1, 1, 1), (1, 1, 40), (2, 40, 1), (3, 64, 64), (2, 33, 100),
                                       (4, 257, 129)])
def test_backends_and_tensorflow_graphics_agree(op_library, batch, n, m):
    a, b = (tf.constant(x) for x in _clouds(batch * 1000 + n + m, batch, n, m))
    values, grads = {}, {}
    for backend in ("op", "tf"):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            fwd, bwd, i_ab, i_ba = chamfer.chamfer_distance(a, b, backend, return_indices=True)
            loss = tf.reduce_mean(fwd + bwd)
        values[backend] = (fwd, bwd, i_ab, i_ba)
        grads[backend] = tape.gradient(loss, [a, b])
    for x, y in zip(values["op"] + tuple(grads["op"]), values["tf"] + tuple(grads["tf"])):
        np.testing.assert_array_equal(x, y)  # identical, not merely close
    # tensorflow_graphics returns fwd + bwd per batch element (squared distances, means per direction).
    np.testing.assert_allclose(values["op"][0] + values["op"][1], tfg_chamfer.evaluate(a, b), rtol=1e-5)


def test_float64_inputs_keep_their_dtype(backend):
    a, b = _clouds(4, 1, 5, 6, np.float64)
    d_ab, i_ab, d_ba, i_ba = chamfer.nn_distance(a, b, backend)
    assert d_ab.dtype == d_ba.dtype == tf.float64 and i_ab.dtype == i_ba.dtype == tf.int32
    assert d_ab.shape == (1, 5) and d_ba.shape == (1, 6)


BAD_INPUTS = [
    ("rank", np.zeros((4, 3), np.float32), np.zeros((1, 4, 3), np.float32), "rank"),
    ("last axis", np.zeros((1, 4, 2), np.float32), np.zeros((1, 4, 2), np.float32), "last axis"),
    ("empty", np.zeros((1, 0, 3), np.float32), np.zeros((1, 4, 3), np.float32), "empty"),
    ("batch", np.zeros((2, 4, 3), np.float32), np.zeros((3, 4, 3), np.float32), "batch"),
    ("nan", np.array([[[0, np.nan, 0]]], np.float32), np.zeros((1, 4, 3), np.float32), "NaN"),
]


@pytest.mark.parametrize("a,b,match", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_eager(backend, a, b, match):
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=match):
        chamfer.chamfer_loss(a, b, backend)


@pytest.mark.parametrize("a,b,match", [case[1:] for case in BAD_INPUTS[1:]], ids=[c[0] for c in BAD_INPUTS[1:]])
def test_bad_input_in_tf_function_with_unknown_shapes(backend, a, b, match):
    spec = tf.TensorSpec([None, None, None], tf.float32)
    loss = tf.function(lambda x, y: chamfer.chamfer_loss(x, y, backend), input_signature=[spec, spec])
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        loss(a, b)


def test_unknown_backend_and_non_float_input():
    a = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="unknown backend"):
        chamfer.chamfer_loss(a, a, "cuda")
    with pytest.raises(TypeError, match="floating"):
        chamfer.chamfer_loss(np.zeros((1, 2, 3), np.int32), a, "tf")


def test_auto_picks_the_op_and_logs_once(op_library, caplog):
    assert chamfer.available_backends() == ["op", "tf"]
    chamfer._auto_backend.cache_clear()
    a, b = _clouds(5, 1, 4, 4)
    with caplog.at_level(logging.INFO, logger=chamfer.__name__):
        first = chamfer.chamfer_loss(a, b)
        second = chamfer.chamfer_loss(b, a)
    messages = [r.getMessage() for r in caplog.records if r.name == chamfer.__name__]
    assert len(messages) == 1 and "custom op NnDistance" in messages[0]
    np.testing.assert_array_equal(first, chamfer.chamfer_loss(a, b, "op"))
    np.testing.assert_array_equal(first, second)
