"""Reconstruction and pose networks (baseline §3, §4, §14)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.pose_net import build_pose_net
from model.recon_net import build_recon_net


@pytest.fixture(scope="module")
def recon():
    keras_seed()
    return build_recon_net()


@pytest.fixture(scope="module")
def pose():
    keras_seed()
    return build_pose_net()


def keras_seed():
    keras.utils.set_random_seed(0)


def images(batch=2, size=64, seed=0):
    return tf.constant(np.random.default_rng(seed).random((batch, size, size, 3)), tf.float32)


def test_parameter_counts_match_baseline(recon, pose):
    assert recon.count_params() == 4_445_312                       # §3: 1,866,432 + 2,578,880
    assert pose.count_params() == 1_470_402                        # §4
    structure = sum(int(np.prod(v.shape)) for layer in ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8")
                    for v in recon.get_layer(layer).weights)
    assert structure == 1_866_432


def test_output_shapes_and_ranges(recon, pose):
    out = recon(images())
    assert set(out) == {"xyz", "rgb", "enc_feat"}
    assert out["xyz"].shape == (2, 1024, 3) and out["rgb"].shape == (2, 1024, 3)
    assert out["enc_feat"].shape == (2, 256)
    rgb = out["rgb"].numpy()
    assert rgb.min() > 0.0 and rgb.max() < 1.0
    assert recon.get_layer("s4").output.shape[1:] == (4, 4, 256)    # 'same' padding, stride 2: 64→4
    p = pose(images())["pose"]
    assert p.shape == (2, 2)
    assert np.all(np.abs(p.numpy()) < math.pi)


def test_pose_is_pi_tanh_of_the_last_layer():
    keras_seed()
    net = build_pose_net()
    last = net.get_layer("p8")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 1e4, bias + np.array([50.0, -0.3], np.float32)])
    p = net(images())["pose"].numpy()
    # a saturated unit reaches ±π (float32 tanh rounds to 1), never beyond; a small one is π·tanh(·)
    assert np.all(np.abs(p) <= np.float32(math.pi))
    assert np.allclose(np.abs(p[:, 0]), math.pi, atol=1e-5)


def test_initialisers_are_tflearn_defaults(recon):
    # conv: U(±sqrt(3/fan_in)); s4 fan_in = 5·5·128
    limit = math.sqrt(3.0 / (5 * 5 * 128))
    k4 = recon.get_layer("s4").kernel.numpy()
    assert np.abs(k4).max() <= limit
    assert abs(k4.std() - limit / math.sqrt(3.0)) < 0.02 * limit
    # dense: normal(0, 0.02) truncated at 2σ, std 0.02·0.8796
    k5 = recon.get_layer("s5").kernel.numpy()
    assert np.abs(k5).max() <= 0.04 + 1e-7
    assert abs(k5.std() - 0.02 * 0.8796) < 2e-4
    for layer in ("s1", "s5", "c7"):
        assert not np.any(recon.get_layer(layer).bias.numpy())


def test_he_dense_init_departure():
    """--dense_init he: He-normal ReLU dense layers, Glorot-uniform linear heads, convolutions unchanged."""
    keras.utils.set_random_seed(3)
    recon, pose = build_recon_net(dense_init="he"), build_pose_net(dense_init="he")
    assert recon.count_params() == 4_445_312 and pose.count_params() == 1_470_402
    # Keras's He normal: truncated at 2σ and rescaled, so that the std is sqrt(2/fan_in) itself
    for net, layer, fan_in in ((recon, "s5", 4 * 4 * 256), (recon, "s6", 128), (recon, "c3", 16 * 16 * 64),
                               (pose, "p7", 128)):
        k = net.get_layer(layer).kernel.numpy()
        assert abs(k.std() / math.sqrt(2.0 / fan_in) - 1) < 0.05, layer
    for net, layer, fan_in, fan_out in ((recon, "s8", 128, 3072), (recon, "c7", 128, 3072), (pose, "p8", 128, 2)):
        k = net.get_layer(layer).kernel.numpy()
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(k).max() <= limit and k.std() > 0.5 * limit / math.sqrt(3.0), layer
    limit = math.sqrt(3.0 / (5 * 5 * 128))
    assert np.abs(recon.get_layer("s4").kernel.numpy()).max() <= limit  # tflearn's conv initialiser kept
    with pytest.raises(ValueError, match="dense initialiser must be one of"):
        build_recon_net(dense_init="xavier")


def test_he_init_keeps_the_image_in_the_initial_cloud(recon):
    """The reason for the departure: with tflearn's init the image moves the initial cloud by about 1e-4
    (each 128-wide dense layer scales the signal by 0.02·sqrt(128) = 0.23), nothing beside the mean shape of
    a unit-diagonal object that the last biases learn first; with He init it moves it about 100x more."""
    rng = np.random.default_rng(0)
    batch = tf.constant(rng.random((16, 64, 64, 3)), tf.float32)

    def image_dependence(net):  # std across images of each output coordinate, in object units
        return net(batch)["xyz"].numpy().std(axis=0).mean()

    keras.utils.set_random_seed(3)
    he = build_recon_net(dense_init="he")
    assert image_dependence(he) > 10 * image_dependence(recon)


def test_declared_weight_decay_only_when_enabled(recon, pose):
    assert recon.losses == [] and pose.losses == []
    keras_seed()
    net = build_recon_net(weight_decay=True)
    assert len(net.losses) == 15                                    # every layer declares L2 (§3)
    # tflearn L2 = wd · sum(W²) / 2, kernels only; conv 1e-5, dense 1e-3
    expected = sum((1e-5 if isinstance(layer, keras.layers.Conv2D) else 1e-3)
                   * np.sum(layer.kernel.numpy() ** 2) / 2.0
                   for layer in net.layers if hasattr(layer, "kernel"))
    np.testing.assert_allclose(float(tf.add_n(net.losses)), expected, rtol=1e-5)
    assert len(build_pose_net(weight_decay=True).losses) == 8


def test_colour_depends_on_geometry_but_not_the_reverse(recon):
    x = images()
    structure = [v for name in ("s1", "s7") for v in recon.get_layer(name).trainable_weights]
    colour = [v for name in ("c1", "c6") for v in recon.get_layer(name).trainable_weights]
    with tf.GradientTape(persistent=True) as tape:
        out = recon(x)
        rgb_sum, xyz_sum = tf.reduce_sum(out["rgb"]), tf.reduce_sum(out["xyz"])
    assert all(g is not None and np.any(g.numpy()) for g in tape.gradient(rgb_sum, structure))
    assert all(g is None for g in tape.gradient(xyz_sum, colour))


def test_weights_are_shared_across_calls(recon):
    n_vars = len(recon.variables)
    a, b = images(1, seed=1), images(1, seed=2)
    together = recon(tf.concat([a, b], axis=0))
    np.testing.assert_allclose(recon(b)["xyz"].numpy()[0], together["xyz"].numpy()[1], atol=1e-5)
    assert len(recon.variables) == n_vars


def test_other_sizes_build():
    net = build_recon_net(image_size=32, n_points=16, bottleneck=8)
    out = net(images(1, 32))
    assert out["xyz"].shape == (1, 16, 3) and out["enc_feat"].shape == (1, 16)
