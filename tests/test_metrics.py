"""Tests of evaluation/metrics.py: the baseline's evaluation protocol (baseline §10.3)."""

import numpy as np
import pytest
from evaluation import metrics


def test_normalise_bbox_golden():
    points = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [1.0, 0.5, 4.0]])
    # box lo=(0,0,0), hi=(2,1,4): centre (1, 0.5, 2), longest side 4.
    expected = np.array([[-0.25, -0.125, -0.5], [0.25, 0.125, -0.5], [0.0, 0.0, 0.5]])
    np.testing.assert_allclose(metrics.normalise_bbox(points), expected, atol=1e-15)


def test_prediction_box_measured_on_clipped_cloud_but_applied_unclipped():
    pred = np.array([[0.0, 0.0, 0.0], [0.4, 0.4, 0.4], [10.0, 0.0, 0.0]])
    # Clipped to ±0.5: box lo=(0,0,0), hi=(0.5,0.4,0.4) -> centre (0.25,0.2,0.2), longest 0.5.
    expected = np.array([[-0.5, -0.4, -0.4], [0.3, 0.4, 0.4], [19.5, -0.4, -0.4]])
    gt_n, pred_n = metrics.normalise_pair(pred, pred)
    np.testing.assert_allclose(pred_n, expected, atol=1e-12)
    # The GT is never clipped: its box includes the far point.
    assert gt_n[:, 0].max() == pytest.approx(0.5)


def test_fwd_is_gt_to_pred_and_bwd_is_pred_to_gt():
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pred = np.array([[0.0, 0.0, 0.0]])
    fwd, bwd = metrics.chamfer_fwd_bwd(gt, pred)
    assert fwd == pytest.approx(0.5)  # GT point (1,0,0) is 1 (squared) from the only prediction
    assert bwd == pytest.approx(0.0)
    pred = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    fwd, bwd = metrics.chamfer_fwd_bwd(gt, pred)
    assert fwd == pytest.approx(0.0)
    assert bwd == pytest.approx(4.0 / 3.0)  # squared distance 2^2 of the stray point, averaged over 3


def test_per_model_metrics_scaled_by_1000_and_n_minus_1_option():
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    preds = [np.array([[0.0, 0.0, 0.0]]), gt.copy()]
    per_model = metrics.per_model_metrics([gt, gt], preds, normalise=False)
    np.testing.assert_allclose(per_model["fwd"], [0.5, 0.0])
    np.testing.assert_allclose(per_model["chamfer"], per_model["fwd"] + per_model["bwd"])
    assert metrics.summarise(per_model)["fwd"] == pytest.approx(250.0)  # 1000 · 0.5 / 2
    assert metrics.summarise(per_model, "n_minus_1")["fwd"] == pytest.approx(500.0)  # 1000 · 0.5 / 1
    assert metrics.aggregate(np.array([1.0, 2.0, 3.0])) == pytest.approx(2000.0)
    with pytest.raises(ValueError, match="denominator"):
        metrics.aggregate(np.array([1.0]), "n_minus_1")


def test_protocol_invariant_to_gt_translation_and_scale():
    rng = np.random.default_rng(1)
    gt, pred = rng.uniform(-0.5, 0.5, size=(2, 300, 3))
    ref = metrics.per_model_metrics([gt], [pred])
    moved = metrics.per_model_metrics([3.7 * gt + np.array([1.0, -2.0, 5.0])], [pred])
    for name in ("fwd", "bwd", "chamfer"):
        np.testing.assert_allclose(moved[name], ref[name], rtol=1e-10)


def test_emd_golden_permutation_and_bound():
    gt = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pred = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert metrics.emd(gt, pred) == pytest.approx(0.5)  # (0,0,0)->(0,0,1) costs 1, (1,0,0)->(1,0,0) costs 0
    rng = np.random.default_rng(2)
    cloud = rng.normal(size=(256, 3))
    assert metrics.emd(cloud, cloud[rng.permutation(256)]) == pytest.approx(0.0, abs=1e-15)
    other = rng.normal(size=(256, 3))
    fwd, bwd = metrics.chamfer_fwd_bwd(cloud, other)
    assert metrics.emd(cloud, other) >= max(fwd, bwd)  # a bijection can only be farther than nearest points


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="degenerate"):
        metrics.normalise_bbox(np.ones((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.chamfer_fwd_bwd(np.array([[np.nan, 0.0, 0.0]]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        metrics.chamfer_fwd_bwd(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="same size"):
        metrics.emd(np.zeros((4, 3)), np.zeros((5, 3)))
