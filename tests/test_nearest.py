"""Tests of geometry/nearest.py: the one nearest-neighbour search (TensorFlow and NumPy forms)."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

from geometry.nearest import chunked_argmin, nearest_index, nearest_numpy

# a0 = (0,0,0) sits on r0; a1 = (1,0,0) is 1 from r0, 5 from r1 = (0,2,0), 4 from r2 = (3,0,0);
# a2 = (1.5,0,0) is 2.25 from r0 and 2.25 from r2: a tie, the lower index wins.
QUERY = np.array([[[0, 0, 0], [1, 0, 0], [1.5, 0, 0]]], np.float32)
REFERENCE = np.array([[[0, 0, 0], [0, 2, 0], [3, 0, 0]]], np.float32)


def _brute(query, reference, allowed=None):
    """Dense NumPy reference: [B, Q, R] squared distances, masked with +inf, argmin (first on ties)."""
    d = np.sum((query[:, :, None, :] - reference[:, None, :, :]) ** 2, axis=-1)
    if allowed is not None:
        d = np.where(allowed, d, np.inf)
    return np.argmin(d, axis=-1)


def _quantised_clouds(seed, b, q, r, dtype=np.float64):
    """Random clouds whose rounded halves make exact ties and duplicate points."""
    rng = np.random.default_rng(seed)
    query, reference = rng.normal(size=(b, q, 3)).astype(dtype), rng.normal(size=(b, r, 3)).astype(dtype)
    query[:, : q // 3] = np.round(query[:, : q // 3], 1)
    reference[:, : r // 2] = np.round(reference[:, : r // 2], 1)
    return query, reference


def test_golden_indices_lowest_index_on_ties():
    np.testing.assert_array_equal(nearest_index(QUERY, REFERENCE), [[0, 0, 0]])
    np.testing.assert_array_equal(nearest_index(REFERENCE, QUERY), [[0, 0, 2]])


@given(seed=st.integers(0, 10_000), q=st.integers(1, 40), r=st.integers(1, 40))
def test_equals_dense_brute_force(seed, q, r):
    query, reference = _quantised_clouds(seed, 2, q, r)
    np.testing.assert_array_equal(nearest_index(query, reference), _brute(query, reference))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "xla"])
def test_chunks_give_the_one_chunk_answer(compiled):
    query, reference = _quantised_clouds(3, 2, 23, 11, np.float32)
    search = tf.function(nearest_index, jit_compile=True) if compiled else nearest_index
    one_chunk = search(query, reference, max_entries=2 * 23 * 11)
    np.testing.assert_array_equal(one_chunk, _brute(query, reference))
    for max_entries in (1, 2 * 11 * 5):  # one query point per chunk; chunks of 5 with a ragged last chunk
        np.testing.assert_array_equal(search(query, reference, max_entries=max_entries), one_chunk)


@pytest.mark.parametrize("max_entries", [1, 2 * 11 * 4, 2**23])
def test_mask_restricts_the_choice(max_entries):
    query, reference = _quantised_clouds(5, 2, 13, 11)
    allowed = np.random.default_rng(6).random((2, 13, 11)) < 0.3
    allowed[0, 0] = False  # a query with nothing allowed gets index 0
    got = nearest_index(query, reference, tf.constant(allowed), max_entries=max_entries).numpy()
    np.testing.assert_array_equal(got, _brute(query, reference, allowed))
    assert got[0, 0] == 0
    chosen = np.take_along_axis(allowed, got[..., None], axis=-1)[..., 0]
    assert chosen[allowed.any(axis=-1)].all()


def test_chunked_argmin_chunks_every_query_tensor_together():
    """A cost that reads two per-query tensors: the chunks of both stay aligned, with a ragged last chunk."""
    rng = np.random.default_rng(7)
    values = tf.constant(rng.normal(size=(2, 9, 1)))
    shift = tf.constant(rng.integers(0, 5, size=(2, 9)), tf.int64)
    grid = tf.range(5, dtype=tf.float64)

    def cost(part):  # [B, c, 1], [B, c] -> [B, c, 5]: |value - r| + (r == shift) * 100
        value, offset = part
        return tf.abs(value - grid) + 100.0 * tf.cast(tf.equal(tf.range(5, dtype=tf.int64), offset[..., None]),
                                                        tf.float64)

    whole = cost((values, shift)).numpy().argmin(axis=-1)
    for max_entries in (1, 2 * 5 * 4, 1000):
        np.testing.assert_array_equal(chunked_argmin(cost, (values, shift), 5, max_entries), whole)


def test_search_has_no_gradient_and_needs_a_static_last_axis():
    query, reference = tf.constant(QUERY), tf.constant(REFERENCE)
    with tf.GradientTape() as tape:
        tape.watch([query, reference])
        index = nearest_index(query, reference)
        total = tf.reduce_sum(tf.gather(reference, index, batch_dims=1))
    # Only the gather carries a gradient: to the reference points that were picked, none to the query.
    grads = tape.gradient(total, [query, reference])
    assert grads[0] is None
    np.testing.assert_array_equal(tf.convert_to_tensor(grads[1]), [[[3, 3, 3], [0, 0, 0], [0, 0, 0]]])
    unknown = tf.function(nearest_index, input_signature=[tf.TensorSpec([None, None, None], tf.float32)] * 2)
    with pytest.raises(ValueError, match="static"):
        unknown.get_concrete_function()


def test_numpy_golden_and_methods():
    query, reference = QUERY[0].astype(np.float64), REFERENCE[0].astype(np.float64)
    for method in ("kdtree", "brute"):
        squared, index = nearest_numpy(query, reference, method)
        np.testing.assert_array_equal(squared, [0.0, 1.0, 2.25])
        np.testing.assert_array_equal(index[:2], [0, 0])
    assert nearest_numpy(query, reference, "brute")[1][2] == 0  # the tie: lowest index


@given(seed=st.integers(0, 10_000), n=st.integers(1, 200), k=st.integers(1, 200))
def test_kdtree_equals_brute_force(seed, n, k):
    query, reference = _quantised_clouds(seed, 1, n, k)
    kd_squared, kd_index = nearest_numpy(query[0], reference[0], "kdtree")
    brute_squared, _ = nearest_numpy(query[0], reference[0], "brute")
    np.testing.assert_allclose(kd_squared, brute_squared, rtol=1e-12, atol=1e-14)
    # The KD-tree's index may differ on a tie, never in distance.
    np.testing.assert_allclose(np.sum((reference[0][kd_index] - query[0]) ** 2, axis=-1), brute_squared,
                               rtol=1e-12, atol=1e-14)


def test_numpy_bad_input_is_named():
    with pytest.raises(ValueError, match=r"metrics: a must be a non-empty \[N, 3\] cloud"):
        nearest_numpy(np.zeros((4, 2)), np.zeros((4, 3)), where="metrics")
    with pytest.raises(ValueError, match="b contains non-finite"):
        nearest_numpy(np.zeros((4, 3)), np.full((2, 3), np.inf))
    with pytest.raises(ValueError, match="unknown nearest-neighbour method 'octree'"):
        nearest_numpy(np.zeros((4, 3)), np.zeros((4, 3)), "octree")
