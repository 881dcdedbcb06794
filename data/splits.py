"""Deterministic train/val/test splits by model id, and the baseline's own split files (baseline §2.2).

Two kinds of split:

* A ratio such as ``"50/50"`` (train/test, the study's default) or ``"70/10/20"`` (train/val/test, the
  baseline's proportions). Rule, applied per category: sort the category's model ids; split i receives
  ``floor(n * w_i / sum(w))`` models, and the models left over go one each to the splits with the
  largest remainders ``n * w_i mod sum(w)`` (ties: the earlier split, i.e. train before val before
  test), so counts are exact and sum to n; then a permutation of the sorted ids drawn from
  ``numpy.random.default_rng([seed, stable_hash(category)])`` hands the first counts[train] ids to
  train, the next to val, the rest to test. The result depends only on the set of ids, the seed and the
  category: not on the file system order, on other categories or on worker counts.
* A directory holding the baseline's files ``images_list_<synset>_<split>.npy``: numpy object arrays
  (n, 1) of ``"<model_id>_<view>"`` strings, one view per model (baseline §2.2), i.e. pickles, read by
  ``data.string_arrays.load_string_array`` without running them (plain string arrays are read too). They fix
  both the models of each split and the view used for each model.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from data.string_arrays import load_string_array

SPLIT_NAMES_2 = ("train", "test")
SPLIT_NAMES_3 = ("train", "val", "test")
SPLIT_FILE = "images_list_{synset}_{split}.npy"
_RATIO = re.compile(r"^\d+(/\d+){1,2}$")


def stable_hash(text: str) -> int:
    """A 64-bit integer hash of `text` that is the same in every process and Python version."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def parse_ratio(spec: str) -> dict[str, int] | None:
    """Parses "a/b" (train/test) or "a/b/c" (train/val/test) into {split: weight}; None if not a ratio.

    Raises:
        ValueError: a ratio whose weights are all zero.
    """
    if not _RATIO.match(spec):
        return None
    weights = [int(w) for w in spec.split("/")]
    if sum(weights) == 0:
        raise ValueError(f"split ratio {spec!r} has no positive weight")
    names = SPLIT_NAMES_2 if len(weights) == 2 else SPLIT_NAMES_3
    return dict(zip(names, weights))


def split_counts(n: int, weights: dict[str, int]) -> dict[str, int]:
    """Exact per-split counts of `n` models for integer `weights` (largest-remainder rule, module doc)."""
    total = sum(weights.values())
    counts = {name: n * w // total for name, w in weights.items()}
    left = n - sum(counts.values())
    order = sorted(weights, key=lambda name: -(n * weights[name] % total))  # stable: ties keep order
    for name in order[:left]:
        counts[name] += 1
    return counts


def ratio_split(model_ids: Sequence[str], weights: dict[str, int], seed: int,
                category: str) -> dict[str, list[str]]:
    """Splits one category's model ids by ratio (module docstring).

    Args:
        model_ids: the category's model ids (any order; duplicates are an error).
        weights: {split: integer weight}, e.g. from `parse_ratio`.
        seed: split seed.
        category: category name (part of the permutation seed).

    Returns:
        {split: sorted model ids}, every split of `weights` present (possibly empty).
    """
    ids = sorted(model_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate model ids in category {category!r}")
    counts = split_counts(len(ids), weights)
    order = np.random.default_rng([seed, stable_hash(category)]).permutation(len(ids))
    out, start = {}, 0
    for name, count in counts.items():
        out[name] = sorted(ids[i] for i in order[start:start + count])
        start += count
    return out


def read_split_files(split_dir, synset: str) -> dict[str, list[tuple[str, int]]]:
    """Reads the baseline's split files of one synset (baseline §2.2).

    Args:
        split_dir: directory holding ``images_list_<synset>_<split>.npy`` for split in train/val/test
            (those absent are left out).
        synset: ShapeNet synset id, e.g. "02958343".

    Returns:
        {split: [(model_id, view), ...]} in file order.

    Raises:
        ValueError: no split file for the synset, a file that is not an array of strings (a pickle that
            is anything else is refused, never run), an entry that is not "<model_id>_<view>", a model
            listed twice, or a model in two splits; the message names the file.
    """
    split_dir = Path(split_dir)
    out, owner = {}, {}
    for split in SPLIT_NAMES_3:
        path = split_dir / SPLIT_FILE.format(synset=synset, split=split)
        if not path.is_file():
            continue
        entries = []
        for text in load_string_array(path).reshape(-1).tolist():
            model_id, _, view = text.rpartition("_")
            if not model_id or not view.isdigit():
                raise ValueError(f"{path}: entry {text!r} is not '<model_id>_<view>'")
            if model_id in owner:
                raise ValueError(f"{path}: model {model_id} already listed in {owner[model_id]}")
            owner[model_id] = path.name
            entries.append((model_id, int(view)))
        out[split] = entries
    if not out:
        raise ValueError(f"no split file {SPLIT_FILE.format(synset=synset, split='<split>')} "
                         f"in {split_dir}")
    return out
