"""Cycle-consistency and symmetry losses (baseline §7.4–§7.6; SSL main.py, multiple_mask_main.py).

Shape legend: B batch, N points, P = N_PROJ renders per step (1 at the predicted pose + P − 1 random).
Clouds are float ``[B, N, 3]``; poses float ``[B, ·, 2]`` = (azimuth, elevation) in radians.
``CD`` is the baseline's Chamfer distance ``losses.chamfer.chamfer_loss`` (squared distances, mean per
direction, sum of both, mean over the batch, §7.4).

Baseline quirks reproduced by default (each with its switch):

* ``geometric_cycle_loss(mode="init_model")`` loops k = 0..P−1, so the reconstruction of the last
  render, ``pcl_outs[P]``, is never compared (off by one, §7.4); ``include_last=True`` adds it.
* ``pose_cycle_loss`` is a plain L1 in radians with no angle wrap-around (§7.5); ``wrap=True``
  compares the differences wrapped to [−π, π].
* ``symmetry_loss``: main.py and multiple_mask_main.py define it differently (§7.6); ``kind`` selects.
"""

import math

import tensorflow as tf

from losses.chamfer import chamfer_loss

CYCLE_MODES = ("init_model", "adj_model")  # geometric_cycle_loss modes (--_3d_loss_type)
SYMMETRY_KINDS = ("main", "multi_mask")  # symmetry_loss kinds (--symmetry_kind)


def geometric_cycle_loss(pcl_outs: list, mode: str = "init_model", include_last: bool = False,
                         backend: str = "auto") -> tf.Tensor:
    """Geometric cycle consistency L_3D (baseline §7.4).

    ``init_model``: Σ_{k=0}^{P−1} CD(pcl_outs[k], pcl_outs[0]) (+ CD(pcl_outs[P], pcl_outs[0]) when
    ``include_last``). The k = 0 term CD(xyz0, xyz0) is identically zero in value and gradient (every
    point's nearest neighbour is itself), so it is not computed.
    ``adj_model``: Σ_{k=0}^{P−1} CD(pcl_outs[k], pcl_outs[k+1]); it already reaches pcl_outs[P], so
    ``include_last`` does not apply. No stop-gradient: both arguments receive gradients, as in SSL.

    Args:
        pcl_outs: P + 1 float ``[B, N, 3]`` clouds: pcl_outs[0] = reconstruction of the input image,
            pcl_outs[k+1] = reconstruction of the render at pose k (k = 0 the predicted pose).
        mode: "init_model" (baseline default) or "adj_model".
        include_last: init_model only: also compare the last render's reconstruction (the fix).
        backend: Chamfer backend, passed to ``losses.chamfer.chamfer_loss``.

    Returns:
        Scalar loss.
    """
    n_proj = len(pcl_outs) - 1
    if n_proj < 1:
        raise ValueError(f"losses.cycle.geometric_cycle_loss: need P + 1 >= 2 clouds, got {len(pcl_outs)}")
    if mode == "init_model":
        last = n_proj + 1 if include_last else n_proj
        pairs = [(pcl_outs[k], pcl_outs[0]) for k in range(1, last)]
    elif mode == "adj_model":
        if include_last:
            raise ValueError("losses.cycle.geometric_cycle_loss: include_last applies to init_model only; "
                             "adj_model already compares pcl_outs[P]")
        pairs = [(pcl_outs[k], pcl_outs[k + 1]) for k in range(n_proj)]
    else:
        raise ValueError(f"losses.cycle.geometric_cycle_loss: unknown mode {mode!r} "
                         "(expected init_model or adj_model)")
    if not pairs:                                   # init_model with P = 1: only the zero k = 0 term
        return tf.zeros([], pcl_outs[0].dtype)
    return tf.add_n([chamfer_loss(a, b, backend=backend) for a, b in pairs])


def wrap_angle(angle: tf.Tensor) -> tf.Tensor:
    """Wrap radians to [−π, π] (``angle − 2π·round(angle / 2π)``); gradient 1 almost everywhere."""
    return angle - 2.0 * math.pi * tf.stop_gradient(tf.round(angle / (2.0 * math.pi)))


def pose_cycle_loss(pose_sampled: tf.Tensor, pose_pred: tf.Tensor, wrap: bool = False) -> tf.Tensor:
    """Pose cycle consistency L_pose (baseline §7.5).

    ``mean_{b,k,c} |pose_sampled − pose_pred|`` in radians. With ``wrap`` the difference is first wrapped
    to [−π, π] (both azimuth and elevation), so 179° vs −179° costs 2°, not 358°.

    Args:
        pose_sampled: float ``[B, P−1, 2]`` random poses the renders were made at (§7.9).
        pose_pred: float ``[B, P−1, 2]`` pose net outputs on those renders (pose_out[2..P]).
        wrap: compare angles modulo 2π (the fix; the baseline does not).

    Returns:
        Scalar loss.
    """
    diff = pose_sampled - pose_pred
    if wrap:
        diff = wrap_angle(diff)
    return tf.reduce_mean(tf.abs(diff))


def symmetry_loss(xyz: tf.Tensor, kind: str = "main", backend: str = "auto") -> tf.Tensor:
    """Mirror-symmetry loss on the input image's cloud (baseline §7.6, ``--symmetry_loss``).

    ``main`` (main.py): with m = (x, |y|, z), P⁺ = 1[y > 0]·m and P⁻ = 1[y < 0]·m (unselected points
    collapse to the origin), loss = CD(P⁺, P⁻): symmetry across the plane y = 0.
    ``multi_mask`` (multiple_mask_main.py): mean |xyz − (x, −y, −z)| = mean of (0, 2|y|, 2|z|), which
    only pulls y and z toward 0.

    Args:
        xyz: float ``[B, N, 3]`` predicted cloud.
        kind: "main" or "multi_mask".
        backend: Chamfer backend for ``main``.

    Returns:
        Scalar loss.
    """
    if kind == "main":
        y = xyz[..., 1:2]
        folded = tf.concat([xyz[..., :1], tf.abs(y), xyz[..., 2:]], axis=-1)
        upper = tf.cast(y > 0, xyz.dtype) * folded
        lower = tf.cast(y < 0, xyz.dtype) * folded
        return chamfer_loss(upper, lower, backend=backend)
    if kind == "multi_mask":
        mirrored = xyz * tf.constant([1.0, -1.0, -1.0], xyz.dtype)
        return tf.reduce_mean(tf.abs(xyz - mirrored))
    raise ValueError(f"losses.cycle.symmetry_loss: unknown kind {kind!r} (expected main or multi_mask)")
