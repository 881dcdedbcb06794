"""The baseline's Adam (§7.8, TF1's tf.train.AdamOptimizer) and its one-kernel update.

Both networks have their own Adam with the same learning rate and beta_1; beta_2 and epsilon are TF1's
defaults. --adam picks how the update runs: "fused" (:class:`FusedAdam`) or "keras"; the arithmetic and the
checkpoint layout are the same.
"""

import keras
import tensorflow as tf

#: Adam epsilon of the baseline (TF1 default, §7.8; Keras' default is 1e-7).
ADAM_EPSILON = 1e-8
#: Adam beta_2 of the baseline (TF1 default, §7.8).
ADAM_BETA2 = 0.999
#: Updates of make_optimizer (--adam).
ADAM_UPDATES = ("fused", "keras")


class FusedAdam(keras.optimizers.Adam):
    """Keras Adam whose update of each variable is one kernel, TensorFlow's ``ResourceApplyAdam``.

    That is the op TF1's ``tf.train.AdamOptimizer`` (the baseline's, §7.8) ran:
    ``lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t)``, ``m += (g − m)(1 − β1)``, ``v += (g² − v)(1 − β2)``,
    ``var −= lr_t·m/(sqrt(v) + ε)``, ε outside the square root and not bias-corrected. Keras 3's Adam
    (keras.optimizers.Adam.update_step, checked for keras 3.15) computes exactly this, with the same update
    order, but as about twenty element-wise ops per variable; here it is one (Keras also rounds β1, β2 and ε
    to float32 before casting them to a float64 variable's dtype; here they are exact). β^t comes from the step
    counter (β^t = pow(β, t), as Keras), not from TF1's running products β1_power·β1 (a difference of a
    few float32 ulps in β^t after many steps).

    lr_t is computed once per step (in float64, then rounded to each variable's dtype; Keras computes it per
    variable in the variable's dtype, which can differ in the last bit) and handed to every variable's update
    as its learning rate, with β1_power = β2_power = 0 so that the kernel's own correction factor is
    exactly 1. The variables (iterations, learning rate, one momentum and one velocity per variable) are
    Keras Adam's, so checkpoints of either restore into the other.
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        step = tf.cast(self.iterations + 1, tf.float64)
        beta_1_power = tf.pow(tf.constant(self.beta_1, tf.float64), step)
        beta_2_power = tf.pow(tf.constant(self.beta_2, tf.float64), step)
        lr_t = tf.cast(learning_rate, tf.float64) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        super()._backend_update_step(grads, trainable_variables, lr_t)

    def update_step(self, gradient, variable, learning_rate):
        """One ResourceApplyAdam on ``variable`` (a tf.Variable, or a replica's component of one)."""
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        zero = tf.zeros([], dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=zero, beta2_power=zero, lr=tf.cast(learning_rate, dtype),
            beta1=tf.constant(self.beta_1, dtype), beta2=tf.constant(self.beta_2, dtype),
            epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)


def make_optimizer(lr: float, beta1: float, update: str, name: str) -> keras.optimizers.Adam:
    """Adam(lr, beta_1, beta_2 = 0.999, epsilon = 1e-8) of baseline §7.8, no schedule, no clipping.

    Args:
        lr: learning rate (--lr).
        beta1: Adam beta_1 (--beta1).
        update: one of ADAM_UPDATES: "fused" (:class:`FusedAdam`, one kernel per variable) or "keras"
            (keras.optimizers.Adam); both compute the same update and share one checkpoint layout.
        name: the optimiser's name.
    """
    if update not in ADAM_UPDATES:
        raise ValueError(f"Adam update must be one of {ADAM_UPDATES}, got {update!r}")
    adam = {"fused": FusedAdam, "keras": keras.optimizers.Adam}[update]
    return adam(learning_rate=lr, beta_1=beta1, beta_2=ADAM_BETA2, epsilon=ADAM_EPSILON, name=name)
