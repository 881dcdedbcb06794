"""Nearest-neighbour search: the one index search of the project, in a TensorFlow and a NumPy form.

Shape legend: B batch, Q query points, R reference points, D coordinates per point (3 for clouds,
2 for pixels), c query points per chunk.

The search answers one question: for every query point, the index of the nearest reference point (squared
Euclidean distance, lowest index on ties). Callers that need distances or gradients gather the partner
points and recompute them (losses.chamfer, losses.kro): the index is piecewise constant, so that is the
exact gradient, and no ``[B, Q, R]`` tensor is kept for the backward pass.

* :func:`nearest_index` (TensorFlow, batched): searched on stop-gradient inputs, chunked over the query
  points so that memory stays O(B·c·R), optionally restricted to allowed (query, reference) pairs. Used in
  training (the Chamfer ``tf`` backend, compiled with XLA there; the KRO anchors) and by the rotation fit.
* :func:`nearest_numpy` (NumPy, float64, one cloud): exact, by a KD-tree (scipy's cKDTree) or by the dense
  brute force it is tested against. Used by evaluation (metrics, ICP), which works in float64 outside any
  TensorFlow graph; a different method (a tree), hence a separate function.

:func:`chunked_argmin` is the chunking engine of :func:`nearest_index`, open to any per-pair cost (the
distance-weighted 2D Chamfer of losses.image searches with it).
"""

import math

import numpy as np
import tensorflow as tf
from scipy.spatial import cKDTree

from geometry.checks import check_cloud

# Upper bound on the entries of one [B, c, R] cost block (chamfer-notes pitfall 5: GPU kernels fail on
# broadcasts above 2^31 elements; 2^23 entries = 32 MiB of float32 per block).
MAX_CHUNK_ENTRIES = 2**23
NUMPY_METHODS = ("kdtree", "brute")


def chunked_argmin(cost, queries, n_reference, max_entries: int = MAX_CHUNK_ENTRIES) -> tf.Tensor:
    """Index of the reference of least cost for every query, computed one chunk of queries at a time.

    Queries are taken in chunks of c = min(Q, max(1, max_entries // (B·R))), one chunk per ``tf.map_fn``
    iteration, so that one ``[B, c, R]`` cost block exists at a time. The last chunk is padded; its padded
    rows are dropped. When B, Q and R are static and one chunk holds every query, there is no loop (a
    ``while`` loop in a training step's graph changes how Grappler sums the step's other scalars, in the
    last bit).

    Args:
        cost: callable mapping one chunk of ``queries`` (the same structure, every tensor ``[B, c, ...]``) to
            float costs ``[B, c, R]``.
        queries: a tensor or a tuple of tensors ``[B, Q, ...]`` (points, masks, ...) chunked together along
            axis 1.
        n_reference: R, an int (static) or an int32 scalar tensor.
        max_entries: bound on B·c·R.

    Returns:
        int32 ``[B, Q]``: argmin over the R references (lowest index on ties).
    """
    first = tf.nest.flatten(queries)[0]
    static = (first.shape[0], first.shape[1], n_reference if isinstance(n_reference, int) else None)
    if None not in static and static[0] * static[1] * static[2] <= max_entries:  # one chunk: no loop
        return tf.argmin(cost(queries), axis=-1, output_type=tf.int32)
    batch, n = tf.shape(first)[0], tf.shape(first)[1]
    chunk = tf.minimum(n, tf.maximum(1, max_entries // (batch * n_reference)))
    n_chunks = (n + chunk - 1) // chunk

    def split(x):  # [B, Q, ...] -> [K, B, c, ...], every chunk holding c queries
        tail = [[0, 0]] * (x.shape.rank - 2)
        padded = tf.pad(x, [[0, 0], [0, n_chunks * chunk - n]] + tail)
        blocks = tf.reshape(padded, tf.concat([[batch, n_chunks, chunk], tf.shape(x)[2:]], axis=0))
        return tf.transpose(blocks, [1, 0, 2] + list(range(3, x.shape.rank + 1)))

    found = tf.map_fn(lambda part: tf.argmin(cost(part), axis=-1, output_type=tf.int32),
                      tf.nest.map_structure(split, queries), fn_output_signature=tf.int32)  # [K, B, c]
    return tf.reshape(tf.transpose(found, [1, 0, 2]), [batch, n_chunks * chunk])[:, :n]


def nearest_index(query, reference, allowed=None, max_entries: int = MAX_CHUNK_ENTRIES) -> tf.Tensor:
    """Index of the nearest reference point of every query point, searched without gradient.

    The ``[B, c, R]`` squared distances are summed coordinate by coordinate in difference form (a
    ``[B, c, R, D]`` tensor reduced over its last axis is several times slower, chamfer-notes pitfall 3).
    Plain graph code, XLA-compatible (losses.chamfer compiles it with XLA).

    Args:
        query: float ``[B, Q, D]``.
        reference: float ``[B, R, D]`` (same dtype and batch size), D static.
        allowed: optional bool ``[B, Q, R]``: only these (query, reference) pairs may be chosen.
        max_entries: bound on the entries of one distance block (see :func:`chunked_argmin`).

    Returns:
        int32 ``[B, Q]``, lowest index on ties; 0 where no reference point is allowed.
    """
    query, reference = tf.stop_gradient(query), tf.stop_gradient(reference)
    dims = query.shape[-1]
    if dims is None:
        raise ValueError(f"geometry.nearest: the last axis of the query points must be static, got {query.shape}")

    def squared_distances(points):  # [B, c, D] -> [B, c, R]
        d = tf.zeros([], points.dtype)
        for axis in range(dims):
            d += tf.square(points[:, :, tf.newaxis, axis] - reference[:, tf.newaxis, :, axis])
        return d

    n_reference = reference.shape[1] if reference.shape[1] is not None else tf.shape(reference)[1]
    if allowed is None:
        return chunked_argmin(squared_distances, query, n_reference, max_entries)

    def allowed_distances(part):
        points, ok = part
        d = squared_distances(points)
        return tf.where(ok, d, tf.fill(tf.shape(d), tf.constant(math.inf, d.dtype)))

    return chunked_argmin(allowed_distances, (query, allowed), n_reference, max_entries)


def nearest_numpy(query: np.ndarray, reference: np.ndarray, method: str = "kdtree",
                  where: str = "geometry.nearest") -> tuple[np.ndarray, np.ndarray]:
    """Squared distance to, and index of, the nearest reference point of every query point (float64).

    Args:
        query: float ``[Q, 3]``.  reference: float ``[R, 3]``.
        method: "kdtree" (scipy cKDTree, exact, fast) or "brute" (dense ``[Q, R]`` difference form, the
            reference the KD-tree is tested against).
        where: the caller, named in errors.

    Returns:
        (squared distances float64 ``[Q]``, indices int ``[Q]``).

    Raises:
        ValueError: a malformed or non-finite cloud, or an unknown method.
    """
    query, reference = check_cloud(query, where, "a"), check_cloud(reference, where, "b")
    if method == "kdtree":
        dist, index = cKDTree(reference).query(query, k=1)
        return dist * dist, index
    if method == "brute":
        diff = query[:, None, :] - reference[None, :, :]
        squared = np.sum(diff * diff, axis=-1)
        index = np.argmin(squared, axis=1)
        return squared[np.arange(len(query)), index], index
    raise ValueError(f"{where}: unknown nearest-neighbour method {method!r}; expected one of {NUMPY_METHODS}")
