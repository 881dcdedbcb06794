"""TFRecord schema, sharded writer, JSON index and the tf.data reader of a built data set.

One `tf.train.Example` per (model, view) holds everything that belongs together: the model id, its
category, the view index, the RGB render and its mask (PNG), the pose and the ground-truth clouds. The
baseline kept images, masks and poses in three files zipped record by record, and its writer skipped
missing files silently, which could pair an image with another model's mask (baseline §2.3, §13.5).
Here an image and its mask are two features of the same Example, so they cannot drift apart.

Shapes: H = W = image size (square), N = points per cloud, B = batch.

Features of one Example (`FEATURES`, plus one float list per ground-truth type present, see
`feature_spec`):

* ``model_id``   bytes, the model id (ShapeNet directory name or mesh file stem).
* ``category``   bytes, the category name ("car", "chair", ...; the synset id for unknown synsets).
* ``view``       int64, the view index of the model (0..9; baseline §2.1 renders 10 per model).
* ``image``      bytes, PNG, RGB uint8 [H, W, 3], black background (baseline §2.4).
* ``mask``       bytes, PNG, grey uint8 [H, W] in {0, 255}.
* ``pose``       float32 [2] = (azimuth, elevation) in radians (baseline §2.5).
* ``gt_uniform`` float32 [N * 3], the baseline ground truth: 16,384 uniform surface samples reduced to
  N by farthest point sampling (baseline §2.6), row-major [N, 3].
* ``gt_area``    float32 [N * 3], the study's area-based ground truth (baseline §11.2), row-major [N, 3].

Clouds are stored in the render frame of `data.meshes` (so that `geometry.camera.project(gt, pose)` lands
on the mask for data built from meshes).

Files of a data directory: the shards ``<split>-<i>-of-<n>.tfrecord`` (i counted from 0; data.build writes
them into a folder ``pack-<k>/``) and ``index.json`` (see `read_index`), written last, which names the
shards with their sizes, so a directory without an index is an unfinished build, and a shard that is
missing or of another size is reported by name before anything is read (`split_examples`); TensorFlow
reads a truncated shard as a shorter one without a word.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import tensorflow as tf
from PIL import Image

INDEX_NAME = "index.json"
INDEX_FORMAT_VERSION = 1
#: Ground-truth clouds an Example may hold: the --gt_type name of each sampling pipeline (the baseline's
#: "uniform", §2.6; the study's "area", §11.2) -> the Example feature that stores its cloud.
GT_FEATURES = {"uniform": "gt_uniform", "area": "gt_area"}

FEATURES = {
    "model_id": tf.io.FixedLenFeature([], tf.string),
    "category": tf.io.FixedLenFeature([], tf.string),
    "view": tf.io.FixedLenFeature([], tf.int64),
    "image": tf.io.FixedLenFeature([], tf.string),
    "mask": tf.io.FixedLenFeature([], tf.string),
    "pose": tf.io.FixedLenFeature([2], tf.float32),
}

_REQUIRED_INDEX_KEYS = ("format_version", "image_size", "n_points", "gt_types", "splits")


def shard_name(split: str, index: int, num_shards: int) -> str:
    """File name of shard `index` (0-based) of `num_shards` of a split: ``<split>-<i>-of-<n>.tfrecord``."""
    return f"{split}-{index}-of-{num_shards}.tfrecord"


def feature_spec(n_points: int, gt_types: Iterable[str]) -> dict:
    """Parsing spec of an Example: `FEATURES` plus a FixedLenFeature [n_points * 3] per GT type.

    Raises:
        ValueError: an unknown ground-truth type.
    """
    spec = dict(FEATURES)
    for gt in gt_types:
        if gt not in GT_FEATURES.values():
            raise ValueError(f"unknown ground-truth feature {gt!r}; known: {tuple(GT_FEATURES.values())}")
        spec[gt] = tf.io.FixedLenFeature([n_points * 3], tf.float32)
    return spec


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 array [H, W] (grey) or [H, W, 3] (RGB)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def serialize_example(example: Mapping) -> bytes:
    """Serialises one (model, view) example to a `tf.train.Example` (module docstring).

    Args:
        example: mapping with ``model_id`` (str), ``category`` (str), ``view`` (int), ``image`` uint8
            [H, W, 3], ``mask`` [H, W] (any dtype; nonzero = object), ``pose`` [2] radians, and any of
            ``gt_uniform`` / ``gt_area`` [N, 3].

    Returns:
        The serialised Example.

    Raises:
        ValueError: wrong image/mask/pose/cloud shape or dtype, naming the model.
    """
    name = f"{example['category']}/{example['model_id']} view {example['view']}"
    image = np.asarray(example["image"])
    mask = np.asarray(example["mask"])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{name}: mask shape {mask.shape} != image shape {image.shape[:2]}")
    pose = np.asarray(example["pose"], np.float32)
    if pose.shape != (2,):
        raise ValueError(f"{name}: pose must be [2] (azimuth, elevation), got {pose.shape}")
    feature = {
        "model_id": _bytes_feature(str(example["model_id"]).encode()),
        "category": _bytes_feature(str(example["category"]).encode()),
        "view": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(example["view"])])),
        "image": _bytes_feature(_png(image)),
        "mask": _bytes_feature(_png(np.where(mask > 0, 255, 0).astype(np.uint8))),
        "pose": _float_feature(pose),
    }
    for gt in GT_FEATURES.values():
        if gt in example:
            cloud = np.asarray(example[gt], np.float32)
            if cloud.ndim != 2 or cloud.shape[1] != 3:
                raise ValueError(f"{name}: {gt} must be [N, 3], got {cloud.shape}")
            feature[gt] = _float_feature(cloud.reshape(-1))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _float_feature(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))


def write_shards(examples: Iterable[Mapping], out_dir, split: str, num_shards: int) -> list[str]:
    """Writes examples round-robin into `num_shards` files ``<split>-<i>-of-<n>.tfrecord``.

    Each file is written under a temporary name and renamed when complete. Example k goes to shard
    k mod num_shards, so the caller's order (e.g. a seeded permutation) fixes the content of every file.

    Args:
        examples: iterable of example mappings (see `serialize_example`).
        out_dir: existing output directory.
        split: split name used in the file names.
        num_shards: number of files, >= 1.

    Returns:
        The shard file names (relative to `out_dir`), in shard order.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    out_dir = Path(out_dir)
    names = [shard_name(split, i, num_shards) for i in range(num_shards)]
    temporary = [out_dir / f".{name}.tmp" for name in names]
    writers = [tf.io.TFRecordWriter(str(path)) for path in temporary]
    try:
        for k, example in enumerate(examples):
            writers[k % num_shards].write(serialize_example(example))
    finally:
        for writer in writers:
            writer.close()
    for path, name in zip(temporary, names):
        os.replace(path, out_dir / name)
    return names


def write_index(out_dir, index: Mapping) -> Path:
    """Writes ``index.json`` atomically (temporary file + rename) and returns its path."""
    index = dict(index, format_version=INDEX_FORMAT_VERSION)
    missing = [key for key in _REQUIRED_INDEX_KEYS if key not in index]
    if missing:
        raise ValueError(f"index for {out_dir} lacks {missing}")
    path = Path(out_dir) / INDEX_NAME
    tmp = path.with_name(f".{INDEX_NAME}.tmp")
    tmp.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_index(data_dir) -> dict:
    """Reads the JSON index of a built data directory.

    The index holds: ``format_version``; ``image_size`` (H = W); ``n_points`` (N); ``views`` (views per
    model, or "split files"); ``gt_types`` present and ``gt_params`` (how each was made); ``frame``;
    ``seed``; ``source``; ``split_rule``; ``splits`` = {split: {"shards": [paths relative to the data
    directory], "bytes": [size of each shard] (absent in data sets built before it was recorded),
    "examples": {category: count}, "models": {category: count}}}, every split of the rule listed (an empty
    one, e.g. test of ``--split 100/0``, with zero counts and no shard).

    Raises:
        FileNotFoundError: no index (not a data directory, or an unfinished build).
        ValueError: an index of another format version or with missing keys.
    """
    path = Path(data_dir) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {data_dir} is not a finished data set "
                                "(build one with `python -m data.build`)")
    index = json.loads(path.read_text())
    missing = [key for key in _REQUIRED_INDEX_KEYS if key not in index]
    if missing or index["format_version"] != INDEX_FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported index (format_version {index.get('format_version')}, "
                         f"expected {INDEX_FORMAT_VERSION}; missing keys {missing})")
    return index


def parse_categories(spec: str) -> list[str] | None:
    """Category names from ``"car"``, ``"car,chair"`` or ``"all"`` (None: every category of a data set).

    Raises:
        ValueError: no category named.
    """
    if spec.strip() == "all":
        return None
    names = [c.strip() for c in spec.split(",") if c.strip()]
    if not names:
        raise ValueError("the category list is empty; give a category name, a comma-separated list or 'all'")
    return names


def num_examples(index: Mapping, split: str, categories: Iterable[str] | None = None) -> int:
    """Number of examples of `split` (optionally only `categories`) according to the index (0 for an empty
    split, e.g. the test split of ``--split 100/0``)."""
    counts = _split_entry(index, split)["examples"]
    return sum(n for category, n in counts.items() if categories is None or category in categories)


def _split_entry(index: Mapping, split: str) -> dict:
    if split not in index["splits"]:
        raise ValueError(f"split {split!r} not in the data set; it has {sorted(index['splits'])}")
    return index["splits"][split]


def split_examples(data_dir, split: str, categories: Iterable[str] | None = None) -> int:
    """The number of examples a reader of `split` (of `categories`) gets from a built data set: at least one,
    every shard present, at its recorded size.

    Raises:
        FileNotFoundError: no index (see `read_index`), or a shard that the index lists is missing.
        ValueError: an unknown split or category; an empty selection, said as such ("split 'test' of DIR is
            empty (built with --split 100/0)"); a shard whose size is not the one recorded when it was
            written (truncated, or damaged).
    """
    index = read_index(data_dir)
    entry = _split_entry(index, split)
    if categories is not None:
        unknown = [c for c in categories if c not in entry["examples"]]
        if unknown:
            raise ValueError(f"categories {unknown} not in split {split!r} of {data_dir}; it has "
                             f"{sorted(entry['examples'])}")
    built_with = f"built with --split {index.get('split_rule', '?')}"
    if num_examples(index, split) == 0:
        raise ValueError(f"split {split!r} of {data_dir} is empty ({built_with})")
    count = num_examples(index, split, categories)
    if count == 0:
        raise ValueError(f"split {split!r} of {data_dir} has no example of the categories {list(categories)} "
                         f"({built_with}; it holds {sorted(c for c, n in entry['examples'].items() if n)})")
    for shard, size in zip(entry["shards"], entry.get("bytes", [None] * len(entry["shards"]))):
        path = Path(data_dir) / shard
        if not path.is_file():
            raise FileNotFoundError(f"shard {path} listed in {Path(data_dir) / INDEX_NAME} is missing: "
                                    f"{_REPACK}")
        if size is not None and path.stat().st_size != size:
            raise ValueError(f"shard {path} has {path.stat().st_size} bytes, not the {size} it was written "
                             f"with: it is truncated or damaged; {_REPACK}")
    return count


#: What to do about a missing or damaged shard.
_REPACK = ("write the shards again from the model cache with the build's command and --pack_only, or build "
           "the data set again")


def damaged_shard(data_dir, split: str) -> str | None:
    """The first shard of `split` that cannot be read to its end, with TensorFlow's reason, or None."""
    for shard in _split_entry(read_index(data_dir), split)["shards"]:
        try:
            for _ in tf.data.TFRecordDataset(str(Path(data_dir) / shard)):
                pass
        except tf.errors.DataLossError as err:
            return f"{Path(data_dir) / shard} ({_reason(err)})"
    return None


def _reason(err: tf.errors.OpError) -> str:
    """TensorFlow's error message without the names of its internal function and op."""
    return re.sub(r"\s*\[Op:.*$", "", re.sub(r"\{\{.*?\}\}\s*", "", err.message), flags=re.S).strip()


def named_read_errors(batches: Iterable, data_dir, split: str) -> Iterator:
    """Yields from `batches` (of a `make_dataset` of `split`); a damaged shard's DataLossError, which names
    no file, becomes a ValueError naming the shard (found by reading each shard of the split again).

    Raises:
        ValueError: a shard could not be read (the message names it and what to do).
    """
    try:
        yield from batches
    except tf.errors.DataLossError as err:
        where = damaged_shard(data_dir, split) or f"a shard of split {split!r} of {data_dir} ({_reason(err)})"
        raise ValueError(f"damaged TFRecord shard {where}; {_REPACK}") from None


def make_dataset(data_dir, split: str, batch_size: int, shuffle: bool = True, seed: int | None = None,
                 repeat: bool = True, categories: Iterable[str] | None = None,
                 drop_remainder: bool = True, gt_types: Iterable[str] | None = None,
                 shuffle_buffer: int | None = None, skip: int = 0) -> tf.data.Dataset:
    """The tf.data pipeline of one split: shuffled shards → parse → shuffle → repeat → decode → batch.

    Shards are read interleaved, PNGs are decoded in parallel and batches are prefetched. With a seed,
    the order of examples is a function of the seed alone (file order, interleave, shuffle and parallel
    map are all deterministic); without one, the order may vary between runs.

    Args:
        data_dir: directory written by `data.build` (shards + index.json).
        split: "train", "val" or "test" (whatever the index holds).
        batch_size: B.
        shuffle: shuffle shard order and examples (buffer: the whole split, as the baseline did,
            baseline §2.4, unless `shuffle_buffer` is given). Reshuffled every epoch.
        seed: seed of every shuffle; None for a non-deterministic order.
        repeat: repeat forever.
        categories: keep only these categories (names as in the index).
        drop_remainder: drop the last partial batch.
        gt_types: ground-truth clouds to read; None = all present in the index.
        shuffle_buffer: shuffle buffer size in examples (default: the number of examples selected).
        skip: examples dropped from the start of the (shuffled, repeated) stream, before they are decoded:
            a training run resumed at step s with batches of B passes s·B and so sees, with the same seed,
            the batches the uninterrupted run saw from step s on (each dropped example is still read and
            parsed, not decoded).

    Returns:
        Dataset of dicts: ``image`` float32 [B, H, W, 3] in [0, 1]; ``mask`` float32 [B, H, W] in {0, 1};
        ``pose`` float32 [B, 2] radians; ``gt_uniform`` / ``gt_area`` float32 [B, N, 3] (those read);
        ``model_id`` string [B]; ``category`` string [B]; ``view`` int64 [B].

    Raises:
        FileNotFoundError: no data set, or a missing shard (`split_examples`).
        ValueError: unknown split or category, an empty split or selection, a shard of the wrong size
            (`split_examples`), or a requested ground-truth type that the data set does not hold (e.g.
            ``gt_area`` for data ingested from the baseline's layout without it). A shard damaged inside
            raises tf.errors.DataLossError when read; `named_read_errors` names it.
    """
    categories = None if categories is None else list(categories)
    count = split_examples(data_dir, split, categories)
    index = read_index(data_dir)
    entry = _split_entry(index, split)
    present = list(index["gt_types"])
    gt_types = present if gt_types is None else list(gt_types)
    absent = [gt for gt in gt_types if gt not in present]
    if absent:
        raise ValueError(f"{data_dir}: ground truth {absent} requested but the data set only holds "
                         f"{present} (source: {index.get('source')})")
    size, n_points = int(index["image_size"]), int(index["n_points"])
    spec = feature_spec(n_points, gt_types)
    deterministic = seed is not None or not shuffle  # unshuffled reads keep the file order

    files = tf.data.Dataset.from_tensor_slices([str(Path(data_dir) / f) for f in entry["shards"]])
    if shuffle:
        files = files.shuffle(len(entry["shards"]), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=len(entry["shards"]),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.map(lambda record: tf.io.parse_single_example(record, spec),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if categories is not None:
        wanted = tf.constant(categories)
        ds = ds.filter(lambda ex: tf.reduce_any(tf.equal(ex["category"], wanted)))
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if skip:
        ds = ds.skip(skip)

    def decode(ex):
        image = tf.io.decode_png(ex["image"], channels=3)
        mask = tf.io.decode_png(ex["mask"], channels=1)[..., 0]
        out = {
            "image": tf.ensure_shape(tf.cast(image, tf.float32) / 255.0, [size, size, 3]),
            "mask": tf.ensure_shape(tf.cast(mask > 127, tf.float32), [size, size]),
            "pose": ex["pose"],
            "model_id": ex["model_id"],
            "category": ex["category"],
            "view": ex["view"],
        }
        for gt in gt_types:
            out[gt] = tf.reshape(ex[gt], [n_points, 3])
        return out

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
