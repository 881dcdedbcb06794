"""Keras layer builders with the baseline's tflearn defaults (baseline §3, §14).

The baseline builds its networks with tflearn, whose defaults are reproduced here:

* ``conv_2d``: 'same' padding, weights ``uniform_scaling`` = U(±sqrt(3 / fan_in)), i.e. Keras
  ``VarianceScaling(scale=1.0, mode="fan_in", distribution="uniform")``; zero biases.
* ``fully_connected``: weights ``truncated_normal(0, 0.02)``; zero biases; flattens a >2-D input
  in row-major (H, W, C) order, which is what ``keras.layers.Flatten`` does for channels-last.

Every baseline layer is declared with an L2 regulariser (``regularizer='L2'`` plus a per-layer
``weight_decay``), but tflearn only files those terms in a collection that the training script never
adds to a loss: the decay is inactive in the original training (baseline §3). The builders therefore
take the declared decay and attach it (so that it appears in ``model.losses``) only when
``weight_decay_on`` is True. tflearn's L2 is ``wd * tf.nn.l2_loss(W) = wd * sum(W**2) / 2``, which is
Keras ``L2(wd / 2)``; only the kernels are regularised (tflearn does not regularise biases).

A departure from tflearn's dense initialiser, ``dense_init="he"`` (``--dense_init he``), exists because the
baseline's truncated normal of standard deviation 0.02 shrinks the signal of every 128-wide dense layer:
it multiplies the RMS of its input by 0.02 · sqrt(fan_in), i.e. by 0.23 for fan_in 128. Behind the four
dense layers of the structure branch the image-dependent part of the initial cloud is a few percent of
what the encoder sees, and the gradient reaching the encoder is scaled down by the same factors, so the
first updates fit the biases of the last layers (the mean shape) long before the cloud starts to depend on
the image (README, "Why training collapses"). "he" draws every ReLU dense layer He-normal (variance
2 / fan_in, which keeps the RMS of ReLU activations through the layer) and the linear heads (xyz, rgb,
pose) Glorot-uniform (Keras's default); the convolutions keep tflearn's initialiser either way.

Shape legend: B batch, H = W image size, C channels.
"""

import keras

# Declared L2 weight decays of the baseline (baseline §3 tables): convolutions 1e-5, dense 1e-3.
CONV_WEIGHT_DECAY = 1e-5
DENSE_WEIGHT_DECAY = 1e-3

CONV_INITIALISER = {"class_name": "VarianceScaling",
                    "config": {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}}
DENSE_STDDEV = 0.02
#: Dense initialisers (--dense_init): the baseline's tflearn truncated normal (0.02), or "he" (module docstring).
DENSE_INITS = ("tflearn", "he")


def _l2(declared_decay: float, weight_decay_on: bool):
    """The tflearn L2 regulariser ``wd * sum(W**2) / 2`` when enabled, else None."""
    if not weight_decay_on:
        return None
    return keras.regularizers.L2(declared_decay / 2.0)


def conv(filters: int, kernel_size: int, name: str, weight_decay_on: bool = False,
         declared_decay: float = CONV_WEIGHT_DECAY) -> keras.layers.Conv2D:
    """A stride-2 'same' ReLU convolution with tflearn's initialisers (baseline §3, §14).

    Args:
        filters: output channels.
        kernel_size: square kernel side (3 or 5 in the baseline).
        name: layer name (baseline table row, e.g. ``"s1"``).
        weight_decay_on: attach the declared L2 term to ``model.losses``.
        declared_decay: the baseline's declared decay for this layer.

    Returns:
        A layer mapping float32 ``[B, H, W, C]`` to ``[B, ceil(H/2), ceil(W/2), filters]``.
    """
    return keras.layers.Conv2D(
        filters, kernel_size, strides=2, padding="same", activation="relu",
        kernel_initializer=keras.initializers.get(CONV_INITIALISER),
        bias_initializer="zeros",
        kernel_regularizer=_l2(declared_decay, weight_decay_on), name=name)


def dense_initialiser(init: str, activation: str | None) -> keras.initializers.Initializer:
    """The kernel initialiser of a dense layer: tflearn's truncated normal (0, 0.02), or with ``init="he"``
    He-normal for a ReLU layer and Glorot-uniform for a linear one (module docstring)."""
    if init not in DENSE_INITS:
        raise ValueError(f"dense initialiser must be one of {DENSE_INITS}, got {init!r}")
    if init == "tflearn":
        return keras.initializers.TruncatedNormal(mean=0.0, stddev=DENSE_STDDEV)
    return keras.initializers.HeNormal() if activation == "relu" else keras.initializers.GlorotUniform()


def dense(units: int, name: str, activation: str | None = "relu", weight_decay_on: bool = False,
          declared_decay: float = DENSE_WEIGHT_DECAY, init: str = "tflearn") -> keras.layers.Dense:
    """A fully connected layer with tflearn's initialisers (baseline §3, §14), or the "he" departure.

    Args:
        units: output width.
        name: layer name (baseline table row, e.g. ``"s5"``).
        activation: "relu" or None (linear).
        weight_decay_on: attach the declared L2 term to ``model.losses``.
        declared_decay: the baseline's declared decay for this layer.
        init: one of DENSE_INITS (`dense_initialiser`).

    Returns:
        A layer mapping float32 ``[B, D]`` to ``[B, units]``.
    """
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=dense_initialiser(init, activation),
        bias_initializer="zeros",
        kernel_regularizer=_l2(declared_decay, weight_decay_on), name=name)


# The four stride-2 convolutions shared by the structure branch (§3, s1-s4) and the pose net (§4, p1-p4):
# (filters, kernel side) per layer.
ENCODER_CONVS = ((32, 3), (64, 3), (128, 3), (256, 5))


def encoder_head(x, prefix: str, bottleneck: int, weight_decay_on: bool = False, dense_init: str = "tflearn"):
    """The baseline's image encoder: `ENCODER_CONVS`, flatten, dense ``bottleneck`` (ReLU).

    Layers are named ``<prefix>1`` .. ``<prefix>5`` after the baseline's table rows (§3 s1-s5, §4).

    Args:
        x: Keras tensor float32 ``[B, H, W, 3]``.
        prefix: "s" for the structure branch, "p" for the pose net.
        bottleneck: width of the dense layer (``--bottleneck``).
        weight_decay_on: attach the declared L2 terms to ``model.losses``.
        dense_init: initialiser of the dense layer (DENSE_INITS).

    Returns:
        Keras tensor float32 ``[B, bottleneck]``.
    """
    for i, (filters, size) in enumerate(ENCODER_CONVS, start=1):
        x = conv(filters, size, f"{prefix}{i}", weight_decay_on)(x)
    x = keras.layers.Flatten(name=f"{prefix}_flat")(x)
    return dense(bottleneck, f"{prefix}{len(ENCODER_CONVS) + 1}", weight_decay_on=weight_decay_on,
                 init=dense_init)(x)
