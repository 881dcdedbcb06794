"""Nearest-neighbour image pairs for OURS-NN training (baseline §2.7, §6, §7.7) and a CLI to compute lists.

Shape legend: B batch, H = W image size, M examples of a split, R rows of a neighbour list, K neighbours
per row, A anchors of the list present in the data set, Q ranks drawn from (Q = min(ranks, K)).

A neighbour list (``data.knn_list.load_knn_list``: the baseline's ``knn_list_<synset>.npy`` or one
written here) names, per anchor image ``"<model>_<view>"``, its nearest images, nearest first. Training
with it (``train.py --knn_list``) pairs every example with one of its listed neighbours:

* the split (of the categories trained on) is read into memory once (uint8; a ShapeNet category is a few
  thousand 64 px images, well under 100 MB) and a ``tf.lookup.StaticHashTable`` maps the anchor keys to
  their rows;
* examples that are no anchor of the list are left out, as the baseline's NN TFRecords held only the
  listed anchors (§2.7); an anchor listed more than once (the baseline's chair list has 4744 rows for
  4734 anchors) uses its first row;
* every step, each example's neighbour rank is drawn uniformly from 1..Q with the stateless seed
  ``(seed, step)``. The baseline's writer drew 4 distinct ranks from 1..5 per copy of an anchor and the
  NN script read the first of them as ``image_2``, i.e. a rank uniform on 1..5 (§2.7): ``ranks = 5``.

Every neighbour that can be drawn must be an example of the same split, else a ValueError names them.

Lists computed from a trained run (the baseline's lists came from an OURS-CC model's ``enc_feat``, §2.7;
the driver ``make_knn_list.py`` embeds the images) name images of OTHER models
(:func:`knn_table_other_models`; §6: "a neighbour image of a different model"): the other views of the
anchor's own model are skipped.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from data import tfrecords
from data.knn_list import knn_from_embeddings, load_knn_list, make_key

#: Neighbour ranks the baseline drew from: random.sample(range(1, 6), 4) (baseline §2.7, k_range = 6).
BASELINE_RANKS = 5
#: Examples decoded at once when a split is read into memory.
_READ_BATCH = 256
#: Names shown in an error listing missing or invalid neighbours.
_SHOWN = 10


@dataclass(frozen=True)
class SplitImages:
    """One split of a data set in memory.

    Attributes:
        keys: str ``[M]`` ``"<model>_<view>"`` of every example, in file order.
        model_ids: str ``[M]``.
        views: int64 ``[M]``.
        images: uint8 ``[M, H, W, 3]``.
        masks: uint8 ``[M, H, W]`` in {0, 1}.
    """

    keys: np.ndarray
    model_ids: np.ndarray
    views: np.ndarray
    images: np.ndarray
    masks: np.ndarray


def load_split(data_dir, split: str, categories=None) -> SplitImages:
    """Read the images and masks of one split (optionally only some categories) into memory.

    Raises:
        ValueError: two examples share a key (the same model id and view), so a list would be ambiguous.
    """
    ds = tfrecords.make_dataset(data_dir, split, _READ_BATCH, shuffle=False, repeat=False,
                                categories=categories, drop_remainder=False, gt_types=[])
    parts = {"model_id": [], "view": [], "image": [], "mask": []}
    for batch in ds:
        for name, values in parts.items():
            values.append(batch[name].numpy())
    model_ids, views = np.concatenate(parts["model_id"]).astype(str), np.concatenate(parts["view"])
    keys = np.array([make_key(m, v) for m, v in zip(model_ids, views)], dtype=str)
    unique, counts = np.unique(keys, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"data/neighbours.py: split {split!r} of {data_dir} holds these examples more than "
                         f"once (same model id and view): {unique[counts > 1][:_SHOWN].tolist()}")
    return SplitImages(keys=keys, model_ids=model_ids, views=views,
                       images=np.rint(np.concatenate(parts["image"]) * 255.0).astype(np.uint8),
                       masks=np.concatenate(parts["mask"]).astype(np.uint8))


@dataclass(frozen=True)
class NeighbourPairs:
    """A neighbour list resolved against one split of a data set.

    Attributes:
        anchors: str ``[A]`` keys of the list's anchors that are examples of the split.
        neighbours: int32 ``[A, Q]`` rows in ``split`` of each anchor's neighbours of ranks 1..Q.
        split: the split in memory.
        summary: one line saying how much of the list and of the split is used.
    """

    anchors: np.ndarray
    neighbours: np.ndarray
    split: SplitImages
    summary: str


def resolve(table: np.ndarray, split: SplitImages, ranks: int = BASELINE_RANKS,
            name: str = "the neighbour list", split_name: str = "the split") -> NeighbourPairs:
    """Match a neighbour table with the examples of a split.

    Args:
        table: str ``[R, 1 + K]`` (``load_knn_list``).
        split: from :func:`load_split`.
        ranks: draw from the neighbours of ranks 1..ranks (fewer when the list has fewer columns).
        name, split_name: how the list and the split are named in messages.

    Raises:
        ValueError: no anchor is an example of the split; an anchor lists itself as a neighbour; a
            neighbour that can be drawn is not an example of the split (the first ones are named).
    """
    if ranks < 1:
        raise ValueError(f"data/neighbours.py: ranks must be >= 1, got {ranks}")
    q = min(ranks, table.shape[1] - 1)
    _, first = np.unique(table[:, 0], return_index=True)
    rows = table[np.sort(first)]
    rows = rows[np.isin(rows[:, 0], split.keys)]
    if len(rows) == 0:
        raise ValueError(f"data/neighbours.py: none of the {len(first)} anchors of {name} (e.g. "
                         f"{table[:3, 0].tolist()}) is an example of {split_name} "
                         f"(e.g. {split.keys[:3].tolist()})")
    candidates = rows[:, 1:1 + q]
    selfish = rows[(candidates == rows[:, :1]).any(axis=1), 0]
    if len(selfish):
        raise ValueError(f"data/neighbours.py: {len(selfish)} anchors of {name} list themselves as a "
                         f"neighbour: {selfish[:_SHOWN].tolist()}")
    missing = np.setdiff1d(candidates, split.keys)
    if len(missing):
        raise ValueError(f"data/neighbours.py: {len(missing)} neighbours (ranks 1..{q}) listed in {name} are "
                         f"not examples of {split_name}: {missing[:_SHOWN].tolist()}"
                         f"{' ...' if len(missing) > _SHOWN else ''}")
    order = np.argsort(split.keys)
    neighbours = order[np.searchsorted(split.keys, candidates, sorter=order)].astype(np.int32)
    summary = (f"{name}: {len(rows)} of its {len(first)} anchors are among the {len(split.keys)} examples "
               f"of {split_name} and are trained on, each with a neighbour of rank 1..{q}")
    return NeighbourPairs(anchors=rows[:, 0], neighbours=neighbours, split=split, summary=summary)


def load_pairs(knn_list, data_dir, split: str, categories=None,
               ranks: int = BASELINE_RANKS) -> NeighbourPairs:
    """:func:`resolve` of the list file ``knn_list`` against split ``split`` of ``data_dir``."""
    return resolve(load_knn_list(knn_list), load_split(data_dir, split, categories), ranks,
                   name=str(knn_list),
                   split_name=f"split {split!r} of {data_dir} (categories {categories or 'all'})")


def paired_dataset(pairs: NeighbourPairs, data_dir, split: str, batch_size: int, *, seed: int,
                   first_step: int = 0, categories=None, gt_types=None) -> tf.data.Dataset:
    """``tfrecords.make_dataset`` restricted to the anchors, each example with one of its neighbours.

    Args:
        pairs: from :func:`load_pairs` for the same ``data_dir``, ``split`` and ``categories``.
        data_dir, split, batch_size, categories, gt_types: as ``tfrecords.make_dataset`` (shuffled,
            repeated, full batches).
        seed: seed of the shuffle and of the neighbour draws.
        first_step: step number of the first batch (a resumed run's step): the batches before it are
            dropped, so that a resumed run sees the batches of the uninterrupted one, and batch i draws its
            ranks with the stateless seed ``(seed, first_step + i)``.

    Returns:
        Dataset of the dicts of ``make_dataset`` plus ``image_2`` float32 ``[B, H, W, 3]`` in [0, 1],
        ``mask_2`` float32 ``[B, H, W]`` in {0, 1}, ``model_id_2`` string ``[B]`` and ``view_2`` int64
        ``[B]`` of the neighbour (baseline §6 img_2, mask_2).
    """
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(pairs.anchors), tf.range(len(pairs.anchors))), -1)
    neighbours = tf.constant(pairs.neighbours)
    images, masks = tf.constant(pairs.split.images), tf.constant(pairs.split.masks)
    model_ids, views = tf.constant(pairs.split.model_ids), tf.constant(pairs.split.views)

    def row(ex):
        return table.lookup(tf.strings.join([ex["model_id"], tf.strings.as_string(ex["view"])], "_"))

    def attach(step, batch):
        anchor = row(batch)
        rank = tf.random.stateless_uniform(tf.shape(anchor), tf.stack([tf.constant(seed, tf.int64), step]),
                                           maxval=neighbours.shape[1], dtype=tf.int32)
        other = tf.gather_nd(neighbours, tf.stack([anchor, rank], axis=1))
        return {**batch, "image_2": tf.cast(tf.gather(images, other), tf.float32) / 255.0,
                "mask_2": tf.cast(tf.gather(masks, other), tf.float32),
                "model_id_2": tf.gather(model_ids, other), "view_2": tf.gather(views, other)}

    ds = tfrecords.make_dataset(data_dir, split, 1, shuffle=True, seed=seed, categories=categories,
                                gt_types=gt_types).unbatch()
    ds = ds.filter(lambda ex: row(ex) >= 0).skip(first_step * batch_size).batch(batch_size, drop_remainder=True)
    return ds.enumerate(start=first_step).map(attach).prefetch(tf.data.AUTOTUNE)


def knn_table_other_models(split: SplitImages, embeddings: np.ndarray, k: int,
                           metric: str = "cosine") -> np.ndarray:
    """A neighbour table in the baseline's layout whose neighbours are images of other models.

    The k + V − 1 nearest embeddings (V = most views of one model) hold at least k of other models.

    Args:
        split: the images the embeddings belong to.
        embeddings: float ``[M, D]``, row i of ``split.keys[i]``.
        k: neighbours per anchor.
        metric: ``data.knn_list.knn_from_embeddings`` metric.

    Returns:
        str ``[M, 1 + k]``: every key followed by its k nearest keys of other models, nearest first.
    """
    _, per_model = np.unique(split.model_ids, return_counts=True)
    wider = k + int(per_model.max()) - 1
    if wider >= len(split.keys):
        raise ValueError(f"data/neighbours.py: {k} neighbours of other models need more than "
                         f"{len(split.keys)} images of {len(per_model)} models")
    idx = knn_from_embeddings(embeddings, wider, metric)
    other = split.model_ids[idx] != split.model_ids[:, None]
    picked = np.stack([row[keep][:k] for row, keep in zip(idx, other)])
    return np.concatenate([split.keys[:, None], split.keys[picked]], axis=1)
