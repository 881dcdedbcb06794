"""Tests of the Projection custom op (losses/ops/projection_*; model.projection's "fused" form) beyond what
test_projection.py runs on every form: ties, empty images, single points and batches, NaN, independence of the
thread split, a float64 gradient check of both outputs at once, the op's own input checks, the "auto" choice,
and (marked gpu) the CUDA kernel against the CPU kernel.
"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from losses.ops import loader
from geometry import camera
from model import projection

pytestmark = pytest.mark.usefixtures("projection_library")


def _scene(rng, batch, n_points, dtype, extent=0.6):
    xyz = tf.constant(rng.uniform(-extent, extent, (batch, n_points, 3)), dtype)
    rgb = tf.constant(rng.uniform(0.0, 1.0, (batch, n_points, 3)), dtype)
    pose = tf.constant(np.stack([rng.uniform(-np.pi, np.pi, batch), rng.uniform(-0.35, 0.7, batch)], -1), dtype)
    return xyz, rgb, pose


def _render_and_grads(method, xyz, rgb, pose, size, seed):
    """render() of a method and the gradients of a fixed random linear loss of both images (xyz, rgb, pose)."""
    rng = np.random.default_rng(seed)
    batch = xyz.shape[0]
    weights_mask = tf.constant(rng.normal(size=(batch, size, size)), xyz.dtype)
    weights_image = tf.constant(rng.normal(size=(batch, size, size, 3)), xyz.dtype)
    with tf.GradientTape() as tape:
        tape.watch([xyz, rgb, pose])
        out = projection.render(xyz, rgb, pose, size, method)
        loss = tf.reduce_sum(weights_mask * out["mask"]) + tf.reduce_sum(weights_image * out["image"])
    return out, tape.gradient(loss, [xyz, rgb, pose])


def _assert_close_to_faithful(fused, faithful, value_tol, grad_tol):
    (out, grads), (ref, ref_grads) = fused, faithful
    for key in ("mask", "image"):
        np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), atol=value_tol, rtol=0, err_msg=key)
    for name, grad, ref_grad in zip(("xyz", "rgb", "pose"), grads, ref_grads):
        scale = max(1.0, float(np.abs(ref_grad.numpy()).max()))  # relative where gradients are large
        np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), atol=grad_tol * scale, rtol=0, err_msg=name)


@pytest.mark.parametrize("dtype,value_tol,grad_tol", [(tf.float32, 1e-5, 1e-4), (tf.float64, 1e-9, 1e-9)])
@pytest.mark.parametrize("batch,n_points,size,seed", [
    (1, 1, 32, 0), (3, 1, 32, 1), (1, 2, 16, 2), (1, 700, 64, 3), (5, 90, 32, 4), (2, 1024, 64, 5),
])
def test_fused_equals_faithful_at_random_poses(dtype, value_tol, grad_tol, batch, n_points, size, seed):
    xyz, rgb, pose = _scene(np.random.default_rng(seed), batch, n_points, dtype)
    fused = _render_and_grads("fused", xyz, rgb, pose, size, seed)
    faithful = _render_and_grads("faithful", xyz, rgb, pose, size, seed)
    _assert_close_to_faithful(fused, faithful, value_tol, grad_tol)


def test_ties_at_one_pixel_and_depth_share_equally():
    # Three points at (10, 20) with depth 2: the silhouette sums them, tanh(3) at (10, 20); the well's softmax
    # gives each the weight 1/3 (up to the baseline's 1e-8 renormalisation), so the colour is their mean.
    colours = np.array([[0.9, 0.0, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 0.3]])
    uvw = tf.constant([[[10.0, 20.0, 2.0]] * 3], tf.float64)
    rgb = tf.constant(colours[None], tf.float64)
    mask, image = projection.project_fused(uvw, rgb, 32)
    np.testing.assert_allclose(mask.numpy()[0, 10, 20], np.tanh(3.0), rtol=1e-12)
    np.testing.assert_allclose(mask.numpy()[0, 11, 20], np.tanh(3.0 * np.exp(-1.25)), rtol=1e-12)
    np.testing.assert_allclose(image.numpy()[0, 9:12, 19:22], np.broadcast_to(colours.mean(0), (3, 3, 3)),
                               rtol=1e-7)
    assert np.all(image.numpy()[0, 12:] == 0.0)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_ties_in_position_and_depth_match_faithful_with_gradients(dtype):
    # Points stacked on integer and half-integer positions, equal and nearly equal depths, wells overlapping.
    uvw = tf.constant([[[5.0, 5.0, 2.0], [5.0, 5.0, 2.0], [5.0, 5.0, 2.0], [6.0, 5.0, 2.0], [5.5, 6.5, 2.0],
                        [5.5, 6.5, 2.01], [7.0, 7.0, 1.5], [7.0, 7.0, 1.5]]], dtype)
    rgb = tf.constant(np.random.default_rng(0).uniform(0, 1, (1, 8, 3)), dtype)
    weights = (tf.constant(np.random.default_rng(1).normal(size=(1, 12, 12)), dtype),
               tf.constant(np.random.default_rng(2).normal(size=(1, 12, 12, 3)), dtype))
    results = {}
    for method in ("fused", "faithful"):
        with tf.GradientTape() as tape:
            tape.watch([uvw, rgb])
            if method == "fused":
                mask, image = projection.project_fused(uvw, rgb, 12)
            else:
                mask, image = projection.silhouette_faithful(uvw, 12), projection.colour_faithful(uvw, rgb, 12)
            loss = tf.reduce_sum(weights[0] * mask) + tf.reduce_sum(weights[1] * image)
        results[method] = [mask.numpy(), image.numpy()] + [g.numpy() for g in tape.gradient(loss, [uvw, rgb])]
    tol = 1e-5 if dtype == tf.float32 else 1e-10
    for got, want in zip(results["fused"], results["faithful"]):
        np.testing.assert_allclose(got, want, atol=tol * max(1.0, np.abs(want).max()), rtol=0)


@pytest.mark.parametrize("batch,n_points", [(2, 0), (0, 5), (1, 0)])
def test_empty_inputs_give_empty_images(batch, n_points):
    uvw = tf.zeros([batch, n_points, 3])
    rgb = tf.zeros([batch, n_points, 3])
    with tf.GradientTape() as tape:
        tape.watch([uvw, rgb])
        mask, image = projection.project_fused(uvw, rgb, 16)
        loss = tf.reduce_sum(mask) + tf.reduce_sum(image)
    grads = tape.gradient(loss, [uvw, rgb])
    assert mask.shape == (batch, 16, 16) and image.shape == (batch, 16, 16, 3)
    assert np.all(mask.numpy() == 0.0) and np.all(image.numpy() == 0.0)
    assert grads[0].shape == (batch, n_points, 3) and grads[1].shape == (batch, n_points, 3)


def test_points_off_the_image_or_beyond_the_far_depth_leave_it_empty():
    # Off the image on every side, far beyond int32, and (last) on the image but at w + 1 >= 10: no colour.
    uvw = tf.constant([[[-30.0, 5.0, 2.0], [40.0, 5.0, 2.0], [5.0, -30.0, 2.0], [5.0, 40.0, 2.0],
                        [3e9, -3e9, 2.0], [np.inf, 5.0, 2.0], [5.0, 5.0, 9.0]]], tf.float32)
    rgb = tf.ones([1, 7, 3])
    with tf.GradientTape() as tape:
        tape.watch([uvw, rgb])
        mask, image = projection.project_fused(uvw, rgb, 16)
        loss = tf.reduce_sum(mask) + tf.reduce_sum(image)
    grad_uvw, grad_rgb = tape.gradient(loss, [uvw, rgb])
    assert np.all(image.numpy() == 0.0) and np.all(grad_rgb.numpy() == 0.0)
    # the silhouette ignores the depth: only the last point's splat, as if it were alone
    np.testing.assert_array_equal(mask.numpy(), projection.silhouette_fused(uvw[:, 6:], 16).numpy())
    assert mask.numpy()[0, 5, 5] > 0.7
    assert np.all(grad_uvw.numpy()[0, :6] == 0.0) and np.all(np.isfinite(grad_uvw.numpy()))


def test_nan_coordinates_spread_as_in_the_dense_form():
    """A NaN u or v makes the whole mask of its batch element NaN (as the dense form's sum does) and leaves its
    colour image as without that point; a NaN w makes the whole colour image of its element NaN. Other batch
    elements are untouched, and the gradients of an affected element are not finite (the trainer's guard)."""
    rng = np.random.default_rng(3)
    uvw = rng.uniform(4, 12, (3, 30, 3))
    uvw[..., 2] = rng.uniform(1.9, 2.1, (3, 30))
    clean = tf.constant(uvw)
    uvw[0, 7, 0] = np.nan  # element 0: NaN u
    uvw[1, 3, 2] = np.nan  # element 1: NaN w
    uvw = tf.constant(uvw)
    rgb = tf.constant(rng.uniform(0, 1, (3, 30, 3)))
    with tf.GradientTape() as tape:
        tape.watch(uvw)
        mask, image = projection.project_fused(uvw, rgb, 16)
        loss = tf.reduce_sum(mask) + tf.reduce_sum(image)
    grad = tape.gradient(loss, uvw).numpy()
    mask, image = mask.numpy(), image.numpy()
    ref_mask, ref_image = projection.project_fused(clean, rgb, 16)
    assert np.all(np.isnan(mask[0])) and np.all(np.isnan(image[1]))
    np.testing.assert_allclose(mask[0], projection.silhouette_faithful(uvw, 16).numpy()[0], equal_nan=True)
    np.testing.assert_allclose(image[0], projection.colour_faithful(uvw[:1], rgb[:1], 16).numpy()[0], atol=1e-12)
    np.testing.assert_array_equal(mask[1], ref_mask.numpy()[1])
    np.testing.assert_array_equal(mask[2], ref_mask.numpy()[2])
    np.testing.assert_array_equal(image[2], ref_image.numpy()[2])
    assert not np.all(np.isfinite(grad[0])) and not np.all(np.isfinite(grad[1])) and np.all(np.isfinite(grad[2]))


def test_results_do_not_depend_on_the_batch_or_thread_split():
    """The CPU kernel cuts an image into more row bands when the batch is small; every pixel still sums its
    points in point order, so a batch of 6 and its elements rendered one by one agree bit for bit."""
    xyz, rgb, pose = _scene(np.random.default_rng(4), 6, 500, tf.float32, extent=0.5)
    uvw = camera.project(xyz, pose, 64)
    weights = tf.constant(np.random.default_rng(5).normal(size=(6, 64, 64)), tf.float32)

    def run(u, c, w):
        with tf.GradientTape() as tape:
            tape.watch([u, c])
            mask, image = projection.project_fused(u, c, 64)
            loss = tf.reduce_sum(w * mask) + tf.reduce_sum(w[..., None] * image)
        return [mask.numpy(), image.numpy()] + [g.numpy() for g in tape.gradient(loss, [u, c])]

    whole = run(uvw, rgb, weights)
    for b in range(6):
        for got, want in zip(run(uvw[b:b + 1], rgb[b:b + 1], weights[b:b + 1]), whole):
            np.testing.assert_array_equal(got[0], want[b])


def test_silhouette_alone_equals_the_full_call():
    xyz, rgb, pose = _scene(np.random.default_rng(6), 2, 300, tf.float32)
    uvw = camera.project(xyz, pose, 32)
    np.testing.assert_array_equal(projection.silhouette_fused(uvw, 32).numpy(),
                                  projection.project_fused(uvw, rgb, 32)[0].numpy())


def test_float64_gradient_check_of_both_images():
    """tf.test.compute_gradient of ⟨a, mask⟩ + ⟨b, image⟩ w.r.t. uvw and rgb: 25 points crowded into a 10 px
    image so that windows and wells overlap; u, v kept 0.1 px away from the half-integers (where the window
    moves) and integers (where a well's edge lies)."""
    rng = np.random.default_rng(7)
    uv = rng.integers(1, 9, (1, 25, 2)) + rng.uniform(0.1, 0.4, (1, 25, 2)) * rng.choice([-1, 1], (1, 25, 2))
    uvw = tf.constant(np.concatenate([uv, rng.uniform(1.95, 2.05, (1, 25, 1))], -1))
    rgb = tf.constant(rng.uniform(0, 1, (1, 25, 3)))
    a = tf.constant(rng.normal(size=(1, 10, 10)))
    b = tf.constant(rng.normal(size=(1, 10, 10, 3)))

    def loss(uvw, rgb):
        mask, image = projection.project_fused(uvw, rgb, 10)
        return tf.reduce_sum(a * mask) + tf.reduce_sum(b * image)

    theoretical, numerical = tf.test.compute_gradient(loss, [uvw, rgb], delta=1e-6)
    for theo, num in zip(theoretical, numerical):
        assert np.abs(theo).max() > 1e-2
        np.testing.assert_allclose(theo, num, atol=1e-6 * np.abs(theo).max())


def test_op_checks_its_inputs():
    op = loader.load("projection").module
    params = tf.constant([0.4, 100.0, 1.0, 10.0, 1e-5, 1e-8])
    attrs = dict(image_size=8, splat_radius=4, well_radius=1)
    cases = [
        (tf.zeros([1, 4, 2]), tf.zeros([1, 4, 3]), params, r"uvw|3"),
        (tf.zeros([1, 4, 3]), tf.zeros([1, 5, 3]), params, "colours|Dimensions"),
        (tf.zeros([1, 4, 3]), tf.zeros([1, 4, 3]), params[:5], "params|6"),
    ]
    for uvw, rgb, p, match in cases:
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
            op.projection(uvw, rgb, p, **attrs)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="splat_radius"):
        op.projection(tf.zeros([1, 4, 3]), tf.zeros([1, 4, 3]), params, image_size=8, splat_radius=33,
                      well_radius=1)
    mask, image, state = op.projection(tf.zeros([1, 4, 3]), tf.zeros([1, 4, 3]), params, **attrs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="grad_mask must have shape"):
        op.projection_grad(tf.zeros([1, 4, 3]), tf.zeros([1, 4, 3]), params, mask, image, state,
                           tf.zeros([1, 8, 7]), tf.zeros_like(image), **attrs)


def test_auto_uses_the_op_when_it_loads_and_logs_why_not(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="model.projection")
    if tf.config.list_physical_devices("GPU") and not loader.load("projection").cuda:
        pytest.skip("a GPU is visible and the op has no CUDA kernel: 'auto' rightly falls back to 'fast'")
    assert projection._auto_method.__wrapped__() == "fused"
    assert "uses the custom op Projection" in caplog.text
    monkeypatch.setattr(loader, "load", lambda name="nn_distance": loader.OpLibrary(None, "not built here"))
    assert projection._auto_method.__wrapped__() == "fast"
    assert "uses the 'fast' TF form: not built here" in caplog.text
    with pytest.raises(RuntimeError, match="'fused' is unavailable: not built here"):
        projection.project_fused(tf.zeros([1, 1, 3]), tf.zeros([1, 1, 3]), 8)


@pytest.mark.gpu
def test_cuda_kernel_matches_cpu_kernel():
    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("no GPU visible to TensorFlow")
    if not loader.load("projection").cuda:
        pytest.skip("the op was built without its CUDA kernel (see `python -m losses.ops.build`)")
    for dtype, tol in ((tf.float32, 1e-5), (tf.float64, 1e-12)):
        xyz, rgb, pose = _scene(np.random.default_rng(8), 4, 2000, dtype, extent=0.5)
        results = {}
        for device in ("/GPU:0", "/CPU:0"):
            with tf.device(device):
                out, grads = _render_and_grads("fused", xyz, rgb, pose, 64, seed=9)
            results[device] = [out["mask"].numpy(), out["image"].numpy()] + [g.numpy() for g in grads]
        for got, want in zip(results["/GPU:0"], results["/CPU:0"]):
            np.testing.assert_allclose(got, want, atol=tol * max(1.0, np.abs(want).max()), rtol=0)
