"""References every score is printed beside, built from the same split, alignment and normalisation.

Two fixed references (no rotation: they are built in the GT frame):
  * the sphere of the mean GT radius;
  * the category's mean training shape (the Chamfer medoid of training clouds).
A fixed cloud near the category's mean scores well against both, so beating them does not show that a model
reads its input. Two references that do (issue 8, item 1):
  * the SHUFFLED reference: each GT scored against other models' predictions of the same category (never
    another view of the same model), after the same global rotation and the same per-cloud normalisation as
    the model's own score. A model that ignores its input fits other models' GT as well as its own, so its
    score equals this reference; one that reads its input scores lower. For each GT at most R other
    predictions are drawn (`other_model_draws`, seeded), and the per-GT value is the mean over them, so the
    reference stays paired with the model's score GT by GT (`evaluation.verdict`).
  * the SPREAD ratio: the mean pairwise Chamfer between the (aligned, normalised as scored) predictions of
    different models of a category divided by the same between their GT clouds, over at most P pairs of
    models (`model_pairs`, seeded). A model that outputs one fixed cloud has a spread ratio of 0; one that
    reproduces every GT has 1.

Shape legend: M clouds (examples of one category), K points, T training clouds, R drawn predictions per GT,
P pairs of models.
"""

from __future__ import annotations

import math

import numpy as np

from evaluation import metrics

REFERENCE_CANDIDATES = 200  # training clouds considered for the mean shape (O(T^2) Chamfers)
SHUFFLED_OTHERS = 20  # R: other models' predictions each GT is scored against (eval.py --shuffled_others)
SPREAD_PAIRS = 200  # P: pairs of models whose predictions and GTs the spread ratio compares (--spread_pairs)


def fibonacci_sphere(n: int, radius: float) -> np.ndarray:
    """n nearly uniform points on a sphere of `radius` about the origin (golden-angle spiral): float `[n, 3]`."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = math.pi * (1.0 + math.sqrt(5.0)) * i
    return radius * np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar),
                              np.cos(polar)], axis=1)


def mean_radius(gts: np.ndarray) -> float:
    """Mean over clouds of the mean distance of their points to their bbox centre. gts: float `[M, K, 3]`."""
    centres = (gts.max(axis=1, keepdims=True) + gts.min(axis=1, keepdims=True)) / 2.0
    return float(np.mean(np.linalg.norm(gts - centres, axis=-1)))


def mean_training_shape(train_gts: np.ndarray, method: str = "kdtree", seed: int = 0) -> np.ndarray:
    """The Chamfer medoid of training clouds: the one with the smallest mean Chamfer to the others.

    Args:
      train_gts: float `[T, K, 3]` (at most REFERENCE_CANDIDATES of them, drawn with `seed`, are compared).
      method: nearest-neighbour method (`geometry.nearest.NUMPY_METHODS`).  seed: draw of the candidates.

    Returns:
      float `[K, 3]`.
    """
    if len(train_gts) > REFERENCE_CANDIDATES:
        train_gts = train_gts[np.random.default_rng(seed).choice(len(train_gts), REFERENCE_CANDIDATES, False)]
    normalised = [metrics.normalise_bbox(g) for g in train_gts]
    cost = np.zeros(len(normalised))
    for i, a in enumerate(normalised):
        for j in range(i + 1, len(normalised)):
            d = sum(metrics.chamfer_fwd_bwd(a, normalised[j], method))
            cost[i] += d
            cost[j] += d
    return train_gts[int(np.argmin(cost))]


def other_model_draws(model_ids, max_others: int, rng: np.random.Generator) -> list[np.ndarray]:
    """For each example, the examples of OTHER models it is compared with (the shuffled reference).

    Args:
      model_ids: str `[M]` model id of each example of one category (several views of a model share one).
      max_others: R; when more examples of other models exist, R of them are drawn without replacement.
      rng: generator of the draw (seeded by the protocol).

    Returns:
      M sorted int arrays of indices j with model_ids[j] != model_ids[i], each of length
      min(R, number of such j); empty when the category holds one model only.
    """
    if max_others < 1:
        raise ValueError(f"references: the shuffled reference needs at least 1 other prediction per GT, "
                         f"got {max_others}")
    model_ids = np.asarray(model_ids)
    draws = []
    for i in range(len(model_ids)):
        others = np.flatnonzero(model_ids != model_ids[i])
        if len(others) > max_others:
            others = np.sort(rng.choice(others, max_others, replace=False))
        draws.append(others)
    return draws


def shuffled_per_model(gts, preds, draws: list[np.ndarray], method: str = "kdtree") -> dict[str, np.ndarray]:
    """Per-GT shuffled reference: the mean over its drawn other predictions of the §10.3 metrics (unscaled).

    Args:
      gts: M float `[K, 3]` GT clouds, already normalised as the protocol scores them.
      preds: M float `[N, 3]` predictions, already rotated and normalised as scored.
      draws: `other_model_draws` (each non-empty).
      method: nearest-neighbour method.

    Returns:
      dict of float64 `[M]`: "fwd", "bwd", "chamfer" (= fwd + bwd).
    """
    out = {name: np.empty(len(gts)) for name in ("fwd", "bwd")}
    for i, others in enumerate(draws):
        if len(others) == 0:
            raise ValueError("references: a GT has no prediction of another model to be compared with")
        pairs = np.array([metrics.chamfer_fwd_bwd(gts[i], preds[j], method) for j in others])
        out["fwd"][i], out["bwd"][i] = pairs.mean(axis=0)
    out["chamfer"] = out["fwd"] + out["bwd"]
    return out


def model_pairs(model_ids, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Pairs of examples of different models for the spread ratio: one example (view) per model, then pairs.

    Each model is represented by one of its examples, drawn with `rng`; every unordered pair of models is used
    when there are at most `max_pairs` of them, otherwise `max_pairs` drawn without replacement.

    Args:
      model_ids: str `[M]` model id of each example of one category.
      max_pairs: P.  rng: generator of the draw.

    Returns:
      int `[P', 2]` example indices (a, b) of two different models, P' = min(P, models · (models − 1) / 2).
    """
    if max_pairs < 1:
        raise ValueError(f"references: the spread ratio needs at least 1 pair of models, got {max_pairs}")
    model_ids = np.asarray(model_ids)
    examples = [rng.choice(np.flatnonzero(model_ids == m)) for m in np.unique(model_ids)]
    first, second = np.triu_indices(len(examples), k=1)
    if len(first) > max_pairs:
        chosen = np.sort(rng.choice(len(first), max_pairs, replace=False))
        first, second = first[chosen], second[chosen]
    return np.stack([np.take(examples, first), np.take(examples, second)], axis=1).astype(int).reshape(-1, 2)


def mean_pairwise_chamfer(clouds, pairs: np.ndarray, method: str = "kdtree") -> float:
    """Mean over `pairs` of the symmetric Chamfer (fwd + bwd, unscaled) between clouds[a] and clouds[b].

    Args:
      clouds: M float `[N, 3]` clouds (normalised as scored).  pairs: int `[P, 2]` (at least one).
    """
    if len(pairs) == 0:
        raise ValueError("references: no pair of models to measure a spread on")
    return float(np.mean([sum(metrics.chamfer_fwd_bwd(clouds[a], clouds[b], method)) for a, b in pairs]))


def spread(preds, gts, pairs: np.ndarray, method: str = "kdtree") -> dict[str, float]:
    """The spread of the predictions relative to the spread of the GT clouds of the same pairs of models.

    Args:
      preds: M float `[N, 3]` predictions, rotated and normalised as scored.
      gts: M float `[K, 3]` GT clouds, normalised as scored.
      pairs: `model_pairs`.  method: nearest-neighbour method.

    Returns:
      {"predictions": mean pairwise Chamfer between predictions × 1000, "gt": the same between GTs × 1000,
       "ratio": their quotient, "pairs": P}.
    """
    between_preds = mean_pairwise_chamfer(preds, pairs, method)
    between_gts = mean_pairwise_chamfer(gts, pairs, method)
    if between_gts <= 0.0:
        raise ValueError("references: the GT clouds of every pair are identical; the spread ratio is undefined")
    return {"predictions": metrics.METRIC_SCALE * between_preds, "gt": metrics.METRIC_SCALE * between_gts,
            "ratio": between_preds / between_gts, "pairs": int(len(pairs))}
