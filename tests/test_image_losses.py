"""Image, mask and affinity losses and the nearest-neighbour mask terms (baseline §7.1–§7.3, §7.7)."""

import math

import numpy as np
import pytest
import tensorflow as tf

import losses.image as image_module
from losses.image import affinity_loss, image_loss, mask_loss, neighbour_mask_loss

W_BG = 1e6                                                   # background weight of §7.3


def t(x):
    return tf.constant(np.asarray(x, np.float64))


def test_image_loss_goldens():
    img = np.zeros((1, 1, 2, 3))
    pred = img.copy()
    pred[0, 0, 0] = [1.0, 2.0, 2.0]                          # channel sum of squares 9 on one pixel of 2
    assert float(image_loss(t(img), t(pred))) == pytest.approx(4.5)
    assert float(image_loss(t(img), t(pred), kind="l2")) == pytest.approx(1.5)
    assert float(image_loss(t(img), t(pred), kind="l1")) == pytest.approx(5.0 / 6.0)
    with pytest.raises(ValueError, match="image_loss"):
        image_loss(t(img), t(pred), kind="l3")


def test_bce_quirk_golden():
    # the silhouette x is used as a LOGIT: ℓ = max(x,0) − x·y + log(1 + e^{−|x|})
    mask = t([[[1.0, 0.0, 1.0]]])
    pred = t([[[0.5, 0.0, 0.999]]])
    expected = [math.log1p(math.exp(-0.5)), math.log(2.0), 0.999 - 0.999 + math.log1p(math.exp(-0.999))]
    assert float(mask_loss(mask, pred)) == pytest.approx(np.mean(expected), rel=1e-12)
    # even a perfect silhouette cannot bring it below log(1 + e^{-1}) per foreground pixel
    assert float(mask_loss(t([[[1.0]]]), t([[[0.99999]]]))) > math.log1p(math.exp(-1.0)) - 1e-5


def test_bce_quirk_gradient_is_sigmoid_minus_label():
    mask, pred = t([[[1.0, 0.0]]]), tf.Variable([[[0.3, 0.6]]], dtype=tf.float64)
    with tf.GradientTape() as tape:
        loss = mask_loss(mask, pred)
    sig = 1.0 / (1.0 + np.exp(-np.array([0.3, 0.6])))
    np.testing.assert_allclose(tape.gradient(loss, pred).numpy()[0, 0], (sig - [1.0, 0.0]) / 2, rtol=1e-12)


def test_bce_prob_golden():
    mask, pred = t([[[1.0, 0.0]]]), t([[[0.8, 0.3]]])
    expected = (-math.log(0.8 + 1e-8) - math.log(0.7 - 1e-8)) / 2
    assert float(mask_loss(mask, pred, kind="bce_prob")) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="mask_loss"):
        mask_loss(mask, pred, kind="dice")


def test_affinity_closed_golden():
    mask, pred = t([[[1.0, 0.0]]]), t([[[0.5, 0.2]]])
    fwd, bwd = affinity_loss(mask, pred)
    assert float(fwd) == pytest.approx((0.5 * 1.0 + 0.2 * W_BG) / 2)       # pred · w(gt)
    assert float(bwd) == pytest.approx((1.0 * (0.5 + W_BG * 0.5)) / 2)      # gt · w(pred)


def ssl_tiling_reference(gt, pred):
    """SSL get_img_loss's affinity construction, literally, on a small grid (numpy, [B,H,W,H,W])."""
    _, h, w = gt.shape
    ii, jj = np.meshgrid(range(h), range(w), indexing="ij")
    grid = np.stack([ii.ravel(), jj.ravel()], -1)
    dist = np.linalg.norm(grid[:, None] - grid[None], axis=-1).reshape(h, w, h, w) + 1.0
    gt_white = np.tile(gt[:, :, :, None, None], [1, 1, 1, h, w])
    pred_white = np.tile(pred[:, :, :, None, None], [1, 1, 1, h, w])
    gt_th = gt_white + (1.0 - gt_white) * W_BG
    pred_th = pred_white + (1.0 - pred_white) * W_BG
    fwd = np.mean(np.min(gt_th * dist * pred_white, axis=(3, 4)))
    bwd = np.mean(np.min(pred_th * dist * gt_white, axis=(3, 4)))
    return fwd, bwd


def intended_reference(gt, pred):
    """The same construction with the target indexed by a second pixel (q): a real 2D Chamfer."""
    _, h, w = gt.shape
    ii, jj = np.meshgrid(range(h), range(w), indexing="ij")
    grid = np.stack([ii.ravel(), jj.ravel()], -1)
    dist = np.linalg.norm(grid[:, None] - grid[None], axis=-1) + 1.0         # [P, P]
    g, p = gt.reshape(len(gt), -1), pred.reshape(len(pred), -1)
    w_g, w_p = g + (1 - g) * W_BG, p + (1 - p) * W_BG
    fwd = np.mean(p * np.min(w_g[:, None, :] * dist[None], axis=-1))
    bwd = np.mean(g * np.min(w_p[:, None, :] * dist[None], axis=-1))
    return fwd, bwd


def random_masks(seed, shape=(2, 5, 6)):
    rng = np.random.default_rng(seed)
    gt = (rng.random(shape) > 0.6).astype(np.float64)
    pred = np.tanh(rng.random(shape) * 2.0) * (rng.random(shape) > 0.3)
    return gt, pred


def test_affinity_closed_equals_ssl_4d_tiling():
    gt, pred = random_masks(0)
    np.testing.assert_allclose([float(v) for v in affinity_loss(t(gt), t(pred))],
                               ssl_tiling_reference(gt, pred), rtol=1e-12)


@pytest.mark.parametrize("chunk_entries", [None, 37])
def test_chamfer2d_equals_direct_construction(monkeypatch, chunk_entries):
    if chunk_entries:                                       # force several padded chunks
        monkeypatch.setattr(image_module, "_CHAMFER2D_CHUNK_ENTRIES", chunk_entries)
    gt, pred = random_masks(1)
    got = affinity_loss(t(gt), t(pred), form="chamfer2d")
    np.testing.assert_allclose([float(v) for v in got], intended_reference(gt, pred), rtol=1e-12)


def test_chamfer2d_goldens():
    # 1×3 strip: gt at column 0, pred at column 2 → each side pays distance 2 (+1) on one of 3 pixels
    fwd, bwd = affinity_loss(t([[[1.0, 0, 0]]]), t([[[0, 0, 1.0]]]), form="chamfer2d")
    assert (float(fwd), float(bwd)) == pytest.approx((1.0, 1.0))
    # the closed form only sees the per-pixel mismatch: 1e6 on the false-positive pixel
    fwd, _ = affinity_loss(t([[[1.0, 0, 0]]]), t([[[0, 0, 1.0]]]))
    assert float(fwd) == pytest.approx(W_BG / 3)
    # 2×2: opposite corners, distance √2
    fwd, bwd = affinity_loss(t([[[1.0, 0], [0, 0]]]), t([[[0, 0], [0, 1.0]]]), form="chamfer2d")
    assert (float(fwd), float(bwd)) == pytest.approx(((math.sqrt(2) + 1) / 4,) * 2)
    # identical binary silhouettes: only the +1 of each foreground pixel remains
    mask = t([[[1.0, 1.0], [0, 0]]])
    assert [float(v) for v in affinity_loss(mask, mask, form="chamfer2d")] == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize("form", ["closed", "chamfer2d"])
def test_affinity_gradients_float64(form):
    gt, pred = random_masks(2, (1, 3, 4))

    def total(p):
        fwd, bwd = affinity_loss(t(gt), p, form=form)
        return fwd + 1e-3 * bwd
    var = tf.Variable(pred)
    with tf.GradientTape() as tape:
        loss = total(var)
    analytic = tape.gradient(loss, var).numpy()
    numeric = np.zeros_like(pred)
    for idx in np.ndindex(pred.shape):
        e = np.zeros_like(pred)
        e[idx] = 1e-7
        numeric[idx] = (float(total(t(pred + e))) - float(total(t(pred - e)))) / 2e-7
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-3)


def test_chamfer2d_in_tf_function_with_unknown_batch():
    gt, pred = random_masks(3, (3, 4, 4))
    fn = tf.function(lambda g, p: affinity_loss(g, p, form="chamfer2d"),
                     input_signature=[tf.TensorSpec([None, 4, 4], tf.float64)] * 2)
    np.testing.assert_allclose([float(v) for v in fn(t(gt), t(pred))], intended_reference(gt, pred),
                               rtol=1e-12)


def test_affinity_unknown_form():
    with pytest.raises(ValueError, match="affinity_loss"):
        affinity_loss(t([[[1.0]]]), t([[[1.0]]]), form="emd")


def test_neighbour_mask_loss_terms():
    rng = np.random.default_rng(2)
    mask = tf.constant((rng.random((2, 4, 4)) > 0.5).astype(np.float32))
    render = tf.constant(rng.random((2, 4, 4)).astype(np.float32) * 0.9)
    terms = neighbour_mask_loss(mask, render, kind="bce_prob", affinity_form="closed")
    assert float(terms["mask_2"]) == pytest.approx(float(mask_loss(mask, render, kind="bce_prob")))
    assert [float(terms["fwd_2"]), float(terms["bwd_2"])] == pytest.approx(
        [float(v) for v in affinity_loss(mask, render)])
    off = neighbour_mask_loss(mask, render)
    assert float(off["fwd_2"]) == 0.0 and float(off["bwd_2"]) == 0.0
