"""Did a model learn to read its input? The paired comparison of its scores with a reference, and the wording.

Criterion (stated in every report): per model (the views of one 3D model are averaged first, because they
share one GT and are not independent), the difference d = reference − model of the per-GT Chamfer; the model
beats the reference when the mean of d exceeds SIGNIFICANCE_SE standard errors of that mean
(SE = sample standard deviation of d / sqrt(number of models)), i.e. a one-sided paired test at about the
2-sigma level. It needs at least MIN_MODELS models.

"Learned something" requires beating the SHUFFLED reference (`evaluation.references`): a model whose
predictions fit other models' GT as well as their own ignores its input, whatever its score against the mean
training shape or the sphere. Beating the mean-shape reference is reported separately.

Shape legend: M examples of one category.
"""

from __future__ import annotations

import numpy as np

from evaluation import metrics

SIGNIFICANCE_SE = 2.0  # the mean paired difference must exceed this many standard errors
MIN_MODELS = 2  # fewest models for a standard error
LEARNED, NOT_LEARNED, UNDETERMINED = "learned something", "NOT learned", "undetermined"
CRITERION = (f"paired per model (views averaged): mean(reference - model) > {SIGNIFICANCE_SE:g} standard "
             f"errors of that mean")


def paired_comparison(reference: np.ndarray, model: np.ndarray, model_ids) -> dict:
    """The paired difference reference − model, per model, and whether the model beats the reference.

    Args:
      reference: float `[M]` per-example reference values (unscaled Chamfer).
      model: float `[M]` the model's per-example values.
      model_ids: str `[M]` model id of each example (views of one model are averaged first).

    Returns:
      {"mean_difference", "standard_error" (× 1000, NaN with fewer than MIN_MODELS models), "n_models",
       "beats": bool (False when undetermined)}.
    """
    model_ids = np.asarray(model_ids)
    difference = np.asarray(reference, np.float64) - np.asarray(model, np.float64)
    per_model = np.array([difference[model_ids == m].mean() for m in np.unique(model_ids)])
    mean = float(metrics.METRIC_SCALE * per_model.mean())
    if len(per_model) < MIN_MODELS:
        se = float("nan")
    else:
        se = float(metrics.METRIC_SCALE * per_model.std(ddof=1) / np.sqrt(len(per_model)))
    return {"mean_difference": mean, "standard_error": se, "n_models": int(len(per_model)),
            "beats": bool(np.isfinite(se) and mean > SIGNIFICANCE_SE * se)}


def _difference(comparison: dict) -> str:
    return (f"mean difference {comparison['mean_difference']:.3f} ± {comparison['standard_error']:.3f} (SE) "
            f"over {comparison['n_models']} models")


def verdict_label(entry: dict) -> str:
    """The verdict of a metrics.json category entry in a few words (a table cell, a chart title)."""
    if entry["vs_shuffled"] is None:
        return UNDETERMINED
    return LEARNED if entry["vs_shuffled"]["beats"] else f"{NOT_LEARNED} (ignores the input)"


def verdict_text(category: str, entry: dict) -> str:
    """One category's verdict in words, from its metrics.json entry (needs "vs_shuffled" and "vs_mean_shape").

    Returns:
      "learned something: ..." only when the model beats the shuffled reference; otherwise says that the
      predictions fit other models' GT as well as their own; then, separately, the mean-shape comparison.
    """
    name = category.capitalize()
    shuffled = entry["vs_shuffled"]
    if shuffled is None:
        first = (f"{name}: {UNDETERMINED}: the shuffled reference needs predictions of at least {MIN_MODELS} "
                 f"models")
    elif shuffled["beats"]:
        first = (f"{name}: {LEARNED}: beats the shuffled reference ({_difference(shuffled)}; "
                 f"spread ratio {entry['spread']['ratio']:.2f})")
    else:
        first = (f"{name}: {NOT_LEARNED}: its predictions fit other models' GT as well as their own, so the output "
                 f"ignores the input ({_difference(shuffled)} against the shuffled reference; spread ratio "
                 f"{entry['spread']['ratio']:.2f})")
    mean_shape = entry["vs_mean_shape"]
    second = ("beats" if mean_shape["beats"] else "does not beat") + " the mean-shape reference"
    return f"{first}; {second} ({_difference(mean_shape)})."
