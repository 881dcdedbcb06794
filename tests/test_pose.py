"""Tests of evaluation/pose.py: goldens of the geodesic error and of the azimuth wrap-around, the viewpoint of
a camera, and the frame composition on a synthetic case: GT clouds seen at known poses, a model whose frame is
a known rotation of the data's frame and whose predicted poses are exact in its own frame scores 0 once the
protocol's fitted rotation is composed in (and would not without it)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation import alignment, pose
from evaluation.predictions import Predictions
from evaluation.protocol import Protocol, evaluate_gt_type, fit_rotations
from evaluation.run import pose_net_status
from geometry import camera
from model.config import TrainConfig


def _rx(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def test_geodesic_error_golden():
    rotations = np.stack([_rx(0.3), _rx(-2.0), np.eye(3)])
    np.testing.assert_allclose(pose.geodesic_error(rotations, np.stack([np.eye(3)] * 3)), [0.3, 2.0, 0.0],
                               atol=1e-7)
    flip = np.diag([1.0, -1.0, -1.0])  # a half turn about x
    assert pose.geodesic_error(flip[None], np.eye(3)[None])[0] == pytest.approx(math.pi)


def test_azimuth_error_wraps_around():
    gt = np.radians([[179.0, 10.0], [-170.0, 0.0], [0.0, 30.0]])
    pred = np.radians([[-179.0, 10.0], [170.0, 0.0], [0.0, -10.0]])
    errors = pose.pose_errors(pred, gt, np.eye(3))
    np.testing.assert_allclose(errors["azimuth_deg"], [2.0, 20.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(errors["elevation_deg"], [0.0, 0.0, 40.0], atol=1e-9)
    np.testing.assert_allclose(errors["geodesic_deg"][:2], [2.0, 20.0], atol=1e-6)  # a turn about the up axis
    np.testing.assert_allclose(errors["geodesic_deg"][2], 40.0, atol=1e-6)  # a turn about y


def test_summary_golden():
    errors = {"geodesic_deg": np.array([10.0, 29.0, 31.0, 100.0]), "azimuth_deg": np.array([1.0, 2.0, 3.0, 4.0]),
              "elevation_deg": np.array([0.0, 0.0, 1.0, 1.0])}
    assert pose.summarise_pose(errors) == {"median_geodesic_deg": 30.0, "accuracy_pi_6": 0.5,
                                           "median_azimuth_deg": 2.5, "median_elevation_deg": 0.5}


@given(st.floats(-math.pi, math.pi), st.floats(-1.5, 1.5))
def test_viewpoint_recovers_azimuth_and_elevation(az, el):
    recovered = pose.viewpoint(pose.camera_rotations(np.array([[az, el]])))
    assert pose.wrap_angle(recovered[0] - az)[0] == pytest.approx(0.0, abs=1e-9)
    assert recovered[1][0] == pytest.approx(el, abs=1e-9)


@given(st.lists(st.floats(-math.pi, math.pi), min_size=3, max_size=3), st.floats(-math.pi, math.pi),
       st.floats(-1.2, 1.2))
def test_any_global_rotation_composes_exactly(angles, az, el):
    """For any fitted rotation R, a camera C(az, el) in the model's frame is C(az, el) · R^T in the data's."""
    rotation = alignment.euler_rotation(np.array(angles)).numpy()
    truth = pose.camera_rotations(np.array([[az, el]])) @ rotation.T
    assert pose.geodesic_error(pose.predicted_cameras(np.array([[az, el]]), rotation), truth)[0] == \
        pytest.approx(0.0, abs=1e-6)


def test_a_model_in_a_rotated_frame_with_exact_poses_scores_zero():
    rng = np.random.default_rng(0)
    m, alpha = 8, math.radians(50.0)
    gts = np.clip(rng.normal(size=(m, 256, 3)) * [0.08, 0.2, 0.12], -0.4, 0.4).astype(np.float32)
    gts[:, :64] += [0.0, 0.1, 0.05]
    gt_poses = np.stack([rng.uniform(-math.pi, math.pi, m), rng.uniform(-0.35, 0.7, m)], axis=1).astype(np.float32)
    # The model's frame: the data's turned by R_x(alpha)^T about the up axis (x), so R = R_x(alpha) maps it back;
    # the image C_gt · X is then C(az + alpha, el) · X_m: the exact pose in the model's frame.
    model_clouds = (gts @ _rx(alpha)).astype(np.float32)  # rows: R_x(alpha)^T · p
    model_poses = (gt_poses + [alpha, 0.0]).astype(np.float32)
    np.testing.assert_allclose(camera.project(model_clouds, model_poses).numpy(),
                               camera.project(gts, gt_poses).numpy(), atol=1e-4)  # the same pixels
    preds = Predictions(model_id=np.array([f"m{i}" for i in range(m)]), category=np.array(["car"] * m),
                        view=np.zeros(m, int), xyz=model_clouds, rgb=np.zeros_like(gts), pose=model_poses,
                        gt_pose=gt_poses, images=np.zeros((m, 4, 4, 3), np.float32), gt={"uniform": gts})
    protocol = Protocol(align_iters=2, align_lr=1e-9, align_init_deg=(50.0, 0.0, 0.0), chamfer_backend="tf")
    rotations = fit_rotations(preds, "uniform", protocol, ["car"])
    np.testing.assert_allclose(rotations["car"].rotation, _rx(alpha), atol=1e-6)
    summary, per_model, _ = evaluate_gt_type(preds, rotations, {"car": gts[0]}, "uniform", protocol)
    scored = summary["categories"]["car"]["pose"]
    assert scored["median_geodesic_deg"] == pytest.approx(0.0, abs=0.01)
    assert scored["median_azimuth_deg"] == pytest.approx(0.0, abs=0.01)
    assert scored["median_elevation_deg"] == pytest.approx(0.0, abs=0.01)
    assert scored["accuracy_pi_6"] == 1.0
    assert np.all(per_model["pose_geodesic_deg"] < 0.01)
    assert summary["categories"]["car"]["model"]["chamfer"] == pytest.approx(0.0, abs=1e-6)
    # Without the composition the frame offset would be counted as pose error: 50° on every example.
    uncomposed = pose.pose_errors(model_poses, gt_poses, np.eye(3))
    np.testing.assert_allclose(uncomposed["azimuth_deg"], 50.0, atol=0.01)
    np.testing.assert_allclose(uncomposed["geodesic_deg"], 50.0, atol=0.01)


def test_an_untrained_pose_net_is_not_scored():
    assert "--use_gt_pose" in pose_net_status(TrainConfig(use_gt_pose=True, optimise_pose=True))
    assert "--optimise_pose" in pose_net_status(TrainConfig())
    assert pose_net_status(TrainConfig(optimise_pose=True)) is None
