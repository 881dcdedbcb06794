"""3D supervision against a ground-truth cloud (the study's ``--use_gt_pcl``; mission.md).

Shape legend: B batch, N predicted points, M ground-truth points (N and M may differ).
The GT cloud must be in the frame the prediction is rendered in (the RENDER frame of data.meshes, in
which the training images were made), otherwise the Chamfer term compares unrelated frames.
"""

import tensorflow as tf

from losses.chamfer import chamfer_loss


def gt_loss(pred: tf.Tensor, gt: tf.Tensor, backend: str = "auto") -> tf.Tensor:
    """Chamfer distance to the GT cloud, in the baseline's §7.4 form (weighted by ``--lambda_gt``).

    Args:
        pred: float ``[B, N, 3]`` predicted cloud (xyz0).
        gt: float ``[B, M, 3]`` GT cloud (``gt_uniform`` or ``gt_area`` of the dataset, ``--gt_type``).
        backend: Chamfer backend, passed to ``losses.chamfer.chamfer_loss``.

    Returns:
        Scalar: mean_b(mean_n min_m ‖pred − gt‖² + mean_m min_n ‖gt − pred‖²).
    """
    return chamfer_loss(pred, gt, backend=backend)
