"""Reconstruction network ``recon_net_tiny_rgb_skipconn`` of the baseline (baseline §3).

Shape legend: B batch, H = W image size (64 in the baseline), N points (1024).

Two branches read the same image:

* structure branch: 4 stride-2 convolutions (3×3/32, 3×3/64, 3×3/128, 5×5/256) and 4 dense layers
  (``bottleneck``, 128, 128 = ``x1``, 3N linear) → xyz ``[B, N, 3]``, unbounded;
* colour branch: 2 stride-2 convolutions (3×3/32, 3×3/64), dense ``bottleneck``, 128, 128, then the skip
  connection ``concat([x1, ·])``, dense 128 and 3N → sigmoid → rgb ``[B, N, 3]`` in (0, 1).

Because of the skip the colour depends on the structure branch, never the reverse. ``enc_feat`` =
concat(structure bottleneck, colour bottleneck) ``[B, 2·bottleneck]`` is the embedding the baseline's
nearest-neighbour lists were presumably built from (baseline §2.7). Calling the model on several images
shares its weights (the baseline's ``reuse=True``, §3). Parameter count at the defaults: 4,445,312.
"""

import keras

from model import layers


def build_recon_net(image_size: int = 64, n_points: int = 1024, bottleneck: int = 128,
                    weight_decay: bool = False, dense_init: str = "tflearn") -> keras.Model:
    """Build the reconstruction net (baseline §3) with tflearn's initialisers (§14) or the "he" departure.

    Args:
        image_size: side H = W of the square input image.
        n_points: number N of predicted points.
        bottleneck: width of the first dense layer of each branch (``--bottleneck``).
        weight_decay: put the declared per-layer L2 terms (§3) into ``model.losses``; the baseline
            declares them but never applies them, hence False by default.
        dense_init: initialiser of the dense layers (model.layers.DENSE_INITS; "tflearn" is the baseline's).

    Returns:
        A Keras model mapping images float32 ``[B, H, W, 3]`` in [0, 1] to a dict
        ``{"xyz": [B, N, 3], "rgb": [B, N, 3] in (0, 1), "enc_feat": [B, 2·bottleneck]}``.
    """
    wd = weight_decay
    image = keras.Input((image_size, image_size, 3), name="image")

    def dense(units, name, activation="relu"):
        return layers.dense(units, name, activation=activation, weight_decay_on=wd, init=dense_init)

    enc_pcl = layers.encoder_head(image, "s", bottleneck, wd, dense_init)
    x = dense(128, "s6")(enc_pcl)
    x1 = dense(128, "s7")(x)
    xyz = dense(3 * n_points, "s8", activation=None)(x1)
    xyz = keras.layers.Reshape((n_points, 3), name="xyz")(xyz)

    y = image
    for name, filters in (("c1", 32), ("c2", 64)):
        y = layers.conv(filters, 3, name, wd)(y)
    enc_col = dense(bottleneck, "c3")(keras.layers.Flatten(name="c_flat")(y))
    y = dense(128, "c4")(enc_col)
    y = dense(128, "c5")(y)
    y = keras.layers.Concatenate(name="skip")([x1, y])
    y = dense(128, "c6")(y)
    y = dense(3 * n_points, "c7", activation=None)(y)
    rgb = keras.layers.Activation("sigmoid", name="rgb")(keras.layers.Reshape((n_points, 3))(y))

    enc_feat = keras.layers.Concatenate(name="enc_feat")([enc_pcl, enc_col])
    return keras.Model(image, {"xyz": xyz, "rgb": rgb, "enc_feat": enc_feat}, name="recon_net")
