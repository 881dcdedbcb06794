"""Loss curves from run directories (the study's figures 2-5: total loss, partial losses, KRO loss).

Reads `<exp>/losses.csv` (written by train.py: header `step,<loss names>...,steps_per_sec,skipped_steps`,
one row per print interval) of one or more runs and draws one panel per loss, every run overlaid in its own colour, so that
variants (KRO off/on, GT types) can be compared at a glance.

    python -m viz.loss_curves --exp runs/car_kro --exp runs/car_base --out losses.png
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import csv
import math
from pathlib import Path

import numpy as np
from absl import app, flags

from viz import clouds

FLAGS = flags.FLAGS

LOSSES_CSV = "losses.csv"
STEP_COLUMN = "step"
NON_LOSS_COLUMNS = (STEP_COLUMN, "steps_per_sec", "skipped_steps")
PANEL_COLUMNS = 3
LOG_SPAN = 10.0  # a positive curve spanning more than this factor is drawn on a log scale


def read_losses(exp_dir) -> dict[str, np.ndarray]:
    """Reads `<exp_dir>/losses.csv` into {column: float64 `[R]`} (R rows).

    Raises:
      FileNotFoundError: when the file is missing.  ValueError: when it has no `step` column or no rows.
    """
    path = Path(exp_dir) / LOSSES_CSV
    if not path.is_file():
        raise FileNotFoundError(f"viz.loss_curves: no {LOSSES_CSV} in run directory {exp_dir}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or STEP_COLUMN not in rows[0]:
        raise ValueError(f"viz.loss_curves: {path} has no rows or no '{STEP_COLUMN}' column")
    return {name: np.array([float(row[name]) for row in rows]) for name in rows[0]}


def loss_names(runs: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Loss columns with a finite non-zero value in some run (switched-off losses are logged as 0): total
    losses first, KRO losses last, the rest in file order."""
    names = []
    for columns in runs.values():
        names += [n for n in columns if n not in NON_LOSS_COLUMNS and n not in names
                  and any(np.any(np.isfinite(c[n]) & (c[n] != 0.0)) for c in runs.values() if n in c)]
    return sorted(names, key=lambda n: (0 if "total" in n.lower() else 2 if "kro" in n.lower() else 1))


def plot_loss_curves(exp_dirs, out_path, labels=None, names=None) -> Path:
    """One panel per loss, every run overlaid; log-scaled y where the curves are positive and span a decade.

    Args:
      exp_dirs: run directories, each with a losses.csv.
      out_path: PNG to write.
      labels: optional legend label per run (default: the directory names).
      names: optional subset of loss columns to draw (default: `loss_names`).

    Returns:
      The PNG path; size min(len(names), 3) × ceil(len(names) / 3) panels of
      clouds.FIGURE_INCHES_PER_PANEL · DPI · (1.5 wide, 1 high) pixels.
    """
    exp_dirs = [Path(d) for d in exp_dirs]
    labels = labels or [d.name for d in exp_dirs]
    runs = {}
    for label, exp_dir in zip(labels, exp_dirs):
        columns = read_losses(exp_dir)
        finite = all(np.all(np.isfinite(v)) for k, v in columns.items() if k not in NON_LOSS_COLUMNS)
        runs[label if finite else f"{label} [non-finite losses logged]"] = columns
    names = names or loss_names(runs)
    if not names:
        raise ValueError(f"viz.loss_curves: no loss columns in {[str(d) for d in exp_dirs]}")
    cols = min(len(names), PANEL_COLUMNS)
    rows = math.ceil(len(names) / cols)
    fig = clouds.new_figure(rows, cols)
    fig.set_size_inches(cols * clouds.FIGURE_INCHES_PER_PANEL * 1.5, rows * clouds.FIGURE_INCHES_PER_PANEL)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        values = []
        for label, columns in runs.items():
            if name in columns:
                ax.plot(columns[STEP_COLUMN], columns[name], label=label, linewidth=1.0)
                values.append(columns[name])
        values = np.concatenate(values)
        values = values[np.isfinite(values)]
        log = values.size and np.all(values > 0) and values.max() > LOG_SPAN * values.min()
        if log:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("iteration", fontsize=7)
        ax.set_ylabel(f"{name}{' (log scale)' if log else ''}", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
        ax.yaxis.get_offset_text().set_fontsize(6)
        if i == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return clouds.save_figure(fig, out_path)


def main(argv):
    del argv
    out = plot_loss_curves(FLAGS.exp, FLAGS.out, labels=FLAGS.label or None, names=FLAGS.loss or None)
    print(f"wrote {out}")


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_multi_string("exp", None, "Run directory with a losses.csv (repeat to overlay runs).")
    flags.DEFINE_multi_string("label", [], "Legend label per --exp (default: directory names).")
    flags.DEFINE_multi_string("loss", [], "Loss columns to draw (default: every loss column).")
    flags.DEFINE_string("out", "losses.png", "PNG file to write.")
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
