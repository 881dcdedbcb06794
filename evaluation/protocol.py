"""The baseline's evaluation protocol (baseline §10.2-10.3) applied to the predictions of one split.

Per category (the baseline trained and aligned one category at a time, §10.2): ONE global rotation fitted on
the fit split's predictions (`fit_rotations`, `evaluation.alignment`), applied to the evaluation split, then
every rotated prediction scored (`evaluation.metrics`: per-cloud bbox normalisation, squared Chamfer forward
GT -> pred and backward pred -> GT, their sum, averaged over models, × 1000) beside the references of
`evaluation.references` (sphere, mean training shape, shuffled, spread ratio), the verdict of
`evaluation.verdict` and the pose accuracy of `evaluation.pose`. Optional, NOT the baseline's protocol and
labelled so everywhere: per-model ICP after the global rotation and the exact EMD.

Shape legend: M models, N predicted points, K GT points, T training clouds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from evaluation import alignment, metrics, pose, references, verdict
from evaluation.predictions import Predictions

NOT_BASELINE = "not the baseline's protocol"
_SCORED = ("chamfer", "fwd", "bwd")


@dataclasses.dataclass
class Protocol:
    """Settings of the evaluation (defaults = baseline §10.2-10.3, plus the references of issue 8).

    Attributes:
      align_iters, align_lr, align_batch, align_init_deg: the rotation fit (§10.2; `evaluation.alignment`).
      chamfer_backend: Chamfer backend of the fit.  nn_method: nearest neighbours of the metrics.
      denominator: "n" or "n_minus_1" (§10.3).  icp, emd: the extras that are not the baseline's.
      seed: the fit's model order, the mean shape's candidates, the shuffled draws and the spread pairs.
      shuffled_others: R, other models' predictions each GT is scored against (shuffled reference).
      spread_pairs: P, pairs of models of the spread ratio.
    """

    align_iters: int = alignment.ALIGN_ITERS
    align_lr: float = alignment.ALIGN_LR
    align_batch: int = 1
    align_init_deg: tuple = alignment.INIT_DEG
    chamfer_backend: str = "auto"
    nn_method: str = "kdtree"
    denominator: str = "n"
    icp: bool = False
    emd: bool = False
    seed: int = 0
    shuffled_others: int = references.SHUFFLED_OTHERS
    spread_pairs: int = references.SPREAD_PAIRS

    def fit_settings(self) -> dict:
        """The settings a fitted rotation depends on (its cache key)."""
        return {"align_iters": self.align_iters, "align_lr": self.align_lr, "align_batch": self.align_batch,
                "align_init_deg": list(self.align_init_deg), "chamfer_backend": self.chamfer_backend,
                "seed": self.seed}


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


def fit_rotations(fit_preds: Predictions, gt_type: str, protocol: Protocol, categories) -> dict:
    """{category: alignment.GlobalRotation} fitted on that category's fit predictions (§10.2).

    Raises:
      ValueError: a category without fit predictions.
    """
    rotations = {}
    for category in categories:
        fit_mask = fit_preds.category == category
        if not fit_mask.any():
            raise ValueError(f"eval: no predictions of category {category!r} to fit the rotation on")
        rotations[category] = alignment.fit_global_rotation(
            fit_preds.xyz[fit_mask], fit_preds.gt[gt_type][fit_mask], n_iters=protocol.align_iters,
            lr=protocol.align_lr, init_deg=protocol.align_init_deg, batch_size=protocol.align_batch,
            seed=protocol.seed, backend=protocol.chamfer_backend)
    return rotations


def _collapse_references(gts: np.ndarray, rotated: np.ndarray, model_ids: np.ndarray, protocol: Protocol,
                         rng: np.random.Generator) -> tuple[dict[str, np.ndarray] | None, dict | None]:
    """The shuffled reference per GT (unscaled, None with one model) and the spread (None with one model)."""
    gts_n = [metrics.normalise_bbox(g) for g in gts]
    preds_n = [metrics.normalise_bbox(p, clip=metrics.PRED_CLIP) for p in rotated]
    draws = references.other_model_draws(model_ids, protocol.shuffled_others, rng)
    if any(len(d) == 0 for d in draws):
        return None, None
    shuffled = references.shuffled_per_model(gts_n, preds_n, draws, protocol.nn_method)
    pairs = references.model_pairs(model_ids, protocol.spread_pairs, rng)
    return shuffled, references.spread(preds_n, gts_n, pairs, protocol.nn_method)


def evaluate_gt_type(eval_preds: Predictions, rotations: dict, mean_shapes: dict, gt_type: str,
                     protocol: Protocol, pose_untrained: str | None = None) -> tuple[dict, dict, np.ndarray]:
    """Per category: applies the fitted rotation, scores `eval_preds`, the references, the verdict, the pose.

    Args:
      eval_preds: predictions of the evaluation split.
      rotations: {category: alignment.GlobalRotation} (`fit_rotations`).
      mean_shapes: {category: float `[K, 3]`} the mean training shape of each category (this GT type).
      gt_type: "uniform" or "area".  protocol: settings.
      pose_untrained: why the run's pose net was not trained (then pose is not scored), or None.

    Returns:
      (summary, per_model, rotated): summary = {"categories": {category: {"n_models", "rotation_deg" [3],
      "align_loss_first", "align_loss_last", "model", "sphere", "mean_shape", "shuffled", "spread",
      "vs_shuffled", "vs_mean_shape", "verdict", "pose"[, "icp"]}}} with scaled averages (shuffled and spread
      None for a category of one model); per_model = {name: float64 `[M]`} unscaled metrics ("<metric>",
      "icp_<metric>", "shuffled_<metric>", NaN where undefined) and pose errors in degrees ("pose_<error>");
      rotated = float32 `[M, N, 3]` the predictions turned by their category's rotation.
    """
    gts = eval_preds.gt[gt_type]
    categories = sorted(set(eval_preds.category))
    rotated = np.empty_like(eval_preds.xyz)
    for category in categories:
        if category not in rotations or category not in mean_shapes:
            raise ValueError(f"eval: no fitted rotation or mean training shape for category {category!r} "
                             f"(is it in the reference data?)")
        mask = eval_preds.category == category
        rotated[mask] = alignment.rotate(eval_preds.xyz[mask], rotations[category].rotation)
    per_model = score(gts, rotated, protocol)
    if protocol.icp:
        per_model.update({f"icp_{k}": v for k, v in score(*icp_pairs(gts, rotated), protocol,
                                                           normalise=False).items()})
    per_model.update({f"shuffled_{k}": np.full(len(gts), np.nan) for k in _SCORED})
    per_model.update({f"pose_{k}": np.full(len(gts), np.nan) for k in ("geodesic_deg", "azimuth_deg",
                                                                        "elevation_deg")})
    sphere = references.fibonacci_sphere(gts.shape[1], references.mean_radius(gts))
    rng = np.random.default_rng(protocol.seed)
    summary = {"categories": {}}
    for category in categories:
        mask = eval_preds.category == category
        n = int(mask.sum())
        fit = rotations[category]
        mean_shape_per_model = score(gts[mask], [mean_shapes[category]] * n, protocol)
        entry = {"n_models": n, "rotation_deg": fit.angles_deg.tolist(), "align_loss_first": float(fit.losses[0]),
                 "align_loss_last": float(np.mean(fit.losses[-min(100, len(fit.losses)):])),
                 "model": metrics.summarise({k: per_model[k][mask] for k in (*_SCORED, "emd") if k in per_model},
                                            protocol.denominator),
                 "sphere": metrics.summarise(score(gts[mask], [sphere] * n, protocol), protocol.denominator),
                 "mean_shape": metrics.summarise(mean_shape_per_model, protocol.denominator),
                 "vs_mean_shape": verdict.paired_comparison(mean_shape_per_model["chamfer"],
                                                            per_model["chamfer"][mask],
                                                            eval_preds.model_id[mask])}
        shuffled, entry["spread"] = _collapse_references(gts[mask], rotated[mask], eval_preds.model_id[mask],
                                                         protocol, rng)
        entry["shuffled"] = entry["vs_shuffled"] = None
        if shuffled is not None:
            entry["shuffled"] = metrics.summarise(shuffled, protocol.denominator)
            entry["vs_shuffled"] = verdict.paired_comparison(shuffled["chamfer"], per_model["chamfer"][mask],
                                                             eval_preds.model_id[mask])
            for k, values in shuffled.items():
                per_model[f"shuffled_{k}"][mask] = values
        entry["verdict"] = verdict.verdict_text(category, entry)
        if protocol.icp:
            entry["icp"] = metrics.summarise({k[4:]: v[mask] for k, v in per_model.items() if k.startswith("icp_")},
                                             protocol.denominator)
        if pose_untrained:
            entry["pose"] = {"not_scored": pose_untrained}
        else:
            errors = pose.pose_errors(eval_preds.pose[mask], eval_preds.gt_pose[mask], fit.rotation)
            for k, values in errors.items():
                per_model[f"pose_{k}"][mask] = values
            entry["pose"] = pose.summarise_pose(errors)
        summary["categories"][category] = entry
    return summary, per_model, rotated
