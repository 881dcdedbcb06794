"""The baseline's evaluation protocol (baseline §10.2-10.3) applied to the predictions of one split.

Per category (the baseline trained and aligned one category at a time, §10.2): ONE global rotation fitted on
the fit split's predictions (`evaluation.alignment`), applied to the evaluation split, then every rotated
prediction scored (`evaluation.metrics`: per-cloud bbox normalisation, squared Chamfer forward GT -> pred and
backward pred -> GT, their sum, averaged over models, × 1000) beside the two references
(`evaluation.references`). Optional, NOT the baseline's protocol and labelled so everywhere: per-model ICP
after the global rotation and the exact EMD.

Shape legend: M models, N predicted points, K GT points, T training clouds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from evaluation import alignment, metrics
from evaluation.predictions import Predictions
from evaluation.references import fibonacci_sphere, mean_radius, mean_training_shape

NOT_BASELINE = "not the baseline's protocol"


@dataclasses.dataclass
class Protocol:
    """Settings of the evaluation (defaults = baseline §10.2-10.3)."""

    align_iters: int = alignment.ALIGN_ITERS
    align_lr: float = alignment.ALIGN_LR
    align_batch: int = 1
    chamfer_backend: str = "auto"
    nn_method: str = "kdtree"
    denominator: str = "n"
    icp: bool = False
    emd: bool = False
    seed: int = 0


def score(gts: np.ndarray, preds, protocol: Protocol, normalise: bool = True) -> dict[str, np.ndarray]:
    """Per-model metrics (unscaled) of already rotated predictions, with EMD when the protocol asks.

    `normalise=False` for clouds already in the normalised frame (the ICP-refined ones), so that the
    per-cloud bounding-box normalisation does not undo part of ICP's translation.
    """
    return metrics.per_model_metrics(gts, preds, protocol.nn_method, with_emd=protocol.emd,
                                     normalise=normalise)


def icp_pairs(gts: np.ndarray, preds: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-model ICP refinement in the normalised frame (NOT the baseline's protocol).

    Returns:
      (normalised GT clouds, ICP-refined normalised predictions), to be scored without normalising again.
    """
    pairs = [metrics.normalise_pair(gt, pred) for gt, pred in zip(gts, preds)]
    return [gt_n for gt_n, _ in pairs], [alignment.icp_refine(pred_n, gt_n) for gt_n, pred_n in pairs]


def evaluate_gt_type(eval_preds: Predictions, fit_preds: Predictions, train_gts: dict, gt_type: str,
                     protocol: Protocol) -> tuple[dict, dict, np.ndarray]:
    """Per category: fits the global rotation on `fit_preds`, scores `eval_preds` and the references.

    The baseline trains and aligns one category at a time (§10.2), so a multi-category run gets one
    rotation per category, each fitted on that category's fit predictions only.

    Args:
      eval_preds: predictions of the evaluation split.  fit_preds: predictions the rotation is fitted on.
      train_gts: {category: float `[T, K, 3]`} training GT clouds of this GT type (for the mean shape).
      gt_type: "uniform" or "area".  protocol: settings.

    Returns:
      (summary, per_model, rotated): summary = {"categories": {category: {"n_models", "rotation_deg" [3],
      "align_loss_first", "align_loss_last", "model", "sphere", "mean_shape"[, "icp"]}}} with scaled
      averages; per_model = {name: float64 `[M]`} unscaled, keys "<metric>" and "icp_<metric>";
      rotated = float32 `[M, N, 3]` the predictions turned by their category's rotation.
    """
    gts = eval_preds.gt[gt_type]
    rotated = np.empty_like(eval_preds.xyz)
    summary = {"categories": {}}
    for category in sorted(set(eval_preds.category)):
        mask = eval_preds.category == category
        fit_mask = fit_preds.category == category
        if not fit_mask.any():
            raise ValueError(f"eval: no predictions of category {category!r} to fit the rotation on")
        if category not in train_gts:
            raise ValueError(f"eval: no training clouds of category {category!r} for the mean-shape reference")
        fit = alignment.fit_global_rotation(fit_preds.xyz[fit_mask], fit_preds.gt[gt_type][fit_mask],
                                            n_iters=protocol.align_iters, lr=protocol.align_lr,
                                            batch_size=protocol.align_batch, seed=protocol.seed,
                                            backend=protocol.chamfer_backend)
        rotated[mask] = alignment.rotate(eval_preds.xyz[mask], fit.rotation)
        summary["categories"][category] = {
            "rotation_deg": fit.angles_deg.tolist(), "align_loss_first": float(fit.losses[0]),
            "align_loss_last": float(np.mean(fit.losses[-min(100, len(fit.losses)):]))}
    per_model = score(gts, rotated, protocol)
    if protocol.icp:
        per_model.update({f"icp_{k}": v for k, v in score(*icp_pairs(gts, rotated), protocol,
                                                           normalise=False).items()})
    sphere = fibonacci_sphere(gts.shape[1], mean_radius(gts))
    for category in sorted(set(eval_preds.category)):
        mask = eval_preds.category == category
        mean_shape = mean_training_shape(train_gts[category], protocol.nn_method, protocol.seed)
        entry = summary["categories"][category]
        entry.update({"n_models": int(mask.sum()),
                 "model": metrics.summarise({k: per_model[k][mask] for k in ("chamfer", "fwd", "bwd", "emd")
                                             if k in per_model}, protocol.denominator),
                 "sphere": metrics.summarise(score(gts[mask], [sphere] * int(mask.sum()), protocol),
                                             protocol.denominator),
                 "mean_shape": metrics.summarise(score(gts[mask], [mean_shape] * int(mask.sum()), protocol),
                                                 protocol.denominator)})
        if protocol.icp:
            entry["icp"] = metrics.summarise({k[4:]: v[mask] for k, v in per_model.items() if k.startswith("icp_")},
                                             protocol.denominator)
    return summary, per_model, rotated
