"""Compute a nearest-neighbour list for OURS-NN training from a trained run (baseline §2.7, §6).

    python make_knn_list.py --exp=runs/cc --data_dir=DIR --split=train --categ=chair --k=5 \\
        --out=knn_list_chair.npy

The run's reconstruction net embeds every image of the split (``enc_feat``, the OURS-CC embedding the
baseline's lists came from, §2.7); each image is listed with its k nearest images of OTHER models (§6: "a
neighbour image of a different model"; ``data.neighbours.knn_table_other_models``), in the baseline's
byte-string layout (``data.knn_list.save_knn_list``). Train with it: ``train.py --knn_list=<out>``.

Shape legend: M images of the split, H image size, D embedding width (2·bottleneck).
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

from pathlib import Path

import numpy as np
from absl import app, flags

from data.knn_list import METRICS, save_knn_list
from data.neighbours import BASELINE_RANKS, knn_table_other_models, load_split
from model.trainer import load_for_inference


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


def write_knn_list(exp_dir, data_dir, split: str, k: int, out, categories=None, metric: str = "cosine",
                   step: int | None = None) -> np.ndarray:
    """Embed a split with a trained run's recon net (``enc_feat``, §2.7) and save its neighbour list.

    Args:
        exp_dir: run directory of train.py (``model.trainer.load_for_inference``).
        data_dir, split, categories: the images to list (anchors and neighbours alike).
        k: neighbours per anchor.
        out: the .npy file written (baseline byte-string layout, ``data.knn_list.save_knn_list``).
        metric: "cosine" or "l2".
        step: checkpoint step; None for the newest.

    Returns:
        The table written, str ``[M, 1 + k]``.
    """
    recon_net, _, run = load_for_inference(exp_dir, step)
    images = load_split(data_dir, split, categories)
    if images.images.shape[1] != run.train.image_size:
        raise ValueError(f"make_knn_list.py: {data_dir} holds {images.images.shape[1]} px images, the run "
                         f"{exp_dir} was trained on {run.train.image_size} px")
    table = knn_table_other_models(images, embed_images(recon_net, images.images.astype(np.float32) / 255.0),
                                   k, metric)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_knn_list(out, table)
    return table


def main(argv) -> None:
    """Writes the list and prints its shape and first row."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    table = write_knn_list(f.exp, f.data_dir, f.split, f.k, f.out, f.categ, f.metric, f.step)
    print(f"wrote {f.out}: {table.shape[0]} anchors x {table.shape[1] - 1} neighbours; "
          f"first row {table[0].tolist()}")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("exp", None, "Run directory of train.py whose recon net embeds the images.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
    flags.DEFINE_string("data_dir", None, "Data set built by `python -m data.build`.")
    flags.DEFINE_string("split", "train", "Split to list (the baseline's lists: train).")
    flags.DEFINE_list("categ", None, "Categories to list (comma-separated); default: every one.")
    flags.DEFINE_integer("k", BASELINE_RANKS, "Neighbours per anchor.", lower_bound=1)
    flags.DEFINE_enum("metric", "cosine", METRICS, "Distance between embeddings.")
    flags.DEFINE_string("out", None, "Output .npy (e.g. knn_list_chair.npy).")
    flags.mark_flags_as_required(["exp", "data_dir", "out"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
