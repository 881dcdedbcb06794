"""Sanity references of the evaluation: a sphere and the category's mean training shape (baseline §10.3 frame).

Scored on the same split with the same normalisation and metric as the model, they show at once whether a
model learned anything: a model that did beats both. They need no rotation: they are built in the GT frame.

Shape legend: M clouds, K points, T training clouds.
"""

from __future__ import annotations

import math

import numpy as np

from evaluation import metrics

REFERENCE_CANDIDATES = 200  # training clouds considered for the mean shape (O(T^2) Chamfers)


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
