"""Pose accuracy of the pose net: geodesic rotation error, accuracy at π/6, azimuth and elevation errors.

The metrics of the viewpoint-estimation literature (Tulsiani & Malik, "Viewpoints and Keypoints", CVPR 2015;
used for unsupervised pose by Insafutdinov & Dosovitskiy, "Unsupervised Learning of Shape and Camera Pose
from Differentiable Point Clouds", NeurIPS 2018):
  * the geodesic distance between the predicted and the GT camera rotation,
    Δ(R_pred, R_gt) = ||log(R_gt^T R_pred)||_F / √2 = arccos((trace(R_gt^T R_pred) − 1) / 2) ∈ [0, π];
  * its median over the examples, in degrees (MedErr), and the fraction of examples with Δ < π/6 (Acc_π/6);
  * the median absolute azimuth and elevation errors in degrees, the azimuth difference wrapped to [−180°, 180°).

Frames (derived from `geometry.camera` and `evaluation.alignment`). The camera rotation of a pose (az, el) is
C(az, el) = R_el(el) · R_az(az) (world → camera, `geometry.camera.rotation_matrix`): a point p of the data's
frame is seen at C · p − (0, 0, d). A self-supervised model predicts its cloud X_m and its pose (az', el') in
its OWN frame, so that C(az', el') · X_m reproduces the image the data set rendered as C_gt · X_gt. The
protocol's global rotation R (`evaluation.alignment`, R · X_m ≈ X_gt) takes the model's frame to the data's,
so C(az', el') · X_m = C(az', el') · R^T · X_gt: the predicted camera in the data's frame is
C_pred = C(az', el') · R^T, and that is what is compared with C_gt = C(az_gt, el_gt).

C_pred is a general rotation (R may tilt the frame), so its azimuth and elevation are read from its viewing
direction: the camera centre of C, in the world frame, lies along c = C^T (0, 0, 1) =
(−sin el, sin az · cos el, cos az · cos el); hence az = atan2(c_y, c_z), el = atan2(−c_x, hypot(c_y, c_z))
(exact for |el| ≤ 90°; a pose net's |el| > 90° is the same viewpoint as (az + 180°, 180° − el)). The remaining
freedom, a roll about the viewing axis, counts in the geodesic error only.

Shape legend: M examples.
"""

from __future__ import annotations

import math

import numpy as np

from geometry import camera

ACCURACY_THRESHOLD = math.pi / 6  # Acc_π/6 (Tulsiani & Malik 2015)


def camera_rotations(poses: np.ndarray) -> np.ndarray:
    """C(az, el) = R_el · R_az of `geometry.camera` for every pose: float64 `[M, 3, 3]`.

    Args:
      poses: float `[M, 2]` (azimuth, elevation) in radians.
    """
    poses = np.asarray(poses, dtype=np.float64)
    return camera.rotation_matrix(poses[:, 0], poses[:, 1]).numpy()


def predicted_cameras(pred_poses: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The predicted cameras in the data's frame: C(az', el') · R^T (module doc). float64 `[M, 3, 3]`.

    Args:
      pred_poses: float `[M, 2]` the pose net's (azimuth, elevation), in the model's frame.
      rotation: float `[3, 3]` the protocol's global rotation R (model frame → data frame, column vectors).
    """
    return camera_rotations(pred_poses) @ np.asarray(rotation, dtype=np.float64).T


def geodesic_error(r_pred: np.ndarray, r_gt: np.ndarray) -> np.ndarray:
    """Δ = arccos((trace(R_gt^T R_pred) − 1) / 2) in radians, float64 `[M]` (inputs `[M, 3, 3]`)."""
    trace = np.einsum("mij,mij->m", np.asarray(r_gt, np.float64), np.asarray(r_pred, np.float64))
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


def viewpoint(rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) in radians of cameras `[M, 3, 3]`, from their viewing direction (module doc)."""
    c = np.asarray(rotations, np.float64)[:, 2, :]  # row 3 of C = C^T (0, 0, 1)
    return np.arctan2(c[:, 1], c[:, 2]), np.arctan2(-c[:, 0], np.hypot(c[:, 1], c[:, 2]))


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [−π, π)."""
    return (np.asarray(angle, np.float64) + math.pi) % (2.0 * math.pi) - math.pi


def pose_errors(pred_poses: np.ndarray, gt_poses: np.ndarray, rotation: np.ndarray) -> dict[str, np.ndarray]:
    """Per-example errors of predicted poses against the GT poses, in degrees.

    Args:
      pred_poses: float `[M, 2]` predicted (azimuth, elevation), model frame.
      gt_poses: float `[M, 2]` GT (azimuth, elevation), data frame.
      rotation: float `[3, 3]` the protocol's global rotation of the category.

    Returns:
      dict of float64 `[M]`: "geodesic_deg", "azimuth_deg" (|wrapped difference|), "elevation_deg".
    """
    predicted = predicted_cameras(pred_poses, rotation)
    az_pred, el_pred = viewpoint(predicted)
    az_gt, el_gt = viewpoint(camera_rotations(gt_poses))
    return {"geodesic_deg": np.degrees(geodesic_error(predicted, camera_rotations(gt_poses))),
            "azimuth_deg": np.degrees(np.abs(wrap_angle(az_pred - az_gt))),
            "elevation_deg": np.degrees(np.abs(el_pred - el_gt))}


def summarise_pose(errors: dict[str, np.ndarray]) -> dict[str, float]:
    """Median errors in degrees and the accuracy at π/6 of `pose_errors`' output."""
    return {"median_geodesic_deg": float(np.median(errors["geodesic_deg"])),
            "accuracy_pi_6": float(np.mean(errors["geodesic_deg"] < math.degrees(ACCURACY_THRESHOLD))),
            "median_azimuth_deg": float(np.median(errors["azimuth_deg"])),
            "median_elevation_deg": float(np.median(errors["elevation_deg"]))}
