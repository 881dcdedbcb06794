"""Evaluation metrics of the baseline's protocol (baseline §10.3), in NumPy.

Shape legend: M models, N predicted points, K ground-truth points, all xyz float arrays `[..., 3]`.
Clouds are row arrays (one point per row). Nothing here is differentiable: evaluation only.

The protocol (baseline §10.3, `pcl_loss_saved.py`):
  1. Each cloud is normalised on its own bounding box: lo/hi = per-axis min/max, centred on (lo + hi)/2 and
     divided by the longest side, so it fits in [-0.5, 0.5]^3. For the prediction, lo/hi are measured on
     `clip(pred, -0.5, 0.5)` (to ignore outliers) and then applied to the *unclipped* prediction.
  2. Squared Euclidean nearest-neighbour distances. Forward = mean over GT points of the distance to the
     nearest predicted point (GT -> pred); backward = mean over predicted points (pred -> GT); Chamfer = sum.
  3. Averaged over models and multiplied by 1000. The baseline divided the sum over models by n - 1 (its
     last loop index, §10.3, §13.7); `denominator="n_minus_1"` reproduces that, the default divides by n.

EMD (not computed by the baseline, §10.3): exact assignment between equal-size clouds,
`EMD = mean_n ||p_n - g_pi(n)||^2` (squared distances, the definition of the baseline's `get_emd_dist`),
solved with `scipy.optimize.linear_sum_assignment` instead of the auction approximation.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from geometry.checks import check_cloud
from geometry.nearest import nearest_numpy

# Baseline §10.3: predictions are clipped to this half-extent before their bounding box is measured.
PRED_CLIP = 0.5
# Baseline §10.3: printed metrics are (sum of squared distances means) × 1000.
METRIC_SCALE = 1000.0
DENOMINATORS = ("n", "n_minus_1")


def normalise_bbox(points: np.ndarray, clip: float | None = None) -> np.ndarray:
    """Centres a cloud on its bounding box and scales its longest side to 1 (baseline §10.3 `scale`).

    Args:
      points: float `[N, 3]`.
      clip: if given, the box is measured on `clip(points, -clip, clip)` and applied to the unclipped points
        (the baseline does this for predictions with clip = 0.5).

    Returns:
      float64 `[N, 3]`; inside [-0.5, 0.5]^3 when `clip` is None.

    Raises:
      ValueError: on a malformed cloud or a degenerate box (all points equal).
    """
    points = check_cloud(points, "metrics")
    measured = np.clip(points, -clip, clip) if clip is not None else points
    lo, hi = measured.min(axis=0), measured.max(axis=0)
    longest = float(np.max(hi - lo))
    if longest <= 0.0:
        raise ValueError("metrics.normalise_bbox: degenerate bounding box (every point is the same)")
    return (points - (lo + hi) / 2.0) / longest


def normalise_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baseline §10.3 normalisation of a (GT, prediction) pair: GT unclipped, prediction clipped to ±0.5.

    Args:
      gt: float `[K, 3]`.  pred: float `[N, 3]`.

    Returns:
      (gt, pred) float64, each normalised on its own bounding box.
    """
    return normalise_bbox(gt), normalise_bbox(pred, clip=PRED_CLIP)


def chamfer_fwd_bwd(gt: np.ndarray, pred: np.ndarray, method: str = "kdtree") -> tuple[float, float]:
    """Forward (GT -> pred) and backward (pred -> GT) mean squared NN distances of one pair (§10.3).

    Args:
      gt: float `[K, 3]`.  pred: float `[N, 3]`.  method: `geometry.nearest.NUMPY_METHODS`.

    Returns:
      (fwd, bwd) floats, unscaled.
    """
    fwd = float(np.mean(nearest_numpy(gt, pred, method, "metrics")[0]))
    bwd = float(np.mean(nearest_numpy(pred, gt, method, "metrics")[0]))
    return fwd, bwd


def emd(gt: np.ndarray, pred: np.ndarray) -> float:
    """Exact earth mover's distance: mean squared distance under the optimal one-to-one matching.

    Not part of the baseline's reported protocol (§10.3 leaves EMD as a TODO). O(N^3): meant for N <= 4096.

    Args:
      gt: float `[N, 3]`.  pred: float `[N, 3]` (same N).

    Returns:
      float, unscaled.
    """
    gt, pred = check_cloud(gt, "metrics", "gt"), check_cloud(pred, "metrics", "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"metrics.emd: clouds must have the same size, got {gt.shape} and {pred.shape}")
    diff = gt[:, None, :] - pred[None, :, :]
    cost = np.sum(diff * diff, axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.mean(cost[rows, cols]))


def per_model_metrics(gts, preds, method: str = "kdtree", with_emd: bool = False,
                      normalise: bool = True) -> dict[str, np.ndarray]:
    """Unscaled per-model metrics of the §10.3 protocol.

    Args:
      gts: sequence of M float `[K, 3]` GT clouds (or an array `[M, K, 3]`).
      preds: sequence of M float `[N, 3]` predicted clouds, already rotated into the GT frame.
      method: nearest-neighbour method (`geometry.nearest.nearest_numpy`).
      with_emd: also compute the exact EMD (needs N == K).
      normalise: apply the per-cloud bounding-box normalisation first (the protocol does).

    Returns:
      dict of float64 `[M]` arrays: "fwd", "bwd", "chamfer" (= fwd + bwd), and "emd" when asked.
    """
    if len(gts) != len(preds):
        raise ValueError(f"metrics: {len(gts)} GT clouds but {len(preds)} predictions")
    names = ("fwd", "bwd", "emd") if with_emd else ("fwd", "bwd")
    out = {name: np.empty(len(gts), dtype=np.float64) for name in names}
    for m, (gt, pred) in enumerate(zip(gts, preds)):
        if normalise:
            gt, pred = normalise_pair(gt, pred)
        out["fwd"][m], out["bwd"][m] = chamfer_fwd_bwd(gt, pred, method)
        if with_emd:
            out["emd"][m] = emd(gt, pred)
    out["chamfer"] = out["fwd"] + out["bwd"]
    return out


def aggregate(values: np.ndarray, denominator: str = "n", scale: float = METRIC_SCALE) -> float:
    """Sum over models divided by n (or by n - 1 as the baseline did, §10.3), times `scale`.

    Args:
      values: float `[M]` per-model values.
      denominator: "n" (a plain mean) or "n_minus_1" (the baseline's off-by-one).
      scale: multiplier (1000 in the baseline's printout).

    Returns:
      float.
    """
    values = np.asarray(values, dtype=np.float64)
    if denominator not in DENOMINATORS:
        raise ValueError(f"metrics: unknown denominator {denominator!r}; expected one of {DENOMINATORS}")
    count = values.size - (1 if denominator == "n_minus_1" else 0)
    if count <= 0:
        raise ValueError(f"metrics: cannot average {values.size} model(s) with denominator {denominator!r}")
    return float(scale * np.sum(values) / count)


def summarise(per_model: dict[str, np.ndarray], denominator: str = "n") -> dict[str, float]:
    """Aggregates every per-model metric with `aggregate` (×1000).

    Args:
      per_model: output of `per_model_metrics`.
      denominator: see `aggregate`.

    Returns:
      dict metric name -> scaled average.
    """
    return {name: aggregate(values, denominator) for name, values in per_model.items()}
