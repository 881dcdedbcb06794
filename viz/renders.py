"""Grid of the renders train.py logs (baseline §8): input image, mask and the P projections of sample 0.

train.py writes `<exp>/log_proj_images/<step>_<name>.png` every `--save_n` steps. This module draws one row
per logged step (`max_rows` of them, evenly spread, the last included) and one column per file of that step,
titled with the file's name after the step and the sample's model id (shown once per row), so the progress
of the projections over training reads top to bottom.

    python -m viz.renders --exp runs/car --out renders.png
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import os
import re
from pathlib import Path

import numpy as np
from absl import app, flags
from PIL import Image

from viz import clouds

FLAGS = flags.FLAGS

RENDERS_DIR = "log_proj_images"
_STEP_NAME = re.compile(r"^(\d+)_(.+)\.png$")


def logged_renders(exp_dir) -> dict[int, list[Path]]:
    """{step: sorted PNG paths} of `<exp_dir>/log_proj_images`.

    Raises:
      FileNotFoundError: when the folder is missing or holds no `<step>_<name>.png` file.
    """
    folder = Path(exp_dir) / RENDERS_DIR
    by_step: dict[int, list[Path]] = {}
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        match = _STEP_NAME.match(path.name)
        if match:
            by_step.setdefault(int(match.group(1)), []).append(path)
    if not by_step:
        raise FileNotFoundError(f"viz.renders: no <step>_<name>.png renders in {folder}")
    return dict(sorted(by_step.items()))


def _shared_prefix(names: list[str]) -> str:
    """The common leading `_`-separated fields of file names (the sample's model id), kept out of the titles."""
    if len(names) < 2:
        return ""
    prefix = os.path.commonprefix(names)
    return prefix[: prefix.rfind("_") + 1]


def render_grid(exp_dir, out_path, max_rows: int = 4) -> Path:
    """Draws the logged renders of up to `max_rows` steps (evenly spread, always the last one).

    Args:
      exp_dir: run directory.
      out_path: PNG to write.
      max_rows: most steps shown.

    Returns:
      The PNG path; size (widest row's file count) × rows panels of clouds.FIGURE_INCHES_PER_PANEL · DPI px.
    """
    by_step = logged_renders(exp_dir)
    steps = list(by_step)
    picks = sorted({steps[int(round(i))] for i in np.linspace(0, len(steps) - 1, min(max_rows, len(steps)))})
    cols = max(len(by_step[s]) for s in picks)
    fig = clouds.new_figure(len(picks), cols)
    for row, step in enumerate(picks):
        names = [_STEP_NAME.match(p.name).group(2) for p in by_step[step]]
        shared = _shared_prefix(names)
        for col, (path, name) in enumerate(zip(by_step[step], names)):
            ax = fig.add_subplot(len(picks), cols, row * cols + col + 1)
            image = np.asarray(Image.open(path))
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_axis_off()
            ax.set_title(name[len(shared):].replace("_", " "), fontsize=6)
        fig.text(0.003, 1.0 - (row + 0.5) / len(picks), f"step {step} {shared.rstrip('_')}", rotation=90,
                 va="center", fontsize=6)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.25)
    return clouds.save_figure(fig, out_path)


def main(argv):
    del argv
    print(f"wrote {render_grid(FLAGS.exp, FLAGS.out, FLAGS.max_rows)}")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_string("exp", None, "Run directory written by train.py.")
    flags.DEFINE_string("out", "renders.png", "PNG file to write.")
    flags.DEFINE_integer("max_rows", 4, "Most logged steps to show.")
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
