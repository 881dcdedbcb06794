"""Nearest-neighbour mask consistency (OURS-NN) and its neighbour lists (baseline §2.7, §6, §7.7).

Shape legend: B batch, H = W image size, R rows of a neighbour list, K neighbours per row,
M images embedded, D embedding width (2·bottleneck = 256).

Loss: the input image's cloud xyz0 is rendered at the pose the pose net predicts for a neighbour image
(another model that looks alike, §6) and that render, ``mask_out_2``, is compared with the neighbour's
mask by the same mask and affinity terms as the main silhouette (§7.7). The render is the training
step's job; this module provides the loss terms and the neighbour data.

Neighbour lists in the baseline's format (``data/knn_list_<synset>.npy``, §2.7): a 2-D array of byte
strings ``"<model>_<view>"``; column 0 is the anchor training image, columns 1.. its neighbours (nearest
first), all from the train split. They were computed from embeddings of a trained OURS-CC model;
``knn_from_embeddings`` recomputes such lists from ``recon_net(images)["enc_feat"]``.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from losses.image import affinity_loss, mask_loss

# Rows of the [rows, M] distance block held at once by knn_from_embeddings (memory O(rows·M)).
_KNN_ROWS_PER_BLOCK = 1024


def neighbour_mask_loss(mask_2: tf.Tensor, mask_out_2: tf.Tensor, kind: str = "bce",
                        affinity_form: str | None = None) -> dict:
    """Mask terms between a neighbour's mask and xyz0 rendered at its predicted pose (baseline §7.7).

    Args:
        mask_2: float ``[B, H, W]`` the neighbour image's GT mask.
        mask_out_2: float ``[B, H, W]`` soft silhouette of xyz0 at pose_net(image_2).
        kind: mask loss kind (``losses.image.mask_loss``).
        affinity_form: None (``--affinity_loss`` off: zero terms, as SSL) or an
            ``losses.image.affinity_loss`` form.

    Returns:
        ``{"mask_2", "fwd_2", "bwd_2"}`` scalars (added to the recon loss with λ_ae_mask, λ_mask_fwd,
        λ_mask_bwd only with ``--use_mult_proj``; the baseline's script does not pass it, §7.7).
    """
    terms = {"mask_2": mask_loss(mask_2, mask_out_2, kind=kind)}
    if affinity_form is None:
        zero = tf.zeros([], mask_out_2.dtype)
        terms["fwd_2"], terms["bwd_2"] = zero, zero
    else:
        terms["fwd_2"], terms["bwd_2"] = affinity_loss(mask_2, mask_out_2, form=affinity_form)
    return terms


def parse_key(key) -> tuple[str, int]:
    """Split a baseline key ``"<model>_<view>"`` (bytes or str) into (model_id, view)."""
    text = key.decode("ascii") if isinstance(key, bytes) else str(key)
    model, sep, view = text.rpartition("_")
    if not sep or not model or not view.isdigit():
        raise ValueError(f"losses.neighbours: neighbour-list entry {text!r} is not '<model>_<view>'")
    return model, int(view)


def make_key(model_id: str, view: int) -> str:
    """The baseline's key ``"<model>_<view>"``."""
    return f"{model_id}_{int(view)}"


def load_knn_list(path) -> np.ndarray:
    """Read a baseline ``knn_list_<synset>.npy`` (baseline §2.7).

    Accepts byte-string or unicode arrays and pickled object arrays of Python 2 ``str`` (hence
    ``allow_pickle`` and ``encoding="bytes"``).

    Args:
        path: the .npy file.

    Returns:
        str array ``[R, 1 + K]``: column 0 anchors, columns 1.. neighbours, every entry a validated
        ``"<model>_<view>"`` key.
    """
    path = Path(path)
    try:
        raw = np.load(path, allow_pickle=True, encoding="bytes")
    except (OSError, ValueError) as err:
        raise ValueError(f"losses.neighbours.load_knn_list: cannot read {path}: {err}") from err
    if raw.ndim != 2 or raw.shape[1] < 2:
        raise ValueError(f"losses.neighbours.load_knn_list: {path} has shape {raw.shape}; expected "
                         "[rows, 1 + K] (anchor, neighbours...)")
    table = np.array([[make_key(*parse_key(entry)) for entry in row] for row in raw], dtype=str)
    return table


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
        raise ValueError(f"losses.neighbours.knn_from_embeddings: need [M, D] with 0 < k < M, got "
                         f"shape {emb.shape} and k={k}")
    if metric == "cosine":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
    elif metric != "l2":
        raise ValueError(f"losses.neighbours.knn_from_embeddings: unknown metric {metric!r} (cosine or l2)")
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


def embed_images(recon_net, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``enc_feat`` of a trained reconstruction net for every image (the OURS-CC embedding, §2.7).

    Args:
        recon_net: model from ``model.recon_net.build_recon_net`` (trained).
        images: float ``[M, H, W, 3]`` in [0, 1].
        batch_size: images per forward pass.

    Returns:
        float32 ``[M, 2·bottleneck]``.
    """
    feats = [recon_net(images[i:i + batch_size], training=False)["enc_feat"].numpy()
             for i in range(0, len(images), batch_size)]
    return np.concatenate(feats, axis=0)
