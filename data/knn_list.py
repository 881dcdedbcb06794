"""Neighbour lists of OURS-NN (baseline §2.7): their file format and the k nearest embeddings they list.

Shape legend: R rows of a neighbour list, K neighbours per row, M images embedded, D embedding width
(2·bottleneck = 256).

Neighbour lists in the baseline's format (``data/knn_list_<synset>.npy``, §2.7): a 2-D array of byte
strings ``"<model>_<view>"``; column 0 is the anchor training image, columns 1.. its neighbours (nearest
first), all from the train split. They were computed from embeddings of a trained OURS-CC model;
``knn_from_embeddings`` recomputes such lists from those embeddings (``recon_net(images)["enc_feat"]``,
computed by the driver ``make_knn_list.py``). Training pairs images with their listed neighbours in
``data.neighbours``; the mask terms of a pair are ``losses.image.neighbour_mask_loss``.
"""

from pathlib import Path

import numpy as np

from data.string_arrays import load_string_array

# Rows of the [rows, M] distance block held at once by knn_from_embeddings (memory O(rows·M)).
_KNN_ROWS_PER_BLOCK = 1024
METRICS = ("cosine", "l2")  # distances between embeddings of knn_from_embeddings


def parse_key(key) -> tuple[str, int]:
    """Split a baseline key ``"<model>_<view>"`` (bytes or str) into (model_id, view)."""
    text = key.decode("ascii") if isinstance(key, bytes) else str(key)
    model, sep, view = text.rpartition("_")
    if not sep or not model or not view.isdigit():
        raise ValueError(f"data.knn_list: neighbour-list entry {text!r} is not '<model>_<view>'")
    return model, int(view)


def make_key(model_id: str, view: int) -> str:
    """The baseline's key ``"<model>_<view>"``."""
    return f"{model_id}_{int(view)}"


def load_knn_list(path) -> np.ndarray:
    """Read a baseline ``knn_list_<synset>.npy`` (baseline §2.7).

    Accepts byte-string arrays (the baseline's shipped lists, §2.7), unicode arrays and pickled object arrays
    of strings, the last read without running the pickle (``data.string_arrays.load_string_array``).

    Args:
        path: the .npy file.

    Returns:
        str array ``[R, 1 + K]``: column 0 anchors, columns 1.. neighbours, every entry a validated
        ``"<model>_<view>"`` key.
    """
    try:
        raw = load_string_array(path)
    except ValueError as err:
        raise ValueError(f"data.knn_list.load_knn_list: {err}") from None
    if raw.ndim != 2 or raw.shape[1] < 2:
        raise ValueError(f"data.knn_list.load_knn_list: {path} has shape {raw.shape}; expected "
                         "[rows, 1 + K] (anchor, neighbours...)")
    return np.array([[make_key(*parse_key(entry)) for entry in row] for row in raw], dtype=str)


def save_knn_list(path, table: np.ndarray) -> None:
    """Write a neighbour table ``[R, 1 + K]`` of keys in the baseline's byte-string layout."""
    np.save(Path(path), np.asarray(table, dtype=str).astype(np.bytes_))


def knn_from_embeddings(embeddings: np.ndarray, k: int, metric: str = "cosine") -> np.ndarray:
    """Indices of the k nearest other embeddings of every embedding (self excluded).

    Args:
        embeddings: float ``[M, D]``, e.g. ``enc_feat`` of every training image.
        k: neighbours per row (k < M).
        metric: "cosine" (1 − cosine similarity; zero vectors are at distance 1 from everything) or
            "l2" (Euclidean).

    Returns:
        int64 ``[M, k]``, nearest first, ties broken by the lower index.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or not 0 < k < emb.shape[0]:
        raise ValueError(f"data.knn_list.knn_from_embeddings: need [M, D] with 0 < k < M, got "
                         f"shape {emb.shape} and k={k}")
    if metric == "cosine":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
    elif metric != "l2":
        raise ValueError(f"data.knn_list.knn_from_embeddings: unknown metric {metric!r} (cosine or l2)")
    sq = np.sum(emb * emb, axis=1)
    out = np.empty((emb.shape[0], k), dtype=np.int64)
    for start in range(0, emb.shape[0], _KNN_ROWS_PER_BLOCK):
        rows = slice(start, start + _KNN_ROWS_PER_BLOCK)
        if metric == "cosine":
            dist = 1.0 - emb[rows] @ emb.T
        else:
            dist = np.sqrt(np.maximum(sq[rows, None] + sq[None, :] - 2.0 * emb[rows] @ emb.T, 0.0))
        own = np.arange(dist.shape[0])
        dist[own, start + own] = np.inf
        out[rows] = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return out
