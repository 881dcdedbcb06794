"""Predicted clouds and poses of one split, read in file order, with what they are compared to (baseline §10.1).

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

_STRING_FIELDS = ("model_id", "category")
_PIXEL_MAX = 255.0  # the data's PNGs are 8-bit: image = png / 255 exactly (data.tfrecords)


@dataclasses.dataclass
class Predictions:
    """Predicted clouds and poses of one split with what they are compared to.

    Attributes:
      model_id, category: str `[M]`.  view: int `[M]`.
      xyz: float32 `[M, N, 3]` predictions.  rgb: float32 `[M, N, 3]` predicted colours.
      pose: float32 `[M, 2]` the pose net's (azimuth, elevation), in the model's frame.
      gt_pose: float32 `[M, 2]` the data's (azimuth, elevation) of each image.
      images: float32 `[M, H, H, 3]` inputs.
      gt: {gt type: float32 `[M, K, 3]`} GT clouds in the render frame.
    """

    model_id: np.ndarray
    category: np.ndarray
    view: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    pose: np.ndarray
    gt_pose: np.ndarray
    images: np.ndarray
    gt: dict

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat {name: array} for an npz file (no object arrays; images as the data's 8-bit values)."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("gt", "images")}
        arrays["images"] = np.round(self.images * _PIXEL_MAX).astype(np.uint8)
        arrays.update({f"gt_{gt_type}": cloud for gt_type, cloud in self.gt.items()})
        return {k: (v.astype(str) if k in _STRING_FIELDS else v) for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays) -> Predictions:
        """The inverse of `to_arrays` (bit-identical: the images are 8-bit values / 255 in the data too)."""
        plain = {f.name: np.asarray(arrays[f.name]) for f in dataclasses.fields(cls) if f.name not in ("gt", "images")}
        images = np.asarray(arrays["images"]).astype(np.float32) / np.float32(_PIXEL_MAX)
        gt = {k[len("gt_"):]: np.asarray(arrays[k]) for k in arrays if k.startswith("gt_") and k != "gt_pose"}
        return cls(images=images, gt=gt, **plain)


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


def predict_split(recon_net, pose_net, data_dir, split: str, batch_size: int, gt_types, categories=None,
                  max_models: int = 0, progress: bool = True, refiner=None) -> Predictions:
    """Runs the networks over one split (baseline §10.1; arguments as `iterate_split`).

    Args:
      recon_net: Keras model, images `[B, H, H, 3]` -> {"xyz": `[B, N, 3]`, "rgb": `[B, N, 3]`, ...}.
      pose_net: Keras model, images `[B, H, H, 3]` -> {"pose": `[B, 2]`}.
      refiner: an `evaluation.refinement.Refiner` to fine-tune copies of the networks on each image before
        predicting it (test-time refinement), or None.

    Returns:
      Predictions of the split.
    """
    parts: dict[str, list] = {}
    for batch in iterate_split(data_dir, split, batch_size, gt_types, categories, max_models, progress,
                               desc=f"predict {split}" + (f", refined {refiner.steps} steps" if refiner else "")):
        if refiner is None:  # Keras compiles and caches the inference functions
            out = {**recon_net.predict_on_batch(batch["image"]), **pose_net.predict_on_batch(batch["image"])}
        else:
            out = refiner.predict_batch(batch["image"], batch["mask"], batch["pose"])
        batch.update(xyz=np.asarray(out["xyz"]), rgb=np.asarray(out["rgb"]), pred_pose=np.asarray(out["pose"]))
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    if not parts:
        raise ValueError(f"eval: split {split!r} of {data_dir} gave no examples")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Predictions(_strings(cat["model_id"]), _strings(cat["category"]), cat["view"], cat["xyz"],
                       cat["rgb"], cat["pred_pose"], cat["pose"], cat["image"],
                       {g: cat[GT_FEATURES[g]] for g in gt_types})


def split_categories(data_dir, split: str, categories=None) -> list[str]:
    """Categories with examples in `split` of `data_dir` (restricted to `categories` when given)."""
    counts = tfrecords.read_index(data_dir)["splits"].get(split, {}).get("examples", {})
    return sorted(c for c, n in counts.items() if n and (categories is None or c in categories))


def training_gts(data_dir, split: str, gt_types, categories, batch_size: int) -> dict:
    """{gt type: {category: float `[T, K, 3]`}} GT clouds of a split for the mean shape (the first
    4 · REFERENCE_CANDIDATES of each category in file order)."""
    out: dict[str, dict] = {g: {} for g in gt_types}
    for category in split_categories(data_dir, split, categories):
        batches = list(iterate_split(data_dir, split, batch_size, gt_types, [category],
                                     max_models=4 * REFERENCE_CANDIDATES, progress=False))
        for g in gt_types:
            out[g][category] = np.concatenate([b[GT_FEATURES[g]] for b in batches])
    if not any(out.values()):
        raise ValueError(f"eval: split {split!r} of {data_dir} has no examples of categories {categories} "
                         f"for the mean-shape reference")
    return out


def default_fit_split(data_dir, training_split: str) -> str:
    """`val` when the data set has a non-empty one (the baseline's align split, §10.2), else `training_split`."""
    val = tfrecords.read_index(data_dir)["splits"].get("val")
    return "val" if val and sum(val["examples"].values()) else training_split
