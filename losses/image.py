"""2D losses on rendered images and silhouettes (baseline §7.1–§7.3, §7.7; SSL ``get_img_loss``).

Shape legend: B batch, H, W image rows and columns (H = W = 64 in the baseline), P = H·W pixels.
Images are float ``[B, H, W, 3]`` in [0, 1]; masks float ``[B, H, W]`` in [0, 1] (GT masks binary,
predicted masks are the tanh soft silhouettes of baseline §5.3, in [0, 1)). Pixel (i, j) = (row, column);
pixel distances are Euclidean in pixel units. Every loss is a scalar mean over the batch and pixels.

Baseline quirks reproduced by default (each with its switch):

* ``mask_loss(kind="bce")`` feeds the silhouette, already in [0, 1), to a sigmoid cross-entropy *as a
  logit* (§7.2); ``kind="bce_prob"`` is the true binary cross-entropy on probabilities.
* ``affinity_loss(form="closed")``: the baseline's "2D Chamfer" tiles both masks over the same axes, so
  its 4-D minimum collapses to per-pixel terms (§7.3); ``form="chamfer2d"`` is the distance-weighted 2D
  Chamfer the construction was meant to compute (the paper's intent).

Nearest-neighbour mask consistency (OURS-NN, §7.7): the input image's cloud xyz0 is rendered at the pose the
pose net predicts for a neighbour image (another model that looks alike, §6) and that render,
``mask_out_2``, is compared with the neighbour's mask by the same mask and affinity terms as the main
silhouette (:func:`neighbour_mask_loss`). The render is the training step's job (model/objective.py), the
neighbour pairs come from data/neighbours.py.
"""

import tensorflow as tf

from geometry.nearest import chunked_argmin

MASK_LOSS_KINDS = ("bce", "bce_prob")  # mask_loss kinds (--loss)
AFFINITY_FORMS = ("closed", "chamfer2d")  # affinity_loss forms (--affinity_form)
# Weight of a background pixel in the affinity minimum: the baseline's ``x + (1 - x) * 1e6`` (§7.3).
AFFINITY_BACKGROUND_WEIGHT = 1e6
# Epsilon of the baseline's probability BCE (§7.2).
BCE_PROB_EPSILON = 1e-8
# Entries of the per-chunk [B, chunk, P] cost tensor of chamfer2d; chamfer-notes: keep chunks ≲ 8 M.
_CHAMFER2D_CHUNK_ENTRIES = 1 << 22


def image_loss(img: tf.Tensor, img_pred: tf.Tensor, kind: str = "l2_sq") -> tf.Tensor:
    """Image loss of the render at the predicted pose (baseline §7.1).

    ``l2_sq``: mean over (b, i, j) of the channel sum of squared differences (the baseline's choice);
    ``l2``: mean of the square root of that channel sum; ``l1``: mean absolute difference over every
    element (channels included), as SSL ``get_img_loss``.

    Args:
        img: float ``[B, H, W, C]`` target image.
        img_pred: float ``[B, H, W, C]`` rendered image.
        kind: "l2_sq", "l2" or "l1".

    Returns:
        Scalar loss.
    """
    diff = img - img_pred
    if kind == "l2_sq":
        return tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=-1))
    if kind == "l2":
        return tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1)))
    if kind == "l1":
        return tf.reduce_mean(tf.abs(diff))
    raise ValueError(f"losses.image.image_loss: unknown kind {kind!r} (expected l2_sq, l2 or l1)")


def mask_loss(mask: tf.Tensor, mask_pred: tf.Tensor, kind: str = "bce") -> tf.Tensor:
    """Silhouette loss (baseline §7.2, ``--loss``).

    ``bce`` (baseline default): ``mean sigmoid_cross_entropy_with_logits(labels=mask, logits=mask_pred)``
    = mean[max(x, 0) − x·y + log(1 + e^{−|x|})] with x the tanh silhouette used as a logit, so σ(x) only
    spans [0.5, 0.73]; the gradient σ(x) − y still pushes x up inside and down outside the GT.
    ``bce_prob``: true BCE on probabilities, −y·log(x + ε) − (1 − y)·log|1 − x − ε|, ε = 1e-8.

    Args:
        mask: float ``[B, H, W]`` GT silhouette in {0, 1}.
        mask_pred: float ``[B, H, W]`` soft silhouette in [0, 1).
        kind: "bce" (baseline quirk) or "bce_prob" (the corrected form).

    Returns:
        Scalar loss.
    """
    if kind == "bce":
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=mask, logits=mask_pred))
    if kind == "bce_prob":
        eps = BCE_PROB_EPSILON
        loss = -mask * tf.math.log(mask_pred + eps) - (1.0 - mask) * tf.math.log(
            tf.abs(1.0 - mask_pred - eps))
        return tf.reduce_mean(loss)
    raise ValueError(f"losses.image.mask_loss: unknown kind {kind!r} (expected bce or bce_prob)")


def _affinity_weight(mask: tf.Tensor) -> tf.Tensor:
    """w(x) = x + 1e6·(1 − x): ≈1 on foreground, 1e6 on background (baseline §7.3)."""
    return mask + AFFINITY_BACKGROUND_WEIGHT * (1.0 - mask)


def affinity_loss(mask: tf.Tensor, mask_pred: tf.Tensor,
                  form: str = "closed") -> tuple[tf.Tensor, tf.Tensor]:
    """The "affinity" (2D Chamfer) silhouette terms (baseline §7.3, ``--affinity_loss``).

    With w(x) = x + 1e6·(1 − x) and the pixel distance d(p, q) = ‖p − q‖₂ + 1:

    * ``form="closed"`` (the baseline's code): SSL tiles both masks over the last two axes of a
      ``[B, H, W, H, W]`` tensor, so both are read at the same pixel p and min_q d(p, q) = 1:
      ``fwd = mean_{b,p} pred_p · w(gt_p)``, ``bwd = mean_{b,p} gt_p · w(pred_p)``
      — a weighted L1 on false-positive / false-negative silhouette mass. Exact, no 4-D tensor.
    * ``form="chamfer2d"`` (the paper's intent): the same construction with the minimum over a second,
      independent pixel q: ``fwd = mean_{b,p} pred_p · min_q w(gt_q)·d(p, q)`` (each unit of predicted
      mass pays the distance + 1 to the nearest GT pixel) and ``bwd = mean_{b,p} gt_p · min_q
      w(pred_q)·d(p, q)`` (each GT pixel pays the distance + 1 to the nearest predicted pixel,
      background pixels weighing 1e6). The minimiser is searched without gradient in pixel chunks and
      the chosen term recomputed, so memory is O(B·chunk·P) and the gradient is that of the minimum.

    Args:
        mask: float ``[B, H, W]`` GT silhouette in {0, 1}.
        mask_pred: float ``[B, H, W]`` soft silhouette in [0, 1].
        form: "closed" (baseline) or "chamfer2d" (corrected).

    Returns:
        (fwd, bwd) scalars, weighted by ``--lambda_mask_fwd`` / ``--lambda_mask_bwd`` in training.
    """
    if form == "closed":
        fwd = tf.reduce_mean(mask_pred * _affinity_weight(mask))
        bwd = tf.reduce_mean(mask * _affinity_weight(mask_pred))
        return fwd, bwd
    if form == "chamfer2d":
        return (_weighted_chamfer_term(mask_pred, _affinity_weight(mask)),
                _weighted_chamfer_term(mask, _affinity_weight(mask_pred)))
    raise ValueError(f"losses.image.affinity_loss: unknown form {form!r} (expected closed or chamfer2d)")


def neighbour_mask_loss(mask_2: tf.Tensor, mask_out_2: tf.Tensor, kind: str = "bce",
                        affinity_form: str | None = None) -> dict:
    """Mask terms between a neighbour's mask and xyz0 rendered at its predicted pose (baseline §7.7).

    Args:
        mask_2: float ``[B, H, W]`` the neighbour image's GT mask.
        mask_out_2: float ``[B, H, W]`` soft silhouette of xyz0 at pose_net(image_2).
        kind: mask loss kind (:func:`mask_loss`).
        affinity_form: None (``--affinity_loss`` off: zero terms, as SSL) or an :func:`affinity_loss`
            form.

    Returns:
        ``{"mask_2", "fwd_2", "bwd_2"}`` scalars (added to the recon loss with λ_ae_mask, λ_mask_fwd,
        λ_mask_bwd only with ``--use_mult_proj``; the baseline's script does not pass it, §7.7).
    """
    terms = {"mask_2": mask_loss(mask_2, mask_out_2, kind=kind)}
    if affinity_form is None:
        zero = tf.zeros([], mask_out_2.dtype)
        terms["fwd_2"], terms["bwd_2"] = zero, zero
    else:
        terms["fwd_2"], terms["bwd_2"] = affinity_loss(mask_2, mask_out_2, form=affinity_form)
    return terms


def _pixel_coords(height: int, width: int, dtype) -> tf.Tensor:
    """Row-major pixel coordinates (i, j) of an H×W grid, ``[P, 2]``."""
    ii, jj = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    return tf.cast(tf.reshape(tf.stack([ii, jj], axis=-1), [-1, 2]), dtype)


def _weighted_chamfer_term(mass: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """``mean_{b,p} mass_p · min_q weight_q · (‖p − q‖₂ + 1)`` without a ``[B, P, P]`` tensor.

    Args:
        mass: float ``[B, H, W]`` per-pixel mass that pays the distance.
        weight: float ``[B, H, W]`` per-pixel weight of the target pixels (≈1 foreground, 1e6 background).

    Returns:
        Scalar.
    """
    height, width = mass.shape[1], mass.shape[2]
    n_pix = height * width
    coords = _pixel_coords(height, width, mass.dtype)                       # [P, 2]
    weight_flat = tf.reshape(weight, [-1, n_pix])                           # [B, P]
    weight_stop = tf.stop_gradient(weight_flat)                             # search only, no gradient

    def cost(query):                                                        # [B, c, 2] -> [B, c, P]
        # per-axis squares: ~3x faster than tf.norm over a size-2 axis on CPU
        d2 = (tf.square(query[:, :, None, 0] - coords[None, None, :, 0])
              + tf.square(query[:, :, None, 1] - coords[None, None, :, 1]))
        return weight_stop[:, None, :] * (tf.sqrt(d2) + 1.0)

    queries = tf.broadcast_to(coords, [tf.shape(weight_flat)[0], n_pix, 2])  # every pixel p of every b
    idx = chunked_argmin(cost, queries, n_pix, _CHAMFER2D_CHUNK_ENTRIES)   # [B, P]
    nearest_coords = tf.gather(coords, idx)                                 # [B, P, 2]
    dist = tf.norm(coords[None] - nearest_coords, axis=-1) + 1.0            # [B, P], constant
    per_pixel = tf.gather(weight_flat, idx, batch_dims=1) * dist            # [B, P]
    return tf.reduce_mean(tf.reshape(mass, [-1, n_pix]) * per_pixel)
