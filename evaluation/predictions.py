"""Predicted clouds of one split, read in file order, with what they are compared to (baseline §10.1).

Shape legend: M models (examples: one view of a model each), N predicted points, K GT points, H image size,
T training clouds of one category.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tqdm import tqdm

from data import tfrecords
from data.tfrecords import GT_FEATURES
from evaluation.references import REFERENCE_CANDIDATES


@dataclasses.dataclass
class Predictions:
    """Predicted clouds of one split with what they are compared to.

    Attributes:
      model_id, category: str `[M]`.  view: int `[M]`.
      xyz: float32 `[M, N, 3]` predictions.  rgb: float32 `[M, N, 3]` predicted colours.
      images: float32 `[M, H, H, 3]` inputs.
      gt: {gt type: float32 `[M, K, 3]`} GT clouds in the render frame.
    """

    model_id: np.ndarray
    category: np.ndarray
    view: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    images: np.ndarray
    gt: dict


def iterate_split(data_dir, split: str, batch_size: int, gt_types, categories=None, max_models: int = 0,
                  progress: bool = True, desc: str = ""):
    """Yields the batches of one split in file order (no shuffling, baseline §10.1), trimmed to `max_models`.

    Args:
      data_dir: data set written by `data.build`.  split: split name.  batch_size: B.
      gt_types: GT types to read ("uniform", "area").  categories: category names, or None for all.
      max_models: keep only the first this many examples (0: all).
      progress: show a progress bar labelled `desc`.

    Yields:
      dicts of numpy arrays as `data.tfrecords.make_dataset` gives them, the last batch possibly shorter.
    """
    total = tfrecords.num_examples(tfrecords.read_index(data_dir), split, categories)
    total = min(total, max_models) if max_models else total
    dataset = tfrecords.make_dataset(data_dir, split, batch_size, shuffle=False, repeat=False,
                                     categories=categories, drop_remainder=False,
                                     gt_types=[GT_FEATURES[g] for g in gt_types])
    seen = 0
    for batch in tqdm(dataset, total=math.ceil(total / batch_size), desc=desc, disable=not progress):
        keep = min(int(batch["image"].shape[0]), total - seen)
        yield {k: v.numpy()[:keep] for k, v in batch.items()}
        seen += keep
        if seen >= total:
            return


def _strings(values: np.ndarray) -> np.ndarray:
    """A tf.string batch (numpy bytes objects) as a numpy array of str."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])


def predict_split(recon_net, data_dir, split: str, batch_size: int, gt_types, categories=None,
                  max_models: int = 0, progress: bool = True) -> Predictions:
    """Runs the reconstruction net over one split (baseline §10.1; arguments as `iterate_split`).

    Args:
      recon_net: Keras model, images `[B, H, H, 3]` -> {"xyz": `[B, N, 3]`, "rgb": `[B, N, 3]`, ...}.

    Returns:
      Predictions of the split.
    """
    parts: dict[str, list] = {}
    for batch in iterate_split(data_dir, split, batch_size, gt_types, categories, max_models, progress,
                               desc=f"predict {split}"):
        out = recon_net.predict_on_batch(batch["image"])  # Keras compiles and caches the inference function
        batch.update(xyz=np.asarray(out["xyz"]), rgb=np.asarray(out["rgb"]))
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    if not parts:
        raise ValueError(f"eval: split {split!r} of {data_dir} gave no examples")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Predictions(_strings(cat["model_id"]), _strings(cat["category"]), cat["view"], cat["xyz"],
                       cat["rgb"], cat["image"], {g: cat[GT_FEATURES[g]] for g in gt_types})


def training_gts(data_dir, split: str, gt_types, categories, batch_size: int) -> dict:
    """{gt type: {category: float `[T, K, 3]`}} GT clouds of the training split (for the mean shape)."""
    parts: dict[str, list] = {}
    for batch in iterate_split(data_dir, split, batch_size, gt_types, categories,
                               max_models=4 * REFERENCE_CANDIDATES, progress=False):
        for key in ("category", *(GT_FEATURES[g] for g in gt_types)):
            parts.setdefault(key, []).append(batch[key])
    if not parts:
        raise ValueError(f"eval: training split {split!r} of {data_dir} gave no examples")
    category = _strings(np.concatenate(parts["category"]))
    return {g: {c: np.concatenate(parts[GT_FEATURES[g]])[category == c] for c in set(category)}
            for g in gt_types}


def default_fit_split(data_dir) -> str:
    """`val` when the data set has it (the baseline's align split, §10.2), else `train`."""
    return "val" if "val" in tfrecords.read_index(data_dir)["splits"] else "train"
