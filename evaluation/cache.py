"""Cache of an evaluation's expensive parts: predictions, fitted rotations and mean training shapes.

Re-scoring a run with other options (ICP, EMD, the denominator, the references' draws) needs neither a new
prediction nor a new rotation fit. Each entry is one `.npz` file (NumPy arrays only, read with
`allow_pickle=False`) named after a key: the SHA-256 of the JSON of everything its content depends on (the
checkpoint, the data set, the split, the settings); the JSON is stored inside the file and checked on reading,
so a file never stands in for another key. The checkpoint and the data set enter through `checkpoint_identity`
and `data_identity` (path, step, size and modification time of the checkpoint's index; the data set's
index.json), so a run trained again or a data set built again is not mistaken for the old one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from absl import logging

from data import tfrecords

KEY_ARRAY = "__key__"


def checkpoint_identity(checkpoint_path: str, step: int) -> dict:
    """What identifies a checkpoint: its path, step and the size and mtime of its `.index` file."""
    index = Path(f"{checkpoint_path}.index")
    stat = index.stat()
    return {"checkpoint": str(Path(checkpoint_path).resolve()), "step": step, "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns}


def data_identity(data_dir) -> dict:
    """What identifies a built data set: its resolved path and the SHA-256 of its index.json."""
    index = json.dumps(tfrecords.read_index(data_dir), sort_keys=True)
    return {"data_dir": str(Path(data_dir).resolve()), "index_sha256": hashlib.sha256(index.encode()).hexdigest()}


def key_name(kind: str, key: dict) -> str:
    """`<kind>_<first 16 hex digits of the SHA-256 of the key's JSON>` (a file name without suffix)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}_{digest[:16]}"


class Cache:
    """A folder of npz entries (`folder` None: a cache that never holds anything).

    Attributes:
      folder: where the entries live.  used: the names of the entries read back (for the report).
    """

    def __init__(self, folder: str | Path | None):
        self.folder = None if folder is None else Path(folder)
        self.used: list[str] = []

    def load(self, kind: str, key: dict) -> dict[str, np.ndarray] | None:
        """The arrays stored under `key`, or None (no cache, no entry, or an entry of another key)."""
        if self.folder is None:
            return None
        path = self.folder / f"{key_name(kind, key)}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        if str(arrays.pop(KEY_ARRAY, "")) != json.dumps(key, sort_keys=True, default=str):
            logging.warning("eval cache: %s holds another key; ignored", path)
            return None
        self.used.append(path.name)
        logging.info("eval cache: using %s (%s)", path, kind)
        return arrays

    def save(self, kind: str, key: dict, arrays: dict[str, np.ndarray]) -> None:
        """Stores `arrays` under `key` (written to a temporary file, then renamed: never half-written)."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key_name(kind, key)}.npz"
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **{KEY_ARRAY: np.array(json.dumps(key, sort_keys=True, default=str))}, **arrays)
        partial.replace(path)
