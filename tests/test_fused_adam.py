"""Tests of model.optimizer.FusedAdam (--adam fused): the TF1 AdamOptimizer update of baseline §7.8 in one
ResourceApplyAdam kernel per variable, equal to Keras Adam, with Keras Adam's variables (checkpoints written
with either update restore into the other: tests/test_trainer.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.config import TrainConfig
from model.optimizer import ADAM_EPSILON, FusedAdam
from model.trainer import Trainer

LR, BETA1, BETA2 = 2.0**-10, 0.5, 0.999  # LR exact in float32, the dtype of Keras' learning-rate variable


def _gradients(rng, shapes, steps):
    """Gradients of magnitudes 1e-10 ... 10, so that sqrt(v) falls below, near and above epsilon = 1e-8."""
    return [[rng.normal(size=shape) * 10.0 ** rng.integers(-10, 2, size=shape) for shape in shapes]
            for _ in range(steps)]


def _run(optimizer_class, initial, gradients, dtype):
    variables = [tf.Variable(x.astype(dtype)) for x in initial]
    optimizer = optimizer_class(learning_rate=LR, beta_1=BETA1, beta_2=BETA2, epsilon=ADAM_EPSILON)
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))
    for grads in gradients:
        apply([tf.constant(g.astype(dtype)) for g in grads])
    return [v.numpy() for v in variables], optimizer


def _tf1_adam(initial, gradients, epsilon_form="tf1"):
    """float64 numpy reference of TF1's AdamOptimizer: lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t),
    var −= lr_t·m/(sqrt(v) + ε); "paper" puts ε beside the bias-corrected sqrt(v̂) instead."""
    variables = [x.astype(np.float64).copy() for x in initial]
    m = [np.zeros_like(x) for x in variables]
    v = [np.zeros_like(x) for x in variables]
    for t, grads in enumerate(gradients, start=1):
        lr_t = LR * np.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        for k, g in enumerate(grads):
            m[k] = BETA1 * m[k] + (1 - BETA1) * g
            v[k] = BETA2 * v[k] + (1 - BETA2) * g * g
            eps = ADAM_EPSILON if epsilon_form == "tf1" else ADAM_EPSILON * np.sqrt(1 - BETA2**t)
            variables[k] -= lr_t * m[k] / (np.sqrt(v[k]) + eps)
    return variables


def test_fused_adam_is_tf1_adam_and_keras_adam():
    rng = np.random.default_rng(0)
    shapes = [(7, 5), (3,), (2, 2, 2)]
    initial = [rng.normal(size=shape) for shape in shapes]
    gradients = _gradients(rng, shapes, 30)
    tf1 = _tf1_adam(initial, gradients)
    paper = _tf1_adam(initial, gradients, epsilon_form="paper")
    fused, optimizer = _run(FusedAdam, initial, gradients, np.float64)
    assert int(optimizer.iterations.numpy()) == 30
    for f, ref in zip(fused, tf1):
        np.testing.assert_allclose(f, ref, rtol=0, atol=1e-12)
    # In float32 (the nets' dtype) Keras 3's Adam computes the same update (in float64 it does not quite:
    # it rounds β2 and ε to float32 first).
    fused, _ = _run(FusedAdam, initial, gradients, np.float32)
    keras_adam, _ = _run(keras.optimizers.Adam, initial, gradients, np.float32)
    for f, k, ref in zip(fused, keras_adam, tf1):
        np.testing.assert_allclose(f, ref, rtol=0, atol=2e-6)
        np.testing.assert_allclose(k, ref, rtol=0, atol=2e-6)
    # the tolerance tells the epsilon placements apart
    assert max(np.abs(r - o).max() for r, o in zip(tf1, paper)) > 100 * 2e-6


def test_fused_adam_has_keras_adams_variables():
    rng = np.random.default_rng(1)
    initial = [rng.normal(size=(4, 3)), rng.normal(size=(3,))]
    _, fused = _run(FusedAdam, initial, _gradients(rng, [(4, 3), (3,)], 2), np.float32)
    _, plain = _run(keras.optimizers.Adam, initial, _gradients(rng, [(4, 3), (3,)], 2), np.float32)
    assert [v.path.split("/", 1)[1] for v in fused.variables] == [v.path.split("/", 1)[1] for v in plain.variables]
    assert [v.shape for v in fused.variables] == [v.shape for v in plain.variables]


def test_default_trainer_uses_the_fused_update():
    trainer = Trainer(TrainConfig(n_points=64), 1)
    assert isinstance(trainer.optim_recon, FusedAdam) and isinstance(trainer.optim_pose, FusedAdam)
    keras_trainer = Trainer(TrainConfig(n_points=64, adam="keras"), 1)
    assert type(keras_trainer.optim_recon) is keras.optimizers.Adam
    with pytest.raises(ValueError, match="adam must be one of"):
        TrainConfig(adam="sgd")
