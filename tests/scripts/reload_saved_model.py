"""Reload an exported SavedModel with TensorFlow alone (tests/test_eval_e2e.py runs this).

    python tests/scripts/reload_saved_model.py SAVED_MODEL IMAGES_NPY OUT_NPY

Run from a folder where nothing of the repository is importable: it proves the export needs no project code.
Writes the reloaded model's xyz for the images float32 [B, H, H, 3] to OUT_NPY.
"""

import sys

import numpy as np
import tensorflow as tf


def main(saved_model: str, images: str, out: str) -> None:
    model = tf.saved_model.load(saved_model)
    np.save(out, model.serve(tf.constant(np.load(images)))["xyz"].numpy())


if __name__ == "__main__":
    main(*sys.argv[1:])
