"""Tests of the references that detect collapse (evaluation/references.py) and of the verdict
(evaluation/verdict.py): goldens on clouds small enough to compute by hand, the draws (seeded, never the same
model), and the protocol on synthetic predictions: the GT plus a little noise must beat the shuffled reference
with a spread ratio near 1; one fixed cloud for every input must score exactly its shuffled reference with a
spread ratio of 0 and be called not learned."""

import numpy as np
import pytest

from evaluation import references, verdict
from evaluation.alignment import GlobalRotation
from evaluation.predictions import Predictions
from evaluation.protocol import Protocol, evaluate_gt_type


def _point(x):
    return np.array([[x, 0.0, 0.0]])


def test_other_model_draws_all_others_when_few_and_never_the_same_model():
    ids = np.array(["a", "a", "b", "c"])
    draws = references.other_model_draws(ids, 10, np.random.default_rng(0))
    assert [d.tolist() for d in draws] == [[2, 3], [2, 3], [0, 1, 3], [0, 1, 2]]


def test_other_model_draws_subsample_is_seeded_and_excludes_the_same_model():
    ids = np.repeat([f"m{i}" for i in range(30)], 3)  # 30 models, 3 views each
    first = references.other_model_draws(ids, 5, np.random.default_rng(7))
    again = references.other_model_draws(ids, 5, np.random.default_rng(7))
    other = references.other_model_draws(ids, 5, np.random.default_rng(8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    for i, drawn in enumerate(first):
        assert len(drawn) == 5 and len(set(drawn)) == 5
        assert not np.any(ids[drawn] == ids[i])
    with pytest.raises(ValueError, match="at least 1"):
        references.other_model_draws(ids, 0, np.random.default_rng(0))


def test_shuffled_per_model_golden():
    # Model a: GT at x=0, prediction at 0.1; model b: GT at 1, prediction at 1.1 (one point each).
    gts, preds = [_point(0.0), _point(1.0)], [_point(0.1), _point(1.1)]
    out = references.shuffled_per_model(gts, preds, [np.array([1]), np.array([0])])
    np.testing.assert_allclose(out["fwd"], [1.1 ** 2, 0.9 ** 2])  # GT a vs prediction b; GT b vs prediction a
    np.testing.assert_allclose(out["bwd"], [1.1 ** 2, 0.9 ** 2])
    np.testing.assert_allclose(out["chamfer"], [2 * 1.21, 2 * 0.81])
    # The mean over several drawn predictions: GT at 0 against predictions at 1 and 2 -> (1 + 4) / 2 each way.
    out = references.shuffled_per_model([_point(0.0)] * 3, [_point(0.0), _point(1.0), _point(2.0)],
                                        [np.array([1, 2])] * 3)
    np.testing.assert_allclose(out["fwd"], 2.5)
    np.testing.assert_allclose(out["chamfer"], 5.0)


def test_model_pairs_one_example_per_model_and_capped():
    ids = np.array(["a", "a", "b", "c", "c", "c"])
    pairs = references.model_pairs(ids, 10, np.random.default_rng(0))
    assert pairs.shape == (3, 2)  # 3 models -> 3 unordered pairs
    assert all(ids[a] != ids[b] for a, b in pairs)
    assert {frozenset(ids[p]) for p in pairs} == {frozenset("ab"), frozenset("ac"), frozenset("bc")}
    many = np.repeat([f"m{i}" for i in range(40)], 2)
    drawn = references.model_pairs(many, 25, np.random.default_rng(1))
    assert drawn.shape == (25, 2) and len({tuple(sorted(many[p])) for p in drawn}) == 25
    np.testing.assert_array_equal(drawn, references.model_pairs(many, 25, np.random.default_rng(1)))
    assert references.model_pairs(np.array(["a", "a"]), 5, np.random.default_rng(0)).shape == (0, 2)


def test_spread_golden():
    # GTs at x = 0, 1, 3: pairwise squared distances 1, 9, 4 (each counted fwd and bwd).
    gts = [_point(0.0), _point(1.0), _point(3.0)]
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    assert references.mean_pairwise_chamfer(gts, pairs) == pytest.approx(2 * (1 + 9 + 4) / 3)
    halved = [_point(0.0), _point(0.5), _point(1.5)]  # distances halved: squared distances ÷ 4
    out = references.spread(halved, gts, pairs)
    assert out["ratio"] == pytest.approx(0.25)
    assert out["gt"] == pytest.approx(1000 * 28 / 3) and out["pairs"] == 3
    assert references.spread([_point(0.2)] * 3, gts, pairs)["ratio"] == 0.0
    with pytest.raises(ValueError, match="identical"):
        references.spread(gts, [_point(0.0)] * 3, pairs)


def test_paired_comparison_golden():
    # Two models of two views each: per-model differences (2 + 4) / 2 = 3 and (2 + 4) / 2 = 3: SE 0, beats.
    out = verdict.paired_comparison(np.array([3.0, 5.0, 4.0, 6.0]), np.array([1.0, 1.0, 2.0, 2.0]),
                                    np.array(["a", "a", "b", "b"]))
    assert out == {"mean_difference": pytest.approx(3000.0), "standard_error": pytest.approx(0.0),
                   "n_models": 2, "beats": True}
    # Differences 1, 2, 3: mean 2, sd 1, SE 1/sqrt(3) = 0.577 (× 1000): 2 > 2 · 0.577.
    out = verdict.paired_comparison(np.array([1.0, 2.0, 3.0]), np.zeros(3), np.array(["a", "b", "c"]))
    assert out["mean_difference"] == pytest.approx(2000.0)
    assert out["standard_error"] == pytest.approx(1000.0 / np.sqrt(3.0)) and out["beats"]
    # Differences 1, -1, 0.5: mean 1/6, SE 0.601: not significant.
    assert not verdict.paired_comparison(np.array([1.0, -1.0, 0.5]), np.zeros(3), np.array(["a", "b", "c"]))["beats"]
    one = verdict.paired_comparison(np.array([5.0, 5.0]), np.zeros(2), np.array(["a", "a"]))
    assert one["n_models"] == 1 and np.isnan(one["standard_error"]) and not one["beats"]


def _synthetic(rng, models=6, views=2, n=256):
    """Two categories of `models` distinct shapes (anisotropic blobs with a displaced part), `views` each,
    inside [-0.5, 0.5]^3 like real predictions so that the ±0.5 clip of §10.3 changes nothing."""
    ids, cats, gts = [], [], []
    for category in ("car", "chair"):
        for m in range(models):
            cloud = np.clip(rng.normal(size=(n, 3)) * rng.uniform(0.03, 0.1, size=3), -0.25, 0.25)
            cloud[: n // 4] += rng.uniform(-0.2, 0.2, size=3)
            for _ in range(views):
                ids.append(f"{category}{m}")
                cats.append(category)
                gts.append(cloud)
    gts = np.array(gts, np.float32)
    m = len(gts)
    return Predictions(model_id=np.array(ids), category=np.array(cats), view=np.zeros(m, int), xyz=gts.copy(),
                       rgb=np.zeros_like(gts), pose=np.zeros((m, 2), np.float32),
                       gt_pose=np.zeros((m, 2), np.float32), images=np.zeros((m, 4, 4, 3), np.float32),
                       gt={"uniform": gts})


def _evaluate(preds, protocol=None):
    identity = GlobalRotation(angles=np.zeros(3), rotation=np.eye(3), losses=np.zeros(1))
    mean_shapes = {c: preds.gt["uniform"][preds.category == c][0] for c in ("car", "chair")}
    return evaluate_gt_type(preds, {"car": identity, "chair": identity}, mean_shapes, "uniform",
                            protocol or Protocol(), pose_untrained="not scored: test")


def test_predictions_that_follow_the_input_beat_the_shuffled_reference():
    rng = np.random.default_rng(0)
    preds = _synthetic(rng)
    preds.xyz = (preds.gt["uniform"] + rng.normal(scale=0.002, size=preds.xyz.shape)).astype(np.float32)
    summary, per_model, _ = _evaluate(preds)
    for category, entry in summary["categories"].items():
        assert entry["model"]["chamfer"] < 0.1 * entry["shuffled"]["chamfer"], category
        assert entry["vs_shuffled"]["beats"] and entry["vs_shuffled"]["n_models"] == 6
        assert entry["spread"]["ratio"] == pytest.approx(1.0, abs=0.1)
        assert entry["verdict"].startswith(f"{category.capitalize()}: learned something")
        assert entry["pose"] == {"not_scored": "not scored: test"}
    assert np.all(per_model["shuffled_chamfer"] > per_model["chamfer"])


def test_one_fixed_cloud_for_every_input_is_not_learned():
    rng = np.random.default_rng(1)
    preds = _synthetic(rng)
    preds.xyz[:] = preds.gt["uniform"][3]  # one chair's cloud for every car and chair
    summary, per_model, _ = _evaluate(preds)
    for category, entry in summary["categories"].items():
        assert entry["spread"]["ratio"] == 0.0 and entry["spread"]["predictions"] == 0.0
        assert entry["shuffled"]["chamfer"] == pytest.approx(entry["model"]["chamfer"], rel=1e-12)
        assert entry["vs_shuffled"]["mean_difference"] == pytest.approx(0.0, abs=1e-9)
        assert not entry["vs_shuffled"]["beats"]
        assert "NOT learned" in entry["verdict"] and "ignores the input" in entry["verdict"]
    np.testing.assert_allclose(per_model["shuffled_chamfer"], per_model["chamfer"], rtol=1e-12)


def test_the_shuffled_draws_follow_the_seed():
    rng = np.random.default_rng(2)
    preds = _synthetic(rng, models=8)
    preds.xyz = (preds.gt["uniform"] + rng.normal(scale=0.02, size=preds.xyz.shape)).astype(np.float32)
    protocol = Protocol(shuffled_others=3, spread_pairs=4)
    first, again = _evaluate(preds, protocol)[1], _evaluate(preds, protocol)[1]
    other = _evaluate(preds, Protocol(shuffled_others=3, spread_pairs=4, seed=5))[1]
    np.testing.assert_array_equal(first["shuffled_chamfer"], again["shuffled_chamfer"])
    assert not np.array_equal(first["shuffled_chamfer"], other["shuffled_chamfer"])


def test_a_category_of_one_model_is_undetermined():
    preds = _synthetic(np.random.default_rng(3), models=1)
    summary, per_model, _ = _evaluate(preds)
    entry = summary["categories"]["car"]
    assert entry["shuffled"] is None and entry["spread"] is None and entry["vs_shuffled"] is None
    assert "undetermined" in entry["verdict"]
    assert np.all(np.isnan(per_model["shuffled_chamfer"]))
