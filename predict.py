"""Inference on new images, and export of the reconstruction net for use without this code.

    python predict.py --exp runs/car --image photo.png [--mask photo_mask.png] [--out prediction]
    python predict.py --exp runs/car --image photo.png --mask m.png --refine_steps 50   # test-time refinement
    python predict.py --exp runs/car --export runs/car/export            # TF SavedModel (tf.saved_model.load)
    python predict.py --exp runs/car --export runs/car/recon_net.keras   # Keras file (keras.saving.load_model)

Image preparation (the network saw renders with a black background, the object centred, baseline §2.1):
any size, RGB or RGBA. The mask is `--mask` (a greyscale PNG, object > 127) or, when absent, the image's alpha
channel if it has one. With a mask, the background is set to black and the image is cropped to the mask's
bounding box plus a margin; the result is padded to a square with black and resized to the run's image size.

`--refine_steps N` fine-tunes COPIES of the run's networks for N Adam steps on the image's own silhouette and
colour losses at the predicted pose (evaluation/refinement.py: the §7.1-7.3 terms with the run's weights)
before predicting; it needs the object's mask (`--mask` or an alpha channel) and never touches the run's
checkpoint. N = 0 (the default) predicts with the run's networks.

Outputs `<out>.npy` (float32 `[N, 6]` = xyz, rgb as the baseline's saved clouds, §10.1), `<out>.ply`
(coloured points) and `<out>.png` (input | the cloud in three views). The cloud is in the network's own frame
(self-supervised; eval.py fits the rotation to the GT frame).
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from PIL import Image

from evaluation.refinement import TERMS, Refiner
from model import trainer
from viz import clouds

MASK_THRESHOLD = 127  # mask PNG value above which a pixel is object
CROP_MARGIN = 0.05  # fraction of the crop's side added on each side of the mask's bounding box
MIN_SIDE = 16  # px: an input whose longer side is shorter (a quarter of the baseline's 64) is warned about


def prepare_input(image: Image.Image, size: int, mask: Image.Image | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A PIL image (any size, mode) -> network input float32 `[size, size, 3]` in [0, 1], and its mask.

    Args:
      image: the photo or render.
      size: side of the network's input (the run's --H).
      mask: optional greyscale mask of the same size; default: the alpha channel when the image has one.

    Returns:
      (image, mask): mask float32 `[size, size]` in {0, 1} (cropped, padded and resized with the image, then
      thresholded), or None without a mask.

    Raises:
      ValueError: mask of another size than the image, or a mask with no object pixel.
    """
    if mask is None and image.mode in ("RGBA", "LA"):
        mask = image.getchannel("A")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    inside = np.ones(rgb.shape[:2], bool)
    if mask is not None:
        if mask.size != image.size:
            raise ValueError(f"predict: mask size {mask.size} differs from image size {image.size}")
        inside = np.asarray(mask.convert("L")) > MASK_THRESHOLD
        if not inside.any():
            raise ValueError("predict: the mask has no object pixel (all values <= 127)")
    rgba = np.concatenate([rgb * inside[..., None], inside[..., None]], axis=-1)  # black background
    if mask is not None:  # crop to the mask's box plus a margin
        rows, cols = np.nonzero(inside)
        rgba = rgba[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        pad = int(round(CROP_MARGIN * max(rgba.shape[:2])))
        rgba = np.pad(rgba, ((pad, pad), (pad, pad), (0, 0)))
    height, width = rgba.shape[:2]
    side = max(height, width)
    square = np.zeros((side, side, 4), np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = rgba
    # RGB and mask resized apart: Pillow resizes RGBA with premultiplied alpha, which would change the colours.
    rgb_out, mask_out = (np.asarray(Image.fromarray(np.round(channels * 255.0).astype(np.uint8)).resize(
        (size, size), Image.LANCZOS), dtype=np.float32) / 255.0 for channels in (square[..., :3], square[..., 3]))
    return rgb_out, None if mask is None else (mask_out > MASK_THRESHOLD / 255.0).astype(np.float32)


def write_ply(path, xyz: np.ndarray, rgb: np.ndarray) -> Path:
    """ASCII PLY of coloured points. xyz: float `[N, 3]`; rgb: float `[N, 3]` in [0, 1]."""
    path = Path(path)
    colours = np.clip(np.round(np.asarray(rgb) * 255.0), 0, 255).astype(int)
    header = ["ply", "format ascii 1.0", f"element vertex {len(xyz)}", "property float x", "property float y",
              "property float z", "property uchar red", "property uchar green", "property uchar blue",
              "end_header"]
    body = [f"{x:.6f} {y:.6f} {z:.6f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(np.asarray(xyz), colours)]
    path.write_text("\n".join(header + body) + "\n")
    return path


def predict_image(recon_net, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs the net on one prepared image `[H, H, 3]` -> (xyz float32 `[N, 3]`, rgb float32 `[N, 3]`)."""
    out = recon_net(tf.constant(image[None]), training=False)
    return out["xyz"].numpy()[0], out["rgb"].numpy()[0]


def save_prediction(out_prefix, image: np.ndarray, xyz: np.ndarray, rgb: np.ndarray) -> list[Path]:
    """Writes `<out_prefix>.npy` (`[N, 6]` xyz+rgb), `.ply` and `.png`; returns the three paths."""
    Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
    npy, ply_path, png_path = (Path(f"{out_prefix}{suffix}") for suffix in (".npy", ".ply", ".png"))
    np.save(npy, np.concatenate([xyz, rgb], axis=1).astype(np.float32))
    ply = write_ply(ply_path, xyz, rgb)
    png = clouds.cloud_grid(image[None], xyz[None], None, png_path, titles=["input"], pred_colours=rgb[None])
    return [npy, ply, png]


def export_recon_net(recon_net, path) -> Path:
    """Exports the reconstruction net: a `.keras` file, or else a TF SavedModel directory.

    The SavedModel's `serve` endpoint maps images float32 `[B, H, H, 3]` in [0, 1] to the dict
    {"xyz": `[B, N, 3]`, "rgb": `[B, N, 3]`, "enc_feat": `[B, 2·bottleneck]`}; it loads with
    `tf.saved_model.load` alone. The `.keras` file loads with `keras.saving.load_model` alone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".keras":
        recon_net.save(path)
    else:
        recon_net.export(str(path), format="tf_saved_model", verbose=False)
    return path


def check_export_target(path, overwrite: bool) -> None:
    """Refuses to export over an existing file or non-empty folder unless ``overwrite``; with it, deletes the
    previous export (a .keras file or a SavedModel folder, nothing else).

    Raises:
        ValueError: the target exists and is not to be (or cannot safely be) replaced; the message says why.
    """
    path = Path(path)
    if not path.exists() or path.is_dir() and not any(path.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"--export {path} exists and is not empty: give --overwrite to replace it, or another path")
    if path.is_file() and path.suffix == ".keras":
        path.unlink()
    elif path.is_dir() and (path / "saved_model.pb").is_file():
        shutil.rmtree(path)
    else:
        raise ValueError(f"--export {path} is neither a .keras file nor a SavedModel folder: not replaced, "
                         "even with --overwrite")


def warn_if_tiny(image_path) -> None:
    """Logs a warning when the input image is smaller than MIN_SIDE pixels on its longer side."""
    with Image.open(image_path) as image:
        width, height = image.size
    if max(width, height) < MIN_SIDE:
        logging.warning("predict: %s is %d x %d pixels: resized up to the network's input it shows almost "
                        "nothing of the object, so the prediction says little", image_path, width, height)


def main(argv):
    del argv
    f = flags.FLAGS
    try:
        if f.export:
            check_export_target(f.export, f.overwrite)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    if f.image:
        warn_if_tiny(f.image)
    if not f.image and not f.export:
        raise app.UsageError("give --image (inference) and/or --export (export of the network)")
    recon_net, pose_net, run = trainer.load_for_inference(f.exp, step=f.step)
    if f.export:
        print(f"exported the reconstruction net to {export_recon_net(recon_net, f.export)}")
    if f.image:
        image, mask = prepare_input(Image.open(f.image), run.train.image_size, Image.open(f.mask) if f.mask else None)
        if f.refine_steps:
            if mask is None:
                raise app.UsageError("--refine_steps needs the object's mask: give --mask or an image with alpha")
            refiner = Refiner(recon_net, pose_net, run.train, f.refine_steps)
            refined = refiner.refine(image, mask)
            xyz, rgb = refined["xyz"], refined["rgb"]
            before, after = refiner.history[0], refiner.history[-1]
            print(f"refined {f.refine_steps} steps: " + ", ".join(
                f"{term} {b:.4g} -> {a:.4g}" for term, b, a in zip(TERMS, before, after)))
        else:
            xyz, rgb = predict_image(recon_net, image)
        out = f.out or str(Path(f.image).with_suffix("")) + "_pcl"
        print("wrote " + ", ".join(str(p) for p in save_prediction(out, image, xyz, rgb)))


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("exp", None, "Run directory written by train.py.")
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --export target (a .keras file or a SavedModel "
                         "folder); without it an existing, non-empty target is refused.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
    flags.DEFINE_string("image", "", "Input image (any size; RGB or RGBA).")
    flags.DEFINE_string("mask", "", "Optional mask PNG (object > 127) for background removal.")
    flags.DEFINE_integer("refine_steps", 0, "Test-time refinement: Adam steps on the image's own silhouette and "
                         "colour losses before predicting (0: none; needs a mask).")
    flags.DEFINE_string("out", "", "Output prefix for .npy/.ply/.png (default: <image>_pcl).")
    flags.DEFINE_string("export", "", "Export the reconstruction net: a path ending in .keras, or a "
                        "directory for a TF SavedModel.")
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
