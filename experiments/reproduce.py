"""The study's experiments (its table 2) trained and evaluated, into one table in the layout of its table 3.

    python -m experiments.reproduce --preset smoke    # minutes on 2 CPU cores, built-in sample (a test runs it)
    python -m experiments.reproduce --preset small    # ~8 min on 2 CPU cores, ../shared/data/realmeshes
    python -m experiments.reproduce --preset full --data_dir DIR   # the study's iteration counts (ShapeNet, GPU)

The grid (mission.md, report table 2), for car and chair: KRO off / on × pseudo GT / area-based GT, each run
from the training presets `presets/study_<category>_<variant>.flags` (report appendix B = the baseline's run.sh
losses and weights, baseline §9; KRO in its faithful form, `--kro_variant` overrides it):
  * pseudo GT: no 3D supervision; KRO compares against the first reconstruction (the pseudo ground truth).
  * area-based GT: `--use_gt_pcl --gt_type=area` (Chamfer to the area-based GT cloud); KRO compares against it.
The cell "KRO off, pseudo GT" trains exactly as `presets/baseline_run.flags` (same losses and weights): it is
the plain baseline, and is not trained twice. The preset only sets the sizes (iterations, logging, the rotation
fit's steps) and the data.

Each run trains with train.py (a subprocess, so every run gets fresh flags) into `<out>/runs/<name>`, is then
evaluated with the baseline's protocol (`evaluation.run`) against both GT types, and the runner writes:
  <out>/table3.md      one combined table (model, Chamfer, Fwd, Bwd, iterations, GT type) + the references
                       (sphere, mean training shape, each run's shuffled reference), then the table of
                       evaluation.report "does the output depend on the input" (shuffled reference, spread
                       ratio, verdict) and the pose accuracy of every run
  <out>/table3.png     the grid at a glance (viz.charts.grid_chart): each run's Chamfer beside its shuffled
                       reference, its spread ratio, the mean training shape
  <out>/results.json   every run's metrics.json content
  <out>/losses_<category>.png   the loss curves of every run of a category overlaid (report figures 2-5)
  <out>/table1.png     the sampling figure (report table 1)
Runs already trained to their iteration count are not trained again (train.py resumes or returns at once).
"""

from __future__ import annotations

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from data import build
from evaluation import report as eval_report
from evaluation.protocol import Protocol
from evaluation.run import EvalSettings, run_evaluation
from losses import kro
from viz import charts, clouds, loss_curves, sampling_figure

REPO_ROOT = Path(__file__).resolve().parents[1]
REALMESHES = REPO_ROOT.parent / "shared" / "data" / "realmeshes"
#: The TORCS cars of the shared meshes face +x; the rule turns them to +z like every other car (README "Data").
REALMESHES_ROTATION = "car/torcs_*=-90"

PRESETS_DIR = REPO_ROOT / "presets"
SKIPPED_STEPS = "skipped_steps"  # column of losses.csv counting the steps skipped as non-finite
GRID_VARIANTS = {  # name of presets/study_<category>_<name>.flags -> label in the table
    "pseudo_gt": "baseline (KRO off, pseudo GT)",
    "kro_pseudo_gt": "KRO, pseudo GT",
    "area_gt": "area-based GT",
    "kro_area_gt": "KRO, area-based GT",
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """Sizes of one preset: iterations per category, logging intervals, the rotation fit, the data."""

    iterations: dict
    print_n: int
    save_n: int
    align_iters: int
    data: str  # "builtin", "realmeshes" or "given" (--data_dir)
    views: int = 1


PRESETS = {
    # A handful of steps: checks that every variant trains, saves, evaluates and plots.
    "smoke": Preset(iterations={"car": 4, "chair": 4}, print_n=2, save_n=2, align_iters=30, data="builtin"),
    # The study's iterations / 15 (car 2× chair, as in its table 2): 4 × 1800 steps of the baseline
    # configuration on 2 CPU cores, plus evaluation: about 8 minutes (measured: 476 s).
    "small": Preset(iterations={"car": 1200, "chair": 600}, print_n=50, save_n=200, align_iters=5000,
                    data="realmeshes"),
    # The study's table 2: car 18k and chair 9k iterations; the baseline's 5000-step rotation fit (§10.2).
    "full": Preset(iterations={"car": 18000, "chair": 9000}, print_n=100, save_n=500, align_iters=5000,
                   data="given"),
}


def prepare_data(preset: Preset, out: Path, data_dir: str | None) -> Path:
    """The data set of a preset: given, or built once into `<out>/data` (1 view, 64 px, 50/50 split; the shared
    real meshes with their TORCS cars turned to +z)."""
    if data_dir:
        return Path(data_dir)
    if preset.data == "given":
        raise app.UsageError("this preset needs --data_dir (a data set built with python -m data.build)")
    if preset.data == "builtin":
        return build.ensure_dataset(out / "data", source="builtin", views=preset.views, image_size=64)
    return build.ensure_dataset(out / "data", source=str(REALMESHES), views=preset.views, image_size=64,
                                rotate_y_deg=REALMESHES_ROTATION)


def train(run_dir: Path, category: str, variant: str, iterations: int, preset: Preset, data_dir: Path,
          kro_variant: str | None, seed: int) -> bool:
    """Trains one run with train.py in a subprocess (output streamed). Returns False when training stopped
    with an error (for example the faithful KRO diverging, as the study observed)."""
    flagfile = PRESETS_DIR / f"study_{category}_{variant}.flags"
    if not flagfile.is_file():
        raise FileNotFoundError(f"reproduce: training preset {flagfile} is missing")
    command = [sys.executable, str(REPO_ROOT / "train.py"), f"--flagfile={flagfile}", f"--exp={run_dir}",
               f"--data_dir={data_dir}", f"--N_ITERS={iterations}", f"--print_n={preset.print_n}",
               f"--save_n={preset.save_n}", f"--save_model_n={preset.save_n}", f"--seed={seed}",
               *([f"--kro_variant={kro_variant}"] if kro_variant else [])]
    print(f"[reproduce] training {run_dir.name}: {' '.join(command[2:])}", flush=True)
    return subprocess.run(command, cwd=REPO_ROOT).returncode == 0


def train_and_evaluate(run_dir: Path, category: str, variant: str, preset: Preset, data: Path,
                       protocol: Protocol, kro_variant: str | None, seed: int) -> dict | None:
    """One cell of the grid: train, then evaluate against both GT types. None when nothing could be saved."""
    start = time.perf_counter()
    label = GRID_VARIANTS[variant]
    if not train(run_dir, category, variant, preset.iterations[category], preset, data, kro_variant, seed):
        label += " (training stopped early)"
        if not (run_dir / "checkpoints").is_dir():
            return None
    logged = (run_dir / loss_curves.LOSSES_CSV).is_file()
    skipped = int(np.sum(loss_curves.read_losses(run_dir).get(SKIPPED_STEPS, 0))) if logged else 0
    if skipped:
        label += f" ({skipped} steps skipped: non-finite loss or gradient)"
    evaluation = run_evaluation(run_dir, EvalSettings(split="test", gt_types=("uniform", "area"), label=label,
                                                      progress=False), protocol)
    clouds.evaluation_grid(evaluation, clouds.EVALUATION_MODELS)
    charts.evaluation_chart(evaluation.report, evaluation.out_dir / charts.EVALUATION_CHART)
    print(f"[reproduce] {run_dir.name} done in {time.perf_counter() - start:.0f} s", flush=True)
    return evaluation.report


def run_grid(preset_name: str, out, data_dir: str | None = None, categories=("car", "chair"),
             variants=tuple(GRID_VARIANTS), kro_variant: str | None = None, seed: int = 0) -> dict:
    """Trains and evaluates the grid; writes table3.md, results.json, the loss figures and table1.png.

    Returns:
      {run name: eval report} (the metrics.json content, see evaluation.run.run_evaluation).
    """
    preset = PRESETS[preset_name]
    out = Path(out)
    data = prepare_data(preset, out, data_dir)
    reports, rows, collapse, poses, verdicts, failures = {}, [], [], [], [], []
    protocol = Protocol(align_iters=preset.align_iters, seed=seed)
    for category in categories:
        category_reports = []
        for variant in variants:
            name = f"{category}_{variant}"
            report = train_and_evaluate(out / "runs" / name, category, variant, preset, data, protocol, kro_variant,
                                        seed)
            if report is None:
                failures.append(f"{name}: training failed before its first checkpoint (see its logs.txt)")
                continue
            reports[name] = report
            category_reports.append(report)
            rows += eval_report.table_rows(report["results"], report["label"], report["step"], references=False)
            collapse += eval_report.collapse_rows(report["results"], report["label"])
            poses += eval_report.pose_rows(report["results"], report["label"])
            verdicts += eval_report.verdict_lines(report["results"], report["label"])
        if category_reports:
            # The sphere and the mean training shape depend on the category and the split only.
            first = category_reports[0]
            rows += eval_report.table_rows(first["results"], first["label"], first["step"], model=False)
            logged = [r for r in category_reports if (Path(r["exp"]) / loss_curves.LOSSES_CSV).is_file()]
            if logged:
                loss_curves.plot_loss_curves([r["exp"] for r in logged], out / f"losses_{category}.png",
                                             labels=[r["label"] for r in logged])
    gt_order = list(eval_report.GT_LABELS.values())
    for table_rows, gt_column in ((rows, 3), (collapse, 1), (poses, 1)):  # category, then GT type: table 3's order
        table_rows.sort(key=lambda r: (r[0].split()[0].rstrip(":"), gt_order.index(r[gt_column])))
    table = eval_report.tables_text(rows, collapse, poses, verdicts, dataclasses.asdict(protocol))
    notes = "".join(f"\n- {f}" for f in failures)
    fit_splits = " / ".join(sorted({r["reference"]["fit_split"] for r in reports.values()}))
    (out / "table3.md").write_text(f"Preset `{preset_name}`, evaluated on the test split (rotation fitted on "
                                   f"the {fit_splits} split), metrics ×1000 (baseline §10.3).\n\n{table}{notes}\n")
    (out / "results.json").write_text(json.dumps(reports, indent=2))
    if reports:
        charts.grid_chart(reports, out / charts.GRID_CHART)
    sampling_figure.sampling_figure({c: sampling_figure.default_mesh(c) for c in ("car", "chair")},
                                    out / "table1.png")
    print(table)
    return reports


def main(argv):
    del argv
    f = flags.FLAGS
    run_grid(f.preset, f.out or f"runs/reproduce_{f.preset}", f.data_dir or None, tuple(f.categories),
             tuple(f.variants), f.kro_variant, f.seed)


def define_flags() -> None:
    """The CLI's flags."""
    flags.DEFINE_enum("preset", "smoke", list(PRESETS), "Sizes: smoke, small or full (see the module doc).")
    flags.DEFINE_string("out", "", "Output folder (default: runs/reproduce_<preset>).")
    flags.DEFINE_string("data_dir", "", "Data set to use instead of the preset's.")
    flags.DEFINE_list("categories", ["car", "chair"], "Categories of the grid.")
    flags.DEFINE_list("variants", list(GRID_VARIANTS), f"Variants of the grid: {list(GRID_VARIANTS)}.")
    flags.DEFINE_enum("kro_variant", None, kro.VARIANTS, "KRO form of the KRO runs (default: the presets', i.e. "
                      "the study's faithful form).")
    flags.DEFINE_integer("seed", 0, "Seed of every run.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
