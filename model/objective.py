"""Forward graph of one training step (baseline §6), random poses (§7.9) and the losses of §7 (§7.8 sums).

Shape legend: B batch (per device), N points, H = W image size, P = N_PROJ projections (index 0 at the
pose net's prediction or the GT pose, 1..P−1 at random poses). Poses are (azimuth, elevation) in radians.
With nearest-neighbour data (``--knn_list``, data/neighbours.py) a batch also holds ``image_2``/``mask_2``,
a neighbour image of another model and its mask (baseline §6, multiple_mask_main.py).

The P renders and the P re-reconstructions are computed as one batch of P·B (projection-major: row
k·B + b is projection k of sample b); the networks have no batch-dependent layers, so this is the same
computation as the baseline's loop over k, only faster. Nothing is stop-gradiented (§6): the two nets
are kept apart only by the variable lists of their optimisers (model/trainer.py).
"""

import math

import tensorflow as tf

from geometry import camera
from losses import cycle, image, supervision
from losses.kro import KroConfig
from model.projection import render, silhouette

#: Azimuth range of the random poses, radians (baseline §7.9: U[−π, π)).
AZIMUTH_RANGE = (-math.pi, math.pi)
#: Elevation range of the random poses, radians (baseline §7.9: U[−20°, 40°)), the renders' range too.
ELEVATION_RANGE = tuple(math.radians(deg) for deg in camera.ELEVATION_RANGE_DEG)

#: Every loss the step returns, in log order. The first eight are the baseline's logged values (§8); the
#: three ``*_2`` terms are the nearest-neighbour ones of multiple_mask_main.py (§7.7; 0 without neighbour
#: data), ``loss_mask_2`` being its ninth logged value.
LOSS_NAMES = ("loss_total", "loss_ae", "loss_mask", "chamfer2d_fwd", "chamfer2d_bwd", "loss_3d",
              "loss_pose", "loss_symm", "loss_kro", "loss_gt", "loss_wd", "recon_loss", "pose_loss",
              "loss_mask_2", "chamfer2d_fwd_2", "chamfer2d_bwd_2")

def random_poses(generator: tf.random.Generator, batch_size: int, count: int) -> tf.Tensor:
    """Random poses for the cycle losses (baseline §7.9), drawn from a seeded generator.

    Args:
        generator: the run's seeded generator (its state is checkpointed).
        batch_size: B.
        count: P − 1 poses per sample.

    Returns:
        float32 ``[B, count, 2]``: azimuth in [−π, π), elevation in [−20°, 40°) (radians).
    """
    r = generator.uniform([batch_size, count, 2], dtype=tf.float32)
    lows = tf.constant([AZIMUTH_RANGE[0], ELEVATION_RANGE[0]], tf.float32)
    spans = tf.constant([AZIMUTH_RANGE[1] - AZIMUTH_RANGE[0], ELEVATION_RANGE[1] - ELEVATION_RANGE[0]],
                        tf.float32)
    return lows + spans * r


def _fold(x: tf.Tensor) -> tf.Tensor:
    """``[P, B, ...]`` → ``[P·B, ...]``."""
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


def _unfold(x: tf.Tensor, n_proj: int) -> tf.Tensor:
    """``[P·B, ...]`` → ``[P, B, ...]``."""
    return tf.reshape(x, tf.concat([[n_proj, -1], tf.shape(x)[1:]], axis=0))


def forward(recon_net, pose_net, images: tf.Tensor, poses_random: tf.Tensor, pose_gt: tf.Tensor | None,
            *, image_size: int, projection: str, sigma_sq: float, images_2: tf.Tensor | None = None) -> dict:
    """The forward graph of one step (baseline §6).

    Args:
        recon_net: model/recon_net.py model.
        pose_net: model/pose_net.py model.
        images: float32 ``[B, H, W, 3]`` input images in [0, 1].
        poses_random: float32 ``[B, P−1, 2]`` random poses (§7.9).
        pose_gt: float32 ``[B, 2]`` GT poses to render projection 0 at (``--use_gt_pose``), or None to
            use the pose net's prediction.
        image_size: H = W.
        projection: "auto", "fused", "fast" or "faithful" (model/projection.py).
        sigma_sq: silhouette variance in px² (§5.3).
        images_2: float32 ``[B, H, W, 3]`` a nearest-neighbour image of each input (another model,
            multiple_mask_main.py), or None.

    Returns:
        dict: ``xyz`` list of P + 1 ``[B, N, 3]`` (pcl_out: 0 = input image's cloud, k+1 = cloud of
        render k); ``rgb0`` ``[B, N, 3]``; ``poses`` ``[B, P, 2]`` the poses rendered at;
        ``pose_out`` ``[B, P, 2]`` the pose net on render k (pose_out[k+1] of the baseline);
        ``images`` ``[P, B, H, W, 3]`` and ``masks`` ``[P, B, H, W]`` the renders. With ``images_2``
        also ``pose_2`` ``[B, 2]`` = pose_net(images_2) and ``mask_out_2`` ``[B, H, W]``, the silhouette
        of xyz0 (the INPUT image's cloud) seen from that pose (§6).
    """
    out0 = recon_net(images, training=True)
    xyz0, rgb0 = out0["xyz"], out0["rgb"]
    pose0 = pose_net(images, training=True)["pose"] if pose_gt is None else pose_gt
    poses = tf.concat([pose0[:, None, :], poses_random], axis=1)
    n_proj = poses.shape[1]

    per_projection = lambda x: _fold(tf.tile(x[None], [n_proj, 1, 1, 1]))  # noqa: E731  [P·B, N, 3]
    rendered = render(per_projection(xyz0), per_projection(rgb0), _fold(tf.transpose(poses, [1, 0, 2])),
                      image_size=image_size, method=projection, sigma_sq=sigma_sq)
    recon_back = recon_net(rendered["image"], training=True)["xyz"]
    pose_back = pose_net(rendered["image"], training=True)["pose"]
    out = {
        "xyz": [xyz0] + tf.unstack(_unfold(recon_back, n_proj)),
        "rgb0": rgb0,
        "poses": poses,
        "pose_out": tf.transpose(_unfold(pose_back, n_proj), [1, 0, 2]),
        "images": _unfold(rendered["image"], n_proj),
        "masks": _unfold(rendered["mask"], n_proj),
    }
    if images_2 is not None:
        out["pose_2"] = pose_net(images_2, training=True)["pose"]
        out["mask_out_2"] = silhouette(xyz0, out["pose_2"], image_size, projection, sigma_sq)
    return out


def _kro_term(kro_config: KroConfig, out: dict, gt: tf.Tensor | None, k: tf.Tensor, kro_seed: tf.Tensor,
              include_last_render: bool) -> tf.Tensor:
    """The study's KRO loss (mission.md; baseline §11.1), variant and options of ``kro_config``.

    Against the GT cloud when one is given (``--use_gt_pcl``): KRO(gt, xyz0). Otherwise the first
    reconstruction is the pseudo ground truth, as in the study's L_gcc: Σ_i KRO(xyz0, pcl_out[i]) over
    i = 1..P−1 (and P with ``include_last_render``), the re-reconstructions that init_model compares with
    xyz0; under adj_model too the reference stays the first reconstruction.
    """
    xyz = out["xyz"]
    if gt is not None:
        return kro_config.loss(gt, xyz[0], k, kro_seed)
    last = len(xyz) if include_last_render else len(xyz) - 1
    return tf.add_n([kro_config.loss(xyz[0], xyz[i], k, kro_seed) for i in range(1, last)])


def optimised_terms(config) -> dict[str, tuple[str, ...]]:
    """The logged losses that enter each optimised sum under ``config`` (as :func:`compute_losses` adds
    them, §7.8): ``{"recon_loss": (...), "pose_loss": (...)}``; the weight-decay terms, which are no logged
    loss of their own, are left out."""
    recon = ["loss_ae", "loss_3d", "loss_mask", "chamfer2d_fwd", "chamfer2d_bwd"]
    for on, names in ((config.symmetry_loss, ["loss_symm"]), (config.kro.enabled, ["loss_kro"]),
                      (config.use_gt_pcl, ["loss_gt"]),
                      (config.use_mult_proj, ["loss_mask_2", "chamfer2d_fwd_2", "chamfer2d_bwd_2"])):
        recon += names if on else []
    return {"recon_loss": tuple(recon), "pose_loss": ("loss_ae", "loss_pose", "loss_mask")}


def compute_losses(config, batch: dict, out: dict, k: tf.Tensor, kro_seed: tf.Tensor, wd_recon: tf.Tensor,
                   wd_pose: tf.Tensor) -> dict:
    """Every loss of baseline §7 and the two §7.8 sums.

    Args:
        config: model.config.TrainConfig.
        batch: ``image`` float32 ``[B, H, W, 3]``, ``mask`` ``[B, H, W]``, with ``use_gt_pcl`` the
            GT cloud ``gt_<gt_type>`` ``[B, M, 3]`` and with ``neighbours`` the neighbour's mask
            ``mask_2`` ``[B, H, W]``.
        out: the result of :func:`forward`.
        k: int32 scalar, the KRO partition count drawn for this step.
        kro_seed: int ``[2]`` stateless seed of the random_partition variant's cuts for this step.
        wd_recon, wd_pose: float32 scalars, the declared L2 terms of each net (0 unless weight decay).

    Returns:
        dict over :data:`LOSS_NAMES` of float32 scalars. ``recon_loss`` trains the recon net,
        ``pose_loss`` the pose net, ``loss_total`` is the baseline's logged total (§7.8);
        ``loss_symm`` is computed even when unused, as the baseline logs it (§8); so are the
        nearest-neighbour terms whenever ``neighbours``, entering ``recon_loss`` only with
        ``use_mult_proj`` (§7.7).
    """
    c = config
    zero = tf.zeros([], tf.float32)
    img_pred, mask_pred = out["images"][0], out["masks"][0]
    l_img = image.image_loss(batch["image"], img_pred)
    l_mask = image.mask_loss(batch["mask"], mask_pred, kind=c.mask_loss)
    l_fwd, l_bwd = (image.affinity_loss(batch["mask"], mask_pred, form=c.affinity_form)
                    if c.affinity_loss else (zero, zero))
    l_3d = cycle.geometric_cycle_loss(out["xyz"], mode=c.cycle_mode, include_last=c.include_last_render,
                                      backend=c.chamfer_backend)
    l_pose = cycle.pose_cycle_loss(out["poses"][:, 1:], out["pose_out"][:, 1:], wrap=c.pose_wrap)
    l_symm = cycle.symmetry_loss(out["xyz"][0], kind=c.symmetry_kind, backend=c.chamfer_backend)
    gt = batch[c.gt_feature] if c.use_gt_pcl else None
    l_gt = supervision.gt_loss(out["xyz"][0], gt, backend=c.chamfer_backend) if gt is not None else zero
    l_kro = _kro_term(c.kro, out, gt, k, kro_seed, c.include_last_render) if c.kro.enabled else zero
    nn = (image.neighbour_mask_loss(batch["mask_2"], out["mask_out_2"], kind=c.mask_loss,
                                    affinity_form=c.affinity_form if c.affinity_loss else None)
          if c.neighbours else {"mask_2": zero, "fwd_2": zero, "bwd_2": zero})

    recon_loss = (c.lambda_ae * l_img + c.lambda_3d * l_3d + c.lambda_ae_mask * l_mask
                  + c.lambda_mask_fwd * l_fwd + c.lambda_mask_bwd * l_bwd
                  + (c.lambda_symm * l_symm if c.symmetry_loss else zero)
                  + c.kro.weight * l_kro + c.lambda_gt * l_gt + wd_recon
                  + (c.lambda_ae_mask * nn["mask_2"] + c.lambda_mask_fwd * nn["fwd_2"]
                     + c.lambda_mask_bwd * nn["bwd_2"] if c.use_mult_proj else zero))
    pose_loss = c.lambda_ae_pose * l_img + c.lambda_pose * l_pose + c.lambda_mask_pose * l_mask + wd_pose
    return {
        "loss_total": c.lambda_ae * l_img + c.lambda_3d * l_3d + c.lambda_pose * l_pose,
        "loss_ae": l_img, "loss_mask": l_mask, "chamfer2d_fwd": l_fwd, "chamfer2d_bwd": l_bwd,
        "loss_3d": l_3d, "loss_pose": l_pose, "loss_symm": l_symm, "loss_kro": l_kro, "loss_gt": l_gt,
        "loss_wd": wd_recon + wd_pose, "recon_loss": recon_loss, "pose_loss": pose_loss,
        "loss_mask_2": nn["mask_2"], "chamfer2d_fwd_2": nn["fwd_2"], "chamfer2d_bwd_2": nn["bwd_2"],
    }
