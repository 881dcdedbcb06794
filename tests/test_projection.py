"""Tests of model/projection.py (baseline §5.3–5.4): goldens, properties, gradients, fast == fused == faithful.

Every golden, property and float64 gradient check runs on the three forms; the fused form's own edge cases
(ties, empty images, NaN, thread splits, the op's input checks) are in test_projection_op.py.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from geometry import camera
from model import projection

SILHOUETTES = {"faithful": projection.silhouette_faithful, "fast": projection.silhouette_fast,
               "fused": projection.silhouette_fused}
COLOURS = {"faithful": projection.colour_faithful, "fast": projection.colour_fast, "fused": projection.colour_fused}
FORMS = list(SILHOUETTES)

# The fused form needs the op library (built here when missing; a failed build fails, never skips).
pytestmark = pytest.mark.usefixtures("projection_library")


def random_scene(rng, batch, n_points, dtype=tf.float32, extent=0.6):
    """Cloud in [−extent, extent]³ (at extent 0.6 some points fall off the image), colours, poses."""
    xyz = tf.constant(rng.uniform(-extent, extent, (batch, n_points, 3)), dtype)
    rgb = tf.constant(rng.uniform(0.0, 1.0, (batch, n_points, 3)), dtype)
    pose = tf.constant(np.stack([rng.uniform(-np.pi, np.pi, batch), rng.uniform(-0.35, 0.7, batch)], -1), dtype)
    return xyz, rgb, pose


def render_and_grads(method, xyz, rgb, pose, image_size, cotangents, sigma_sq=projection.SIGMA_SQ):
    """Outputs of render and the gradients of ⟨cotangents, (mask, image)⟩ w.r.t. xyz, rgb and pose."""
    with tf.GradientTape() as tape:
        tape.watch([xyz, rgb, pose])
        out = projection.render(xyz, rgb, pose, image_size, method, sigma_sq)
        loss = tf.reduce_sum(cotangents[0] * out["mask"]) + tf.reduce_sum(cotangents[1] * out["image"])
    return out, tape.gradient(loss, [xyz, rgb, pose])


def uvw_tensor(points, dtype=tf.float64):
    return tf.constant([points], dtype)  # [1, N, 3]


def projected(function, shape, seed):
    """x ↦ ⟨c, function(x)⟩ for a fixed random c of ``shape``: one backward pass per numeric-gradient check."""
    weights = tf.constant(np.random.default_rng(seed).normal(size=shape))
    return lambda *args: tf.reduce_sum(weights * function(*args))


# ------------------------------------------------------------------------------ fast, fused == faithful


@pytest.mark.parametrize("method", ["fast", "fused"])
@pytest.mark.parametrize("image_size,n_points,sigma_sq", [
    (32, 1, 0.4), (32, 7, 0.4), (32, 256, 0.4), (32, 1024, 0.4), (64, 7, 0.4), (64, 1024, 0.4), (32, 256, 1.0),
])
def test_sparse_forms_equal_faithful_values_and_gradients(method, image_size, n_points, sigma_sq):
    rng = np.random.default_rng(1000 * image_size + n_points)
    xyz, rgb, pose = random_scene(rng, 2, n_points)
    cotangents = (tf.constant(rng.normal(size=(2, image_size, image_size)), tf.float32),
                  tf.constant(rng.normal(size=(2, image_size, image_size, 3)), tf.float32))
    ref, ref_grads = render_and_grads("faithful", xyz, rgb, pose, image_size, cotangents, sigma_sq)
    out, grads = render_and_grads(method, xyz, rgb, pose, image_size, cotangents, sigma_sq)
    assert float(tf.reduce_max(ref["mask"])) > 0.1  # the scene is visible
    for key in ("mask", "image"):
        np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), atol=1e-5, err_msg=key)
    for name, grad, ref_grad in zip(("xyz", "rgb", "pose"), grads, ref_grads):
        scale = np.abs(ref_grad.numpy()).max()
        assert scale > 0, name
        np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), atol=1e-4 * scale, rtol=0, err_msg=name)


def test_jit_compiled_fast_render_equals_eager():
    rng = np.random.default_rng(3)
    xyz, rgb, pose = random_scene(rng, 2, 256)
    cotangents = (tf.ones([2, 64, 64]), tf.ones([2, 64, 64, 3]))
    eager, eager_grads = render_and_grads("fast", xyz, rgb, pose, 64, cotangents)
    compiled = tf.function(lambda *args: render_and_grads("fast", *args, 64, cotangents), jit_compile=True)
    out, grads = compiled(xyz, rgb, pose)
    for key in ("mask", "image"):
        np.testing.assert_allclose(out[key].numpy(), eager[key].numpy(), atol=1e-5, err_msg=key)
    for grad, ref_grad in zip(grads, eager_grads):
        np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), atol=1e-4 * np.abs(ref_grad.numpy()).max())


# --------------------------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("method", FORMS)
def test_silhouette_golden_origin(method):
    # The origin projects to (u, v) = (32, 32) at 64 px (geometry/camera.py); pixel (i, j) receives
    # tanh(exp(−((32 − i)² + (32 − j)²) / 0.8)).
    out = projection.render(tf.zeros([1, 1, 3]), tf.ones([1, 1, 3]), tf.zeros([1, 2]), 64, method)
    mask = out["mask"].numpy()[0]
    np.testing.assert_allclose(mask[32, 32], 0.7615941559557649, atol=1e-6)  # tanh(1)
    np.testing.assert_allclose(mask[33, 32], 0.27891466554963434, atol=1e-6)  # tanh(e^−1.25)
    np.testing.assert_allclose(mask[31, 33], 0.08190113270282008, atol=1e-6)  # tanh(e^−2.5)
    np.testing.assert_allclose(mask[32, 30], 0.006737845033496991, atol=1e-6)  # tanh(e^−5)
    assert mask[40, 32] < 1e-30 and mask[0, 0] == 0.0


@pytest.mark.parametrize("method", FORMS)
def test_silhouette_golden_sub_pixel(method):
    # (u, v) = (10.5, 20.25): pixel (10, 20) gets tanh(exp(−(0.5² + 0.25²)/0.8)) = tanh(e^−0.390625).
    mask = SILHOUETTES[method](uvw_tensor([[10.5, 20.25, 2.0]]), 32).numpy()[0]
    np.testing.assert_allclose(mask[10, 20], 0.5893266849244371, rtol=1e-9)
    np.testing.assert_allclose(mask[11, 20], mask[10, 20], rtol=1e-9)  # u is half-way between rows 10 and 11


@pytest.mark.parametrize("method", FORMS)
def test_colour_golden_single_point(method):
    # u = 10.3 is within 1 px of rows 10 and 11 only; v = 20 of columns 19, 20, 21 (boundary included).
    colour = np.array([0.2, 0.4, 0.6])
    image = COLOURS[method](uvw_tensor([[10.3, 20.0, 2.0]]), tf.constant([[colour]]), 32).numpy()[0]
    expected = np.zeros((32, 32, 3))
    expected[10:12, 19:22] = colour  # weight 1 / (1 + 1e-8)
    np.testing.assert_allclose(image, expected, atol=1e-7)


@pytest.mark.parametrize("method", FORMS)
def test_colour_golden_two_depths(method):
    # A red point at (10, 20), depth 2 and a blue one at (11, 21), depth 2.1. Pixels in both wells
    # (rows 10–11, columns 20–21) mix them with softmax weights over 100 / (w + 1 + 1e-5):
    # 100/3.00001 − 100/3.10001 = 1.0752617644, red weight 1 / (1 + e^−1.0752617644) = 0.7455962694.
    uvw = uvw_tensor([[10.0, 20.0, 2.0], [11.0, 21.0, 2.1]])
    rgb = tf.constant([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], tf.float64)
    image = COLOURS[method](uvw, rgb, 32).numpy()[0]
    red = 0.7455962694370651
    np.testing.assert_allclose(image[10:12, 20:22], np.broadcast_to([red, 0.0, 1.0 - red], (2, 2, 3)), atol=1e-7)
    np.testing.assert_allclose(image[9, 19], [1.0, 0.0, 0.0], atol=1e-7)  # only the red point's well
    np.testing.assert_allclose(image[12, 22], [0.0, 0.0, 1.0], atol=1e-7)  # only the blue point's well
    assert np.all(image[13:] == 0.0) and np.all(image[:, :19] == 0.0)  # background


@pytest.mark.parametrize("method", FORMS)
def test_colour_far_point_is_invisible(method):
    # w + 1 ≥ 10 is clipped to the "outside the well" value 10 (§5.4 step 2), so that point is dropped.
    uvw = uvw_tensor([[10.0, 20.0, 2.0], [10.0, 20.0, 9.5]])
    rgb = tf.constant([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], tf.float64)
    image = COLOURS[method](uvw, rgb, 32).numpy()[0]
    np.testing.assert_allclose(image[10, 20], [1.0, 0.0, 0.0], atol=1e-7)


# ------------------------------------------------------------------------------------------ properties


@pytest.mark.parametrize("method", FORMS)
def test_point_order_does_not_matter(method):
    rng = np.random.default_rng(4)
    xyz, rgb, pose = random_scene(rng, 2, 300)
    perm = rng.permutation(300)
    out = projection.render(xyz, rgb, pose, 32, method)
    shuffled = projection.render(tf.gather(xyz, perm, axis=1), tf.gather(rgb, perm, axis=1), pose, 32, method)
    for key in ("mask", "image"):
        np.testing.assert_allclose(shuffled[key].numpy(), out[key].numpy(), atol=1e-6, err_msg=key)


@pytest.mark.parametrize("method", FORMS)
def test_silhouette_in_unit_interval(method):
    # Strictly below 1 while the Gaussian sum stays below ~19 (float64 tanh saturates beyond).
    rng = np.random.default_rng(5)
    xyz, rgb, pose = random_scene(rng, 2, 256, tf.float64)
    mask = projection.render(xyz, rgb, pose, 32, method)["mask"].numpy()
    assert mask.min() >= 0.0 and mask.max() < 1.0 and mask.max() > 0.5


@pytest.mark.parametrize("method", FORMS)
def test_points_off_image_contribute_nothing(method):
    # Far above / left of the image, far below / right, beyond int32, and just outside the colour well.
    far = [[-40.0, 5.0, 2.0], [5.0, 80.0, 2.0], [1e9, -1e9, 2.0], [-1.5, 5.0, 2.0]]
    uvw = uvw_tensor(far)
    rgb = tf.ones([1, 4, 3], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([uvw, rgb])
        mask = SILHOUETTES[method](uvw[:, :3], 32)
        image = COLOURS[method](uvw, rgb, 32)
        loss = tf.reduce_sum(mask) + tf.reduce_sum(image)
    grads = tape.gradient(loss, [uvw, rgb])
    assert np.all(mask.numpy() == 0.0) and np.all(image.numpy() == 0.0)
    for grad in grads:
        assert np.all(np.isfinite(grad.numpy())) and np.all(grad.numpy() == 0.0)


@pytest.mark.parametrize("method", FORMS)
def test_point_beside_the_image_matches_on_the_border(method):
    # u = −1.5: no colour (outside every well) but a Gaussian tail on row 0: tanh(e^{−1.5²/0.8}).
    uvw = uvw_tensor([[-1.5, 5.0, 2.0]])
    mask = SILHOUETTES[method](uvw, 16).numpy()[0]
    np.testing.assert_allclose(mask[0, 5], math.tanh(math.exp(-2.25 / 0.8)), rtol=1e-12)
    assert np.all(COLOURS[method](uvw, tf.ones([1, 1, 3], tf.float64), 16).numpy() == 0.0)


@pytest.mark.parametrize("method", FORMS)
def test_colour_has_no_gradient_in_the_image_plane(method):
    rng = np.random.default_rng(6)
    uvw = tf.constant(np.concatenate([rng.uniform(8, 12, (1, 20, 2)), rng.uniform(1.9, 2.1, (1, 20, 1))], -1))
    rgb = tf.constant(rng.uniform(0, 1, (1, 20, 3)))
    with tf.GradientTape() as tape:
        tape.watch(uvw)
        loss = tf.reduce_sum(tf.constant(rng.normal(size=(1, 20, 20, 3))) * COLOURS[method](uvw, rgb, 20))
    grad = tape.gradient(loss, uvw).numpy()
    assert np.all(grad[..., :2] == 0.0)
    assert np.abs(grad[..., 2]).max() > 1e-3  # the depth does reach the softmax


def test_splat_radius_bounds_the_truncation():
    assert projection.splat_radius(0.4) == 4
    for sigma_sq in (0.1, 0.4, 1.0):
        radius = projection.splat_radius(sigma_sq)
        assert projection.splat_radius(sigma_sq, tolerance=1e-2) <= radius
        k = np.arange(-60, 61)
        for t_u, t_v in ((0.5, 0.5), (0.5, 0.0), (0.0, 0.0), (-0.3, 0.45)):
            g_u, g_v = np.exp(-(k - t_u) ** 2 / (2 * sigma_sq)), np.exp(-(k - t_v) ** 2 / (2 * sigma_sq))
            kept = np.abs(k) <= radius
            lost = g_u.sum() * g_v.sum() - g_u[kept].sum() * g_v[kept].sum()
            assert lost < projection.SPLAT_TOLERANCE
        # one pixel less would not always do (the bound is within a factor ~3 of the worst case)
        smaller = radius - 1
        g_half = np.exp(-(k - 0.5) ** 2 / (2 * sigma_sq))
        lost_smaller = g_half.sum() ** 2 - g_half[np.abs(k) <= smaller].sum() ** 2
        assert lost_smaller > projection.SPLAT_TOLERANCE / 10


# ------------------------------------------------------------------------------- float64 gradient checks


@pytest.mark.parametrize("method", FORMS)
def test_silhouette_numeric_gradient(method):
    # u, v kept away from half-integers so that the fast window does not move under the finite difference
    uvw = uvw_tensor([[3.2, 4.1, 2.0], [4.3, 3.7, 2.1], [8.9, 1.2, 1.9]])
    loss = projected(lambda x: SILHOUETTES[method](x, 10), (1, 10, 10), seed=8)
    theoretical, numerical = tf.test.compute_gradient(loss, [uvw], delta=1e-6)
    per_coordinate = theoretical[0].reshape(3, 3)
    assert np.abs(per_coordinate[:, :2]).min() > 1e-5 and np.all(per_coordinate[:, 2] == 0.0)  # u, v; not w
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-7)


@pytest.mark.parametrize("method", FORMS)
def test_colour_numeric_gradient_rgb_and_depth(method):
    # Three points sharing wells, depths 0.05 apart so that the softmax weights are far from 0 and 1.
    uv = tf.constant([[[4.0, 4.2], [4.6, 5.0], [5.3, 4.4]]], tf.float64)
    depth = tf.constant([[[2.0], [2.05], [1.97]]], tf.float64)
    rgb = tf.constant([[[0.9, 0.1, 0.3], [0.2, 0.8, 0.5], [0.4, 0.3, 0.7]]], tf.float64)

    def image(depth, rgb):
        return COLOURS[method](tf.concat([uv, depth], -1), rgb, 10)

    theoretical, numerical = tf.test.compute_gradient(projected(image, (1, 10, 10, 3), seed=9), [depth, rgb],
                                                      delta=1e-6)
    for theo, num in zip(theoretical, numerical):
        assert np.abs(theo).min() > 1e-3  # every depth and colour matters
        np.testing.assert_allclose(theo, num, atol=1e-6)


# ---------------------------------------------------------------------------------------- render, errors


def test_render_contract():
    rng = np.random.default_rng(7)
    for dtype in (tf.float32, tf.float64):
        xyz, rgb, pose = random_scene(rng, 3, 50, dtype)
        out = projection.render(xyz, rgb, pose, image_size=48)
        assert set(out) == {"mask", "image", "uvw"}
        assert out["mask"].shape == (3, 48, 48) and out["image"].shape == (3, 48, 48, 3)
        assert all(value.dtype == dtype for value in out.values())
        np.testing.assert_array_equal(out["uvw"].numpy(), camera.project(xyz, pose, 48).numpy())


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="method"):
        projection.render(tf.zeros([1, 2, 3]), tf.zeros([1, 2, 3]), tf.zeros([1, 2]), method="dense")
    with pytest.raises(ValueError, match="window"):
        projection.project_fused(tf.zeros([1, 2, 3]), tf.zeros([1, 2, 3]), 32, sigma_sq=40.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        projection.project_fused(tf.zeros([1, 2, 3], tf.float16), tf.zeros([1, 2, 3]), 32)
    for function in SILHOUETTES.values():
        with pytest.raises(ValueError, match=r"uvw must be \[B, N, 3\]"):
            function(tf.zeros([2, 3]), 32)
        with pytest.raises(ValueError, match="image_size"):
            function(tf.zeros([1, 2, 3]), 0)
    for function in COLOURS.values():
        with pytest.raises(ValueError, match=r"uvw must be \[B, N, 3\]"):
            function(tf.zeros([1, 2, 2]), tf.zeros([1, 2, 3]), 32)
    with pytest.raises(ValueError, match="sigma_sq"):
        projection.splat_radius(0.0)
    with pytest.raises(ValueError, match="tolerance"):
        projection.splat_radius(0.4, tolerance=0.0)
