"""Test-time refinement on a single image (the SSL paper's test-time optimisation).

Before predicting an image, COPIES of the run's two networks are fine-tuned for N Adam steps on that image's
own losses at the predicted pose: the image loss (§7.1), the mask loss (§7.2) and, when the run used them, the
affinity terms (§7.3), rendered from the predicted cloud (`model.projection.render`) and summed with the run's
weights as in the §7.8 sums restricted to these terms:
  recon objective = λ_ae · image + λ_ae_mask · mask + λ_mask_fwd · fwd + λ_mask_bwd · bwd  (recon net)
  pose objective  = λ_ae_pose · image + λ_mask_pose · mask                              (pose net, only when
                                                                                          the run trained it)
Adam with the run's learning rate and β1 (`model.optimizer.make_optimizer`, the run's --adam). A run trained with --use_gt_pose
renders at the GT pose (its pose net is untrained), which an evaluation has and a new image has not. Every
image starts again from the checkpoint's weights and fresh optimiser state; the run's networks and checkpoint
are never modified. N = 0 is no refinement (the caller then predicts with the run's networks).

Shape legend: H image size, N points, B images.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from losses import image as image_losses
from model import trainer
from model.optimizer import make_optimizer
from model.config import TrainConfig
from model.projection import render

#: The terms of the refinement objective, in the order `Refiner.losses` returns them.
TERMS = ("recon_loss", "pose_loss", "loss_ae", "loss_mask", "chamfer2d_fwd", "chamfer2d_bwd")


class Refiner:
    """Fine-tunes copies of a run's networks on one image at a time (module doc).

    Attributes:
      steps: N, Adam steps per image.  config: the run's TrainConfig.
      recon_net, pose_net: the copies being fine-tuned.
      history: float64 `[N + 1, len(TERMS)]` the losses before each step and after the last, for the last image.
      first_last: one float64 `[2, len(TERMS)]` per image refined so far: its losses before and after.
    """

    def __init__(self, recon_net, pose_net, config: TrainConfig, steps: int):
        if steps < 1:
            raise ValueError(f"refinement: --refine_steps must be >= 1 to refine (0: no refinement), got {steps}")
        self.steps, self.config = steps, config
        self.recon_net, self.pose_net = trainer.build_networks(config.image_size, config.n_points, config.bottleneck)
        self._initial = [(self.recon_net, recon_net.get_weights()), (self.pose_net, pose_net.get_weights())]
        # (network, its optimiser, the objective it descends): the pose net only when the run trained it.
        self._trained = [(self.recon_net, make_optimizer(config.lr, config.beta1, config.adam, "refine_recon"), "recon_loss")]
        if config.trains_pose_net:
            self._trained.append((self.pose_net, make_optimizer(config.lr, config.beta1, config.adam, "refine_pose"), "pose_loss"))
        for net, optimiser, _ in self._trained:
            optimiser.build(net.trainable_variables)
        self._optimiser_initial = [[v.numpy() for v in o.variables] for _, o, _ in self._trained]
        self.history = np.zeros((0, len(TERMS)))
        self.first_last: list[np.ndarray] = []
        self._reset()

    def _reset(self) -> None:
        """Back to the checkpoint's weights and a fresh optimiser state."""
        for net, weights in self._initial:
            net.set_weights(weights)
        for (_, optimiser, _), values in zip(self._trained, self._optimiser_initial):
            for variable, value in zip(optimiser.variables, values):
                variable.assign(value)

    def _pose(self, images: tf.Tensor, gt_pose: tf.Tensor | None) -> tf.Tensor:
        if self.config.use_gt_pose:
            if gt_pose is None:
                raise ValueError("refinement: the run was trained with --use_gt_pose (its pose net is untrained); "
                                 "refining needs the image's pose")
            return gt_pose
        return self.pose_net(images, training=False)["pose"]

    def losses(self, images: tf.Tensor, masks: tf.Tensor, gt_pose: tf.Tensor | None = None) -> dict:
        """The refinement objective's terms for images `[1, H, H, 3]`, masks `[1, H, H]` (dict over TERMS)."""
        c = self.config
        out = self.recon_net(images, training=False)
        rendered = render(out["xyz"], out["rgb"], self._pose(images, gt_pose), image_size=c.image_size,
                          method=c.projection, sigma_sq=c.sigma_sq)
        l_img = image_losses.image_loss(images, rendered["image"])
        l_mask = image_losses.mask_loss(masks, rendered["mask"], kind=c.mask_loss)
        zero = tf.zeros([], l_img.dtype)
        l_fwd, l_bwd = (image_losses.affinity_loss(masks, rendered["mask"], form=c.affinity_form)
                        if c.affinity_loss else (zero, zero))
        return {"recon_loss": c.lambda_ae * l_img + c.lambda_ae_mask * l_mask + c.lambda_mask_fwd * l_fwd
                + c.lambda_mask_bwd * l_bwd,
                "pose_loss": c.lambda_ae_pose * l_img + c.lambda_mask_pose * l_mask,
                "loss_ae": l_img, "loss_mask": l_mask, "chamfer2d_fwd": l_fwd, "chamfer2d_bwd": l_bwd}

    @tf.function
    def _step(self, images, masks, gt_pose):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses(images, masks, gt_pose)
        for net, optimiser, objective in self._trained:
            grads = tape.gradient(losses[objective], net.trainable_variables)
            optimiser.apply_gradients(zip(grads, net.trainable_variables))
        return tf.stack([losses[t] for t in TERMS])

    def refine(self, image: np.ndarray, mask: np.ndarray, gt_pose: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Fine-tunes the copies on one image for `steps` steps from the checkpoint, then predicts it.

        Args:
          image: float32 `[H, H, 3]` in [0, 1].  mask: float `[H, H]` in {0, 1}.
          gt_pose: float `[2]` the image's pose (needed, and used, only for a --use_gt_pose run).

        Returns:
          {"xyz": float32 `[N, 3]`, "rgb": float32 `[N, 3]`, "pose": float32 `[2]`} of the refined networks.

        Raises:
          FloatingPointError: a step gave a non-finite loss (the refined prediction would be meaningless).
        """
        self._reset()
        images = tf.constant(np.asarray(image, np.float32)[None])
        masks = tf.constant(np.asarray(mask, np.float32)[None])
        pose = None if gt_pose is None else tf.constant(np.asarray(gt_pose, np.float32)[None])
        history = [self._step(images, masks, pose).numpy() for _ in range(self.steps)]
        final = {t: float(v) for t, v in self.losses(images, masks, pose).items()}
        self.history = np.array(history + [[final[t] for t in TERMS]], dtype=np.float64)
        if not np.all(np.isfinite(self.history)):
            step = int(np.argmax(~np.all(np.isfinite(self.history), axis=1)))
            raise FloatingPointError(f"refinement: non-finite loss at step {step} of {self.steps}")
        self.first_last.append(self.history[[0, -1]])
        out = self.recon_net(images, training=False)
        return {"xyz": out["xyz"].numpy()[0], "rgb": out["rgb"].numpy()[0],
                "pose": self._pose(images, pose).numpy()[0]}

    def predict_batch(self, images: np.ndarray, masks: np.ndarray, gt_poses: np.ndarray) -> dict[str, np.ndarray]:
        """`refine` on each image of a batch `[B, H, H, 3]` (masks `[B, H, H]`, poses `[B, 2]`), stacked."""
        outs = [self.refine(i, m, p) for i, m, p in zip(images, masks, gt_poses)]
        return {k: np.stack([o[k] for o in outs]) for k in outs[0]}
