"""Does training learn? Trains the learning presets on a fixed budget and scores them on held-out real meshes.

    python -m bench.bench_learning --data_dir PROC --eval_data_dir REAL     # both presets, their own budgets
    python -m bench.bench_learning --presets learn_supervised --N_ITERS 500  # one preset, a shorter budget

Each preset (`presets/<name>.flags`) trains with train.py (a subprocess, fresh flags) on the train split of
--data_dir (default: the procedural source built into `<out>/data_procedural`, --procedural_models per
category, split 100/0) and is scored with the baseline's protocol (`evaluation.run`, baseline GT) on the test
split of --eval_data_dir (default: the shared real meshes built into `<out>/data_real` with 10 views per model
and the TORCS cars turned to +z), with the rotation fitted and the mean training shape computed on that data
set's train split, so every reference is one of real meshes. Per preset and category it prints: Chamfer, the
shuffled reference (each GT against other models' predictions), their ratio, the mean training shape, the
spread ratio (pairwise Chamfer between predictions ÷ between GTs), the verdict of `evaluation.verdict`, the
training wall time (process start to exit) and steps/s (training loop, the mean of losses.csv). TARGETS are
the criteria each preset is documented against (README "Training that learns"); the last column says whether
this run meets them. The table also goes to `<out>/bench_learning.md` and every report to `<out>/results.json`.
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

from data import build, tfrecords
from evaluation import report as eval_report
from evaluation import verdict
from evaluation.protocol import Protocol
from evaluation.run import EvalSettings, run_evaluation
from experiments.reproduce import REALMESHES, REALMESHES_ROTATION
from model import checkpointing

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESETS_DIR = REPO_ROOT / "presets"
#: preset -> (largest Chamfer ÷ shuffled reference, smallest spread ratio, must beat the mean training shape).
TARGETS = {"learn_supervised": (0.7, 0.4, True), "learn_selfsup": (0.9, 0.2, False)}
HEADER = ("preset", "category", "Chamfer", "shuffled", "Chamfer ÷ shuffled", "mean shape", "spread ratio",
          "verdict", "steps", "train wall time (s)", "steps/s", "meets its target")


def ensure_data(path: str, out_dir: Path, source: str, views: int, **options) -> Path:
    """A built data set: ``path`` when given (checked), else ``source`` built once into ``out_dir`` (64 px;
    ``options`` as data.build.build_dataset's)."""
    if path:
        tfrecords.read_index(path)  # a clear error when it is not a built data set
        return Path(path)
    return build.ensure_dataset(out_dir, source, views=views, image_size=64, **options)


def train(run_dir: Path, preset: str, data_dir: Path, iterations: int, seed: int) -> float:
    """Trains one preset with train.py; returns the wall time in seconds. Raises when training failed."""
    command = [sys.executable, str(REPO_ROOT / "train.py"), f"--flagfile={PRESETS_DIR / f'{preset}.flags'}",
               f"--exp={run_dir}", f"--data_dir={data_dir}", f"--seed={seed}",
               *([f"--N_ITERS={iterations}"] if iterations else [])]
    print(f"[bench_learning] training {preset}: {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
        raise RuntimeError(f"bench_learning: training {preset} failed (see {run_dir / 'logs.txt'})")
    return time.perf_counter() - start


def training_speed(run_dir: Path) -> tuple[int, float]:
    """(steps of the newest checkpoint, mean steps/s over the intervals logged in losses.csv; NaN when the run
    was shorter than its --print_n)."""
    with open(run_dir / "losses.csv") as f:
        rates = [float(row["steps_per_sec"]) for row in csv.DictReader(f)]
    steps = checkpointing.checkpoint_step(checkpointing.checkpoint_path(run_dir))
    return steps, sum(rates) / len(rates) if rates else float("nan")


def meets(preset: str, entry: dict) -> str:
    """Whether a category's entry meets the preset's TARGETS, with the failed criteria named."""
    if preset not in TARGETS or entry["shuffled"] is None or entry["spread"] is None:
        return "—"
    ratio_max, spread_min, beat_mean = TARGETS[preset]
    failed = []
    if entry["model"]["chamfer"] > ratio_max * entry["shuffled"]["chamfer"]:
        failed.append(f"Chamfer > {ratio_max} × shuffled")
    if entry["spread"]["ratio"] < spread_min:
        failed.append(f"spread < {spread_min}")
    if beat_mean and entry["model"]["chamfer"] > entry["mean_shape"]["chamfer"]:
        failed.append("Chamfer > mean shape")
    return "yes" if not failed else "no: " + ", ".join(failed)


def rows_of(preset: str, report: dict, wall: float, steps: int, steps_per_sec: float) -> list[tuple]:
    """One table row per category of a run's report (baseline GT)."""
    rows = []
    for category, entry in report["results"]["uniform"]["categories"].items():
        shuffled = entry["shuffled"]["chamfer"] if entry["shuffled"] else float("nan")
        spread = entry["spread"]["ratio"] if entry["spread"] else float("nan")
        rows.append((preset, category, f"{entry['model']['chamfer']:.3f}", f"{shuffled:.3f}",
                     f"{entry['model']['chamfer'] / shuffled:.2f}", f"{entry['mean_shape']['chamfer']:.3f}",
                     f"{spread:.2f}", verdict.verdict_label(entry), steps, f"{wall:.0f}", f"{steps_per_sec:.2f}",
                     meets(preset, entry)))
    return rows


def main(argv):
    del argv
    f = flags.FLAGS
    out = Path(f.out)
    out.mkdir(parents=True, exist_ok=True)
    train_data = ensure_data(f.data_dir, out / "data_procedural", "procedural", 1, split="100/0",
                             procedural_models=f.procedural_models)
    eval_data = ensure_data(f.eval_data_dir, out / "data_real", str(REALMESHES), 10, rotate_y_deg=REALMESHES_ROTATION)
    protocol = Protocol(align_iters=f.align_iters, seed=f.seed)
    rows, reports = [], {}
    for preset in f.presets:
        run_dir = out / preset
        wall = train(run_dir, preset, train_data, f.N_ITERS, f.seed)
        steps, steps_per_sec = training_speed(run_dir)
        settings = EvalSettings(split="test", data_dir=eval_data, reference_data_dir=eval_data,
                                reference_split="train", gt_types=("uniform",), label=preset, progress=False)
        evaluation = run_evaluation(run_dir, settings, protocol)
        reports[preset] = evaluation.report
        rows += rows_of(preset, evaluation.report, wall, steps, steps_per_sec)
    table = (f"Trained on the train split of {train_data}, scored on the test split of {eval_data} (rotation and "
             f"mean training shape from its train split), baseline GT, metrics ×1000.\n\n"
             + eval_report.markdown(HEADER, rows))
    (out / "bench_learning.md").write_text(table)
    (out / "results.json").write_text(json.dumps(reports, indent=2))
    print(table)


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_list("presets", list(TARGETS), "Presets to train (names of presets/<name>.flags).")
    flags.DEFINE_string("data_dir", "", "Built data set to train on (default: the procedural source built into "
                        "<out>/data_procedural).")
    flags.DEFINE_integer("procedural_models", 2000, "Models per category of the default training data.",
                         lower_bound=2)
    flags.DEFINE_string("eval_data_dir", "", "Built data set whose test split is scored and whose train split "
                        "gives the rotation and the mean shape (default: the shared real meshes built into "
                        "<out>/data_real).")
    flags.DEFINE_integer("N_ITERS", 0, "Training steps of every preset (0: each preset's own).", lower_bound=0)
    flags.DEFINE_integer("align_iters", 5000, "Steps of the rotation fit (the baseline's 5000, §10.2).",
                         lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of training and of the evaluation's draws.")
    flags.DEFINE_string("out", "runs/bench_learning", "Output folder (runs, data, table).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
