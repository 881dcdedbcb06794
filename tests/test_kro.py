"""K-Random-Octant loss (mission.md; baseline §11.1): goldens, the fork's construction, invariances,
degenerate clouds, gradients, and k drawn inside a compiled step."""

import functools
import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from losses.kro import _axis_angles, _Partition, kro_loss, sample_k

CORNERS = np.array(list(itertools.product((0.0, 2.0), repeat=3)))          # x outermost, z innermost
GT = np.concatenate([CORNERS, [[1.0, 1.0, 1.1]]])[None]                    # [1, 9, 3], centre point last
DIAG = 2.0 * math.sqrt(3.0)


def fork_reference(gt, pred, k):
    """The fork's construction with its Python loops (FORK get_k_random_octant_loss), in numpy."""
    def score(cloud):
        lo, hi = cloud.min(0), cloud.max(0)
        step = (hi - lo) / k
        centres = [lo + (np.array([p, q, r]) + 0.5) * step
                   for p in range(k) for q in range(k) for r in range(k)]
        anchors = [cloud[np.argmin(np.linalg.norm(cloud - c, axis=1))] for c in centres]
        o = cloud[np.argmin(np.linalg.norm(cloud - (lo + (hi - lo) / 2), axis=1))]
        return sum(np.linalg.norm(a - o) for a in anchors)
    return np.mean([score(g) - score(p) for g, p in zip(gt, pred)])


def random_cloud(n, seed, batch=2):
    return np.random.default_rng(seed).normal(size=(batch, n, 3)) * [1.0, 0.5, 2.0]


def analytic_grad(f, x):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = f(x)
    return tape.gradient(y, x).numpy()


@functools.lru_cache(maxsize=None)
def compiled(variant, max_k=3):
    """One traced (loss, d loss / d pred) per variant and dtype, k fed as a tensor."""
    @tf.function(reduce_retracing=True)
    def value_and_grad(gt, pred, k):
        with tf.GradientTape() as tape:
            tape.watch(pred)
            loss = kro_loss(gt, pred, k, variant=variant, seed=1, max_k=max_k)
        return loss, tape.gradient(loss, pred)
    return value_and_grad


def check_gradient_float64(variant, gt, pred, k):
    """Analytic gradient w.r.t. pred against central differences (δ = 1e-6), float64."""
    f = compiled(variant)
    gt, k = tf.constant(gt, tf.float64), tf.constant(k)
    analytic = f(gt, tf.constant(pred), k)[1].numpy()
    numeric = np.zeros_like(pred)
    for idx in np.ndindex(pred.shape):
        e = np.zeros_like(pred)
        e[idx] = 1e-6
        numeric[idx] = float(f(gt, tf.constant(pred + e), k)[0] - f(gt, tf.constant(pred - e), k)[0]) / 2e-6
    np.testing.assert_allclose(analytic, numeric, atol=1e-6)
    assert np.abs(analytic).max() > 0


# ---------------------------------------------------------------- faithful

def test_faithful_golden_k2():
    # bbox [0,2]³, k = 2: cells centred at {0.5,1.5}³. o = (1,1,1.1). Cells with z-centre 1.5 pick o
    # itself (d² 0.66 < 0.75 to a corner); the 4 with z-centre 0.5 pick corners (x,y,0) at distance √3.21.
    s_gt = 4.0 * math.sqrt(3.21)
    pred = GT * 2.0 + 1.0                                                   # s scales with the cloud
    assert float(kro_loss(GT, pred, 2)) == pytest.approx(s_gt - 2.0 * s_gt, rel=1e-12)
    # the report's formula squares the distances: 4·3.21 for gt, 4·3.21·4 for pred
    assert float(kro_loss(GT, pred, 2, squared=True)) == pytest.approx(12.84 - 51.36, rel=1e-12)


def test_faithful_k1_is_zero():
    # one cell: its centre is the bbox centre, so its anchor is the centre point itself
    assert float(kro_loss(random_cloud(30, 0), random_cloud(20, 1), 1)) == 0.0


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_faithful_matches_fork_loops(k):
    gt, pred = random_cloud(40, 2), random_cloud(25, 3)                     # N ≠ M
    np.testing.assert_allclose(float(kro_loss(gt, pred, k)), fork_reference(gt, pred, k), rtol=1e-10)


def test_faithful_is_unbounded_below():
    gt, pred = random_cloud(30, 4), random_cloud(30, 5)
    values = [float(kro_loss(gt, pred * alpha, 4)) for alpha in (1.0, 10.0, 1e3, 1e6)]
    assert all(b < a for a, b in zip(values, values[1:]))
    # exactly s(gt) − α·s(pred): linear in the scale of the prediction, so → −∞
    s_gt = float(kro_loss(gt, pred * 0.0, 4))
    np.testing.assert_allclose(values[-1], s_gt - 1e6 * (s_gt - values[0]), rtol=1e-9)
    assert values[-1] < -1e5


def test_faithful_nan_gradient_for_odd_k_like_the_fork():
    gt, pred = random_cloud(30, 6), random_cloud(30, 7)

    def grad(k, **kw):
        return analytic_grad(lambda p: kro_loss(gt, p, k, **kw), pred)
    assert np.isnan(grad(3)).any()                 # middle cell's anchor = centre point, tf.norm'(0)
    assert np.isfinite(grad(3, safe_norm=True)).all()
    assert np.isfinite(grad(2)).all()


def test_faithful_gradient_float64():
    check_gradient_float64("faithful", random_cloud(12, 8, batch=1), random_cloud(10, 9, batch=1), 2)


# ---------------------------------------------------------------- sound

def test_sound_golden_k2():
    # gt as in the faithful golden; pred mirrors the centre point to z = 0.9. Anchors are searched in
    # their cell: the cell holding the centre point picks it (distance 0), the others their corner.
    pred = np.concatenate([CORNERS, [[1.0, 1.0, 0.9]]])[None]
    a, b = math.sqrt(3.21), math.sqrt(2.81)
    expected = (6 * abs(a - b) + 2 * a) / (8 * DIAG)
    assert float(kro_loss(GT, pred, 2, variant="sound")) == pytest.approx(expected, rel=1e-12)
    squared = (6 * (a - b) ** 2 + 2 * a * a) / (8 * DIAG ** 2)
    assert float(kro_loss(GT, pred, 2, variant="sound", cell_penalty="squared")) == pytest.approx(
        squared, rel=1e-12)


def test_sound_masks_empty_cells():
    # move corner (0,0,0) to (1.2,0,0): cell (0,0,0) becomes empty in pred (masked: 7 cells remain),
    # cell (1,0,0) now anchors (1.2,0,0) at distance 1.5 from o instead of (2,0,0) at √3.21.
    pred = GT.copy()
    pred[0, 0] = [1.2, 0.0, 0.0]
    expected = abs(math.sqrt(3.21) - 1.5) / DIAG / 7
    assert float(kro_loss(GT, pred, 2, variant="sound")) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("variant", ["sound", "random_partition", "anchor_angle"])
def test_normalised_variants_invariant_to_translation_scale_and_order(variant):
    gt, pred = random_cloud(40, 10), random_cloud(30, 11)
    perm = np.random.default_rng(0).permutation(30)

    def loss(p):
        return float(kro_loss(gt, p, 3, variant=variant, seed=5))
    base = loss(pred)
    assert base > 0
    assert loss(pred * 3.7 + [1.0, -2.0, 0.5]) == pytest.approx(base, rel=1e-9)
    assert loss(pred * 1e-6) == pytest.approx(base, rel=1e-9)              # the study's collapsed scale
    assert loss(pred[:, perm]) == pytest.approx(base, rel=1e-12)
    assert float(kro_loss(gt, gt, 3, variant=variant, seed=5)) == 0.0


def test_faithful_invariant_to_point_order():
    gt, pred = random_cloud(40, 12), random_cloud(30, 13)
    perm = np.random.default_rng(1).permutation(30)
    assert float(kro_loss(gt, pred[:, perm], 3)) == pytest.approx(float(kro_loss(gt, pred, 3)), rel=1e-12)


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5),
       variant=st.sampled_from(["sound", "random_partition", "anchor_angle"]))
def test_normalised_variants_are_bounded(seed, k, variant):
    gt, pred = random_cloud(20, seed), random_cloud(15, seed + 1) ** 3       # skewed clouds
    value = float(kro_loss(gt, pred, k, variant=variant, seed=seed))
    assert 0.0 <= value <= (2.0 if variant == "anchor_angle" else 1.0)


DEGENERATE = {
    "all_points_equal": np.full((2, 16, 3), 0.3),
    "flat": np.concatenate([np.random.default_rng(0).random((2, 16, 2)), np.zeros((2, 16, 1))], -1),
    "micrometre": np.random.default_rng(1).random((2, 16, 3)) * 1e-6,
    "a_line": np.stack([np.linspace(0, 1, 16)] + [np.zeros(16)] * 2, -1)[None].repeat(2, 0),
}


@pytest.mark.parametrize("variant", ["sound", "random_partition", "anchor_angle"])
@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_normalised_variants_finite_on_degenerate_clouds(variant, case):
    pred = tf.constant(DEGENERATE[case], tf.float32)
    for gt in (random_cloud(20, 14), DEGENERATE[case]):
        for k in (1, 2, 3):
            value, grad = compiled(variant)(tf.constant(gt, tf.float32), pred, tf.constant(k))
            assert math.isfinite(float(value)) and 0.0 <= float(value) <= 2.0
            assert np.isfinite(grad.numpy()).all(), (case, variant, k)


@pytest.mark.parametrize("variant", ["sound", "anchor_angle"])
def test_sound_gradient_float64(variant):
    check_gradient_float64(variant, random_cloud(14, 15, batch=1), random_cloud(12, 16, batch=1), 2)


# ---------------------------------------------------------------- future-work variants

def test_random_partition_cuts_are_sorted_uniform_spacings():
    part = _Partition(tf.constant(4), 6, 3, tf.float64, tf.constant([7, 0]))
    cuts = part.cuts.numpy()
    assert np.isinf(cuts[..., 3:]).all()                                    # k − 1 = 3 cuts used
    used = cuts[..., :3]
    assert ((used > 0) & (used < 1)).all() and (np.diff(used, axis=-1) > 0).all()
    edges = np.concatenate([np.zeros((3, 3, 1)), used, np.ones((3, 3, 1))], -1)
    np.testing.assert_allclose(part.centres.numpy()[..., :4], (edges[..., 1:] + edges[..., :-1]) / 2)
    assert part.cell_valid.numpy().sum() == 64


def test_random_partition_is_seeded():
    gt, pred = random_cloud(40, 17), random_cloud(30, 18)
    a = float(kro_loss(gt, pred, 3, variant="random_partition", seed=1))
    assert float(kro_loss(gt, pred, 3, variant="random_partition", seed=1)) == a
    assert float(kro_loss(gt, pred, 3, variant="random_partition", seed=2)) != a
    with pytest.raises(ValueError, match="seed"):
        kro_loss(gt, pred, 3, variant="random_partition")


def test_axis_angles_golden():
    v = tf.constant([[1.0, 0, 0], [0, 2.0, 0], [1.0, 1.0, 0], [0, 0, 0], [-1.0, 0, 0]], tf.float64)
    h = math.pi / 2
    expected = [[0, h, h], [h, 0, h], [h / 2, h / 2, h], [0, 0, 0], [math.pi, h, h]]
    np.testing.assert_allclose(_axis_angles(v).numpy(), expected, atol=1e-12)


def test_anchor_angle_adds_the_angle_term():
    gt, pred = random_cloud(30, 19), random_cloud(30, 20)
    sound = float(kro_loss(gt, pred, 3, variant="sound"))
    assert float(kro_loss(gt, pred, 3, variant="anchor_angle", angle_weight=0.0)) == pytest.approx(sound)
    assert float(kro_loss(gt, pred, 3, variant="anchor_angle")) > sound


# ---------------------------------------------------------------- k drawn inside the compiled step

def test_sample_k_in_tf_function_varies_without_retracing():
    gen = tf.random.Generator.from_seed(3)
    gt = tf.constant(random_cloud(30, 21), tf.float32)
    pred = tf.constant(random_cloud(20, 22), tf.float32)

    @tf.function
    def step():
        k = sample_k(5, 1, gen)
        return k, kro_loss(gt, pred, k, max_k=5), kro_loss(gt, pred, k, variant="sound", max_k=5)

    seen = set()
    for _ in range(12):
        k, faithful, sound = step()
        k = int(k)
        seen.add(k)
        np.testing.assert_allclose(float(faithful), float(kro_loss(gt, pred, k)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(float(sound), float(kro_loss(gt, pred, k, variant="sound")), atol=1e-6)
    assert len(seen) >= 3 and seen <= set(range(1, 6))
    assert step.experimental_get_tracing_count() == 1


def test_sample_k_distribution():
    gen = tf.random.Generator.from_seed(0)
    draw = tf.function(lambda: tf.stack([sample_k(4, 2, gen), sample_k(4, 2, gen, round_continuous=True)]))
    draws, rounded = np.array([draw().numpy() for _ in range(600)]).T
    assert set(draws) == {2, 3, 4}
    counts = np.bincount(rounded, minlength=5)[2:]
    assert counts[1] > 1.5 * counts[0] and counts[1] > 1.5 * counts[2]      # ends half as likely


def test_errors_are_named():
    gt = random_cloud(10, 23)
    with pytest.raises(ValueError, match="max_k"):
        tf.function(lambda k: kro_loss(gt, gt, k))(tf.constant(2))
    with pytest.raises(ValueError, match="variant"):
        kro_loss(gt, gt, 2, variant="octree")
    with pytest.raises(ValueError, match="k <= max_k"):
        kro_loss(gt, gt, 4, max_k=3)


@pytest.mark.parametrize("variant", ["faithful", "random_partition"])
def test_xla_compiled_step_matches_eager(variant):
    gt = tf.constant(random_cloud(40, 24), tf.float32)
    pred = tf.constant(random_cloud(30, 25), tf.float32)
    fn = tf.function(lambda k: kro_loss(gt, pred, k, variant=variant, max_k=4, seed=3), jit_compile=True)
    for k in (1, 3):
        np.testing.assert_allclose(float(fn(tf.constant(k))),
                                   float(kro_loss(gt, pred, k, variant=variant, max_k=4, seed=3)),
                                   rtol=1e-5, atol=1e-6)
