"""Pose network ``pose_net`` of the baseline (baseline §4).

Shape legend: B batch, H = W image size (64 in the baseline).

Four stride-2 convolutions (3×3/32, 3×3/64, 3×3/128, 5×5/256), dense ``bottleneck``, 128, 128, a linear
dense 2 and ``π·tanh``: pose = (azimuth, elevation) in radians, each in (−π, π). The elevation is not
restricted to the sampled [−20°, 40°] range (§4). Weights are shared across calls. Parameter count at
the defaults: 1,470,402.
"""

import math

import keras

from model.layers import dense, encoder_head


def build_pose_net(image_size: int = 64, bottleneck: int = 128,
                   weight_decay: bool = False, dense_init: str = "tflearn") -> keras.Model:
    """Build the pose net (baseline §4) with tflearn's initialisers (§14) or the "he" departure.

    Args:
        image_size: side H = W of the square input image.
        bottleneck: width of the first dense layer (``--bottleneck``).
        weight_decay: put the declared per-layer L2 terms (§3) into ``model.losses`` (inactive in the
            baseline, hence False by default).
        dense_init: initialiser of the dense layers (model.layers.DENSE_INITS; "tflearn" is the baseline's).

    Returns:
        A Keras model mapping images float32 ``[B, H, W, 3]`` to ``{"pose": [B, 2]}`` =
        (azimuth, elevation) in radians, each in (−π, π).
    """
    wd = weight_decay
    image = keras.Input((image_size, image_size, 3), name="image")
    x = encoder_head(image, "p", bottleneck, wd, dense_init)
    x = dense(128, "p6", weight_decay_on=wd, init=dense_init)(x)
    x = dense(128, "p7", weight_decay_on=wd, init=dense_init)(x)
    x = dense(2, "p8", activation=None, weight_decay_on=wd, init=dense_init)(x)
    pose = math.pi * keras.ops.tanh(x)
    return keras.Model(image, {"pose": pose}, name="pose_net")
