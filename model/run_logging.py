"""Training logs of a run directory: logs.txt, losses.csv, TensorBoard scalars, renders and clouds.

Files under ``<exp>`` (baseline §8):

    logs.txt                 the baseline's columns: ``%06d`` step, the 8 logged losses as ``%.4f``, and
                             ``%04d`` minutes since the process started; one line per print interval
    losses.csv               ``step,<every loss of model.objective.LOSS_NAMES>,steps_per_sec``
    monitor.csv              ``step,<every value of model.monitor.CollapseMonitor.measure>`` (dead units and
                             across-image spread per layer, cloud spread), one row per print interval
    logs/                    TensorBoard scalars (every loss, steps_per_sec, and the monitor's values under
                             ``monitor/``)
    log_proj_images/         ``<it>_<name>_gt_pose_<az>_<el>[_mask].png`` input image and mask of sample 0,
                             ``<it>_<name>_pred_<k>_pose_<az>_<el>[_mask].png`` its P renders (colour, mask);
                             angles in integer degrees, <it> the 0-based index of the step
    log_proj_pcl/            ``<it>_<model_id>_pcl.npy`` xyz float32 [N, 3] and ``<it>_<model_id>_rgb.npy``
                             colours [N, 3] of the first reconstruction of each sample

Rows of logs.txt and losses.csv are labelled with the number of completed steps (100, 200, …), which is
the baseline's 0-based iteration + 1. A resumed run first drops the rows past the step it resumed from
(written after that checkpoint by the process that was killed), so that every step has one row; TensorBoard
discards such events itself when the steps start again lower. An interval in which every step was
skipped (non-finite) has no row in logs.txt and no TensorBoard scalars, and a console line that says so;
its losses.csv row has NaN losses and the skipped count.
"""

import csv
import math
import re
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import summary_pb2

from model.objective import LOSS_NAMES

#: The baseline's logged values in its order (§8), with the loss each one is.
BASELINE_COLUMNS = (("Loss_total", "loss_total"), ("Loss_ae", "loss_ae"), ("Loss_mask", "loss_mask"),
                    ("2D_Ch_Fwd", "chamfer2d_fwd"), ("2D_Ch_Bwd", "chamfer2d_bwd"), ("Loss_3D", "loss_3d"),
                    ("Loss_pose", "loss_pose"), ("Loss_symm", "loss_symm"))
LOGS_TXT = "logs.txt"
LOSSES_CSV = "losses.csv"
MONITOR_CSV = "monitor.csv"
TENSORBOARD_DIR = "logs"
IMAGES_DIR = "log_proj_images"
PCL_DIR = "log_proj_pcl"


class RunLogger:
    """Appends one row per print interval to logs.txt, losses.csv and TensorBoard.

    Args:
        exp_dir: the run directory.
        start_step: the step training starts from: 0 (a new run) writes the headers; a resumed run keeps
            the rows up to it and drops the later ones.
    """

    def __init__(self, exp_dir, start_step: int):
        self.exp = Path(exp_dir)
        self.exp.mkdir(parents=True, exist_ok=True)
        headers = {LOGS_TXT: ", ".join(["Iteration"] + [name for name, _ in BASELINE_COLUMNS] + ["Time"]) + "\n",
                   LOSSES_CSV: ",".join(("step",) + LOSS_NAMES + ("steps_per_sec", "skipped_steps")) + "\n"}
        for name, header in headers.items():
            path = self.exp / name
            if start_step == 0 or not path.exists():
                path.write_text(header)
            else:
                _drop_rows_after(path, start_step)
        monitor = self.exp / MONITOR_CSV  # its header comes with its first row (the monitor's keys)
        if start_step == 0:
            monitor.unlink(missing_ok=True)
        elif monitor.exists() and monitor.stat().st_size:
            _drop_rows_after(monitor, start_step)
        self._writer = tf.summary.create_file_writer(str(self.exp / TENSORBOARD_DIR))

    def write(self, step: int, means: dict | None, steps_per_sec: float, minutes: float, skipped: int = 0) -> str:
        """Append the running means of one interval; returns the console line.

        Args:
            step: completed steps.
            means: mean of every loss over the interval's applied steps; None when every step was skipped.
            steps_per_sec: throughput of the interval.
            minutes: minutes since training started in this process.
            skipped: steps of the interval skipped for a non-finite loss or gradient.
        """
        with open(self.exp / LOSSES_CSV, "a", newline="") as f:
            losses = [repr(float(means[n]) if means else math.nan) for n in LOSS_NAMES]
            csv.writer(f).writerow([step] + losses + [f"{steps_per_sec:.4f}", skipped])
        if means is None:
            return (f"step {step:6d}  every step of the interval skipped ({skipped}, non-finite: see above); "
                    "no loss to report")
        baseline = ", ".join(f"{means[key]:.4f}" for _, key in BASELINE_COLUMNS)
        with open(self.exp / LOGS_TXT, "a") as f:
            f.write(f"{step:06d}, {baseline}, {int(minutes):04d}\n")
        with self._writer.as_default(step=step):
            for name in LOSS_NAMES:
                _scalar(name, means[name])
            _scalar("steps_per_sec", steps_per_sec)
        self._writer.flush()
        shown = "  ".join(f"{key} {means[key]:.4f}" for key in ("loss_total", "loss_ae", "loss_mask",
                                                                "loss_3d", "loss_pose", "recon_loss"))
        return f"step {step:6d}  {shown}  {steps_per_sec:.2f} steps/s" + (f"  ({skipped} skipped)" if skipped else "")

    def write_monitor(self, step: int, stats: dict[str, float]) -> None:
        """Append the collapse monitor's values of one interval to monitor.csv and TensorBoard.

        Args:
            step: completed steps.
            stats: model.monitor.CollapseMonitor.measure(), the same keys every call.
        """
        path = self.exp / MONITOR_CSV
        names = sorted(stats)
        if not path.exists() or path.stat().st_size == 0:
            path.write_text(",".join(["step", *names]) + "\n")
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([step] + [repr(float(stats[n])) for n in names])
        with self._writer.as_default(step=step):
            for name in names:
                _scalar(f"monitor/{name}", stats[name])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _drop_rows_after(path: Path, step: int) -> None:
    """Rewrites a log (header, then rows whose first field is the step) without the rows past ``step``."""
    header, *rows = path.read_text().splitlines(keepends=True)
    kept = [row for row in rows if row.strip() and int(row.split(",")[0]) <= step]
    if len(kept) != len(rows):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(header + "".join(kept))
        tmp.replace(path)


def _scalar(name: str, value: float) -> None:
    """A TensorBoard scalar without the tensorboard package (what tf.summary.scalar writes: a float32
    scalar tagged for the "scalars" plugin); viewing the logs needs `pip install tensorboard`."""
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(name, tf.constant(value, tf.float32), metadata=metadata.SerializeToString())


def _safe(name: str) -> str:
    """A string usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _degrees(pose) -> str:
    az, el = (int(round(math.degrees(float(a)))) for a in pose)
    return f"{az}_{el}"


def _png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)).save(path)


def save_samples(exp_dir, it: int, batch: dict, sample: dict) -> None:
    """Save the renders of sample 0 and the clouds of every sample of a step (baseline §8, save_n).

    Args:
        exp_dir: the run directory.
        it: 0-based index of the step.
        batch: the host batch: ``image`` [B, H, W, 3], ``mask`` [B, H, W], ``pose`` [B, 2], ``model_id``
            [B] (bytes or str).
        sample: from Trainer.train_step: ``xyz0``/``rgb0`` [b, N, 3], ``poses`` [b, P, 2],
            ``images`` [P, b, H, W, 3], ``masks`` [P, b, H, W] (b = the first replica's samples).
    """
    images_dir, pcl_dir = Path(exp_dir) / IMAGES_DIR, Path(exp_dir) / PCL_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    pcl_dir.mkdir(parents=True, exist_ok=True)
    ids = [_safe(m.decode() if isinstance(m, bytes) else str(m)) for m in np.asarray(batch["model_id"])]
    name = f"{it}_{ids[0]}"
    gt = f"{name}_gt_pose_{_degrees(np.asarray(batch['pose'])[0])}"
    _png(images_dir / f"{gt}.png", np.asarray(batch["image"])[0])
    _png(images_dir / f"{gt}_mask.png", np.asarray(batch["mask"])[0])
    for k in range(sample["images"].shape[0]):
        pred = f"{name}_pred_{k}_pose_{_degrees(sample['poses'][0, k])}"
        _png(images_dir / f"{pred}.png", sample["images"][k, 0])
        _png(images_dir / f"{pred}_mask.png", sample["masks"][k, 0])
    for b in range(sample["xyz0"].shape[0]):
        np.save(pcl_dir / f"{it}_{ids[b]}_pcl.npy", sample["xyz0"][b].astype(np.float32))
        np.save(pcl_dir / f"{it}_{ids[b]}_rgb.npy", sample["rgb0"][b].astype(np.float32))
