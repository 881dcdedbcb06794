"""Global rotation alignment of predictions to ground truth (baseline §10.2), plus an optional ICP refinement.

Shape legend: M models, N predicted points, K GT points; clouds are float row arrays `[..., N, 3]`.

A self-supervised model predicts clouds in a frame it discovers itself, so before scoring, the baseline
(`align_pcl_transform.py`, §10.2) fits ONE rotation shared by all models:
  R = R_z(tilt) · R_y(el) · R_x(az), with R_x = R_az and R_y = R_el of §5.1 and
  R_z(t) = [[cos t, -sin t, 0], [sin t, cos t, 0], [0, 0, 1]];
  pred_rot = R · pred for column vectors, i.e. `pred @ R^T` for our row arrays. No translation, no scale.
The three angles start at (29°, 0°, 270°) = (az, el, tilt) and are fitted with Adam (lr 1e-3, other
defaults) on 1e4 · CD(gt, pred_rot) (the squared Chamfer of §7.4 in raw coordinates), 5000 steps of batch 1
cycling through the shuffled fit-split predictions (`idx = step mod M`).

`icp_refine` (per-model rigid ICP) is NOT part of the baseline's protocol; eval.py labels its results so.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from geometry.nearest import nearest_numpy
from losses import chamfer

# Baseline §10.2: initial (az, el, tilt) in degrees, learning rate, iterations, loss multiplier.
INIT_DEG = (29.0, 0.0, 270.0)
ALIGN_LR = 1e-3
ALIGN_ITERS = 5000
ADAM_EPSILON = 1e-8  # TF1 Adam default, which the baseline's fit used ("other defaults", §10.2); Keras has 1e-7
ALIGN_LOSS_SCALE = 1e4


def euler_rotation(angles: tf.Tensor) -> tf.Tensor:
    """R = R_z(tilt) · R_y(el) · R_x(az) (baseline §10.2 with the §5.1 matrices).

    Args:
      angles: float `[3]` = (az, el, tilt) in radians (float32 or float64; the result follows).

    Returns:
      float `[3, 3]` rotation matrix acting on column vectors.
    """
    angles = tf.convert_to_tensor(angles)
    c, s = tf.cos(angles), tf.sin(angles)
    one, zero = tf.ones_like(c[0]), tf.zeros_like(c[0])
    r_x = tf.stack([[one, zero, zero], [zero, c[0], -s[0]], [zero, s[0], c[0]]])
    r_y = tf.stack([[c[1], zero, s[1]], [zero, one, zero], [-s[1], zero, c[1]]])
    r_z = tf.stack([[c[2], -s[2], zero], [s[2], c[2], zero], [zero, zero, one]])
    return r_z @ r_y @ r_x


def rotate(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Applies a column-vector rotation to row-array clouds: `points @ rotation^T`.

    Args:
      points: float `[..., N, 3]`.  rotation: float `[3, 3]`.

    Returns:
      float `[..., N, 3]` (dtype of `points`).
    """
    return (np.asarray(points) @ np.asarray(rotation).T).astype(np.asarray(points).dtype)


@dataclasses.dataclass
class GlobalRotation:
    """Result of `fit_global_rotation`.

    Attributes:
      angles: float64 `[3]` fitted (az, el, tilt) in radians.
      rotation: float64 `[3, 3]` = euler_rotation(angles).
      losses: float64 `[n_iters]` objective (1e4 · CD) at every step, before the update.
    """

    angles: np.ndarray
    rotation: np.ndarray
    losses: np.ndarray

    @property
    def angles_deg(self) -> np.ndarray:
        """float64 `[3]` fitted angles in degrees (what the baseline saved in angles.txt)."""
        return np.degrees(self.angles)


def fit_global_rotation(preds: np.ndarray, gts: np.ndarray, n_iters: int = ALIGN_ITERS, lr: float = ALIGN_LR,
                        init_deg=INIT_DEG, batch_size: int = 1, seed: int = 0,
                        backend: str = "auto") -> GlobalRotation:
    """Fits one rotation for all models by Adam on 1e4 · Chamfer (baseline §10.2).

    Args:
      preds: float `[M, N, 3]` predicted clouds (raw network output, no normalisation, as the baseline).
      gts: float `[M, K, 3]` ground-truth clouds of the same models, same order.
      n_iters: Adam steps (5000 in the baseline).
      lr: Adam learning rate (1e-3 in the baseline).
      init_deg: initial (az, el, tilt) in degrees.
      batch_size: models per step (1 in the baseline); step i uses shuffled models (i·B + b) mod M.
      seed: seed of the shuffle.
      backend: `losses.chamfer` backend ("auto", "op" or "tf").

    Returns:
      GlobalRotation.
    """
    preds = np.asarray(preds, dtype=np.float32)
    gts = np.asarray(gts, dtype=np.float32)
    if preds.ndim != 3 or gts.ndim != 3 or preds.shape[0] != gts.shape[0] or preds.shape[0] == 0:
        raise ValueError(f"alignment: need preds [M,N,3] and gts [M,K,3] with the same M >= 1, "
                         f"got {preds.shape} and {gts.shape}")
    order = np.random.default_rng(seed).permutation(preds.shape[0])
    schedule = order[(np.arange(n_iters)[:, None] * batch_size + np.arange(batch_size)[None, :])
                     % preds.shape[0]]
    angles = tf.Variable(np.radians(np.asarray(init_deg, dtype=np.float64)).astype(np.float32),
                         name="align_angles")
    optimizer = tf.keras.optimizers.Adam(learning_rate=lr, epsilon=ADAM_EPSILON)
    optimizer.build([angles])
    preds_t, gts_t = tf.constant(preds), tf.constant(gts)

    @tf.function
    def run(schedule_t):
        losses = tf.TensorArray(tf.float32, size=n_iters)
        for step in tf.range(n_iters):
            idx = schedule_t[step]
            with tf.GradientTape() as tape:
                rotated = tf.matmul(tf.gather(preds_t, idx), euler_rotation(angles), transpose_b=True)
                loss = ALIGN_LOSS_SCALE * chamfer.chamfer_loss(tf.gather(gts_t, idx), rotated, backend=backend)
            optimizer.apply_gradients([(tape.gradient(loss, angles), angles)])
            losses = losses.write(step, loss)
        return losses.stack()

    losses = run(tf.constant(schedule, dtype=tf.int32)).numpy().astype(np.float64)
    fitted = angles.numpy().astype(np.float64)
    return GlobalRotation(angles=fitted, rotation=euler_rotation(fitted).numpy(), losses=losses)


def _kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid (R, t) minimising sum ||R·source_i + t - target_i||^2 over paired `[N, 3]` rows."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - mu_s).T @ (target - mu_t))
    flip = np.diag([1.0, 1.0, math.copysign(1.0, np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ flip @ u.T
    return rotation, mu_t - mu_s @ rotation.T


def icp_refine(pred: np.ndarray, gt: np.ndarray, n_iters: int = 30, tol: float = 1e-7) -> np.ndarray:
    """Per-model rigid point-to-point ICP of a prediction onto its GT. NOT the baseline's protocol (§10.2).

    Args:
      pred: float `[N, 3]` prediction (already globally aligned and, typically, bbox-normalised).
      gt: float `[K, 3]` ground truth in the same normalisation.
      n_iters: maximum ICP iterations.
      tol: stop when the mean squared correspondence distance improves by less than this.

    Returns:
      float64 `[N, 3]` the rigidly moved prediction.
    """
    moved = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    previous = np.inf
    for _ in range(n_iters):
        squared, idx = nearest_numpy(moved, gt, "kdtree", "alignment.icp_refine")
        error = float(np.mean(squared))
        if previous - error < tol:
            break
        previous = error
        rotation, translation = _kabsch(moved, gt[idx])
        moved = moved @ rotation.T + translation
    return moved
