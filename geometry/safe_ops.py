"""Element-wise operations with finite values and finite gradients where the plain ones give NaN or Inf.

Shapes: any; ``axis`` is reduced.
"""

import tensorflow as tf


def safe_norm(v: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """Euclidean norm over ``axis`` with a zero (not NaN) gradient at the zero vector."""
    sq = tf.reduce_sum(tf.square(v), axis=axis)
    positive = sq > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, sq, tf.ones_like(sq))), tf.zeros_like(sq))


def safe_divide(num: tf.Tensor, den: tf.Tensor) -> tf.Tensor:
    """num / den where den > 0, else 0; finite gradients everywhere."""
    positive = den > 0
    return tf.where(positive, num / tf.where(positive, den, tf.ones_like(den)), tf.zeros_like(num))
