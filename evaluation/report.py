"""What an evaluation writes: metrics.json, per_model.csv and table.md in the layout of the study's table 3.

Table 3 of the study: model, Chamfer, Fwd, Bwd, iterations, GT type, metrics × 1000 (baseline §10.3).
The picture of the clouds (clouds.png) is drawn by `viz.clouds.evaluation_grid`, one layer up (viz may
import evaluation, not the reverse).

Shape legend: M models.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from evaluation import metrics
from evaluation.predictions import Predictions
from evaluation.protocol import NOT_BASELINE

# --gt_type value -> the label of the study's table 3.
GT_LABELS = {"uniform": "baseline", "area": "area-based"}
TABLE_HEADER = ("model", "Chamfer", "Fwd", "Bwd", "iterations", "GT type")
METRICS_JSON, PER_MODEL_CSV, TABLE_MD = "metrics.json", "per_model.csv", "table.md"


def iterations_label(step: int) -> str:
    """Step count as the study's table 3 writes it (28000 -> '28k')."""
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def table_rows(results: dict, label: str, step: int, model: bool = True, references: bool = True) -> list[tuple]:
    """Rows of the table-3 layout for one run: the model per (category, GT type) and/or the references."""
    rows = []
    for gt_type, summary in results.items():
        for category, entry in summary["categories"].items():
            name = f"{category.capitalize()} {label}".strip()
            variants = []
            if model:
                variants.append((name, entry["model"]))
                if "icp" in entry:
                    variants.append((f"{name} + ICP ({NOT_BASELINE})", entry["icp"]))
            if references:
                variants += [(f"{category.capitalize()}: sphere (reference)", entry["sphere"]),
                             (f"{category.capitalize()}: mean training shape (reference)", entry["mean_shape"])]
            for row_name, values in variants:
                rows.append((row_name, values["chamfer"], values["fwd"], values["bwd"], iterations_label(step),
                             GT_LABELS[gt_type]))
    return rows


def markdown_table(rows: list[tuple]) -> str:
    """The study's table 3 layout as Markdown (metrics with 3 decimals, × 1000 already applied)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "| " + " | ".join("---" for _ in TABLE_HEADER) + " |"]
    for name, chamfer, fwd, bwd, iters, gt_label in rows:
        lines.append(f"| {name} | {chamfer:.3f} | {fwd:.3f} | {bwd:.3f} | {iters} | {gt_label} |")
    return "\n".join(lines) + "\n"


def write_per_model_csv(path: Path, preds: Predictions, per_model_by_gt: dict) -> None:
    """One row per (model, GT type): ids and every per-model metric × 1000."""
    names = sorted({name for per_model in per_model_by_gt.values() for name in per_model})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model_id", "category", "view", "gt_type", *(f"{n}_x1000" for n in names)])
        for gt_type, per_model in per_model_by_gt.items():
            for m in range(len(preds.model_id)):
                writer.writerow([preds.model_id[m], preds.category[m], int(preds.view[m]), gt_type,
                                 *(f"{metrics.METRIC_SCALE * per_model[n][m]:.6f}" if n in per_model else ""
                                   for n in names)])


def write_report(out_dir: Path, report: dict, preds: Predictions, per_model_by_gt: dict) -> None:
    """Writes metrics.json (`report`), per_model.csv and table.md into `out_dir`."""
    (out_dir / METRICS_JSON).write_text(json.dumps(report, indent=2))
    write_per_model_csv(out_dir / PER_MODEL_CSV, preds, per_model_by_gt)
    (out_dir / TABLE_MD).write_text(markdown_table(table_rows(report["results"], report["label"], report["step"])))


def summary_text(report: dict) -> str:
    """The run, its split and the table with the sanity references beside the model's score."""
    return (f"{report['label']}: step {report['step']}, {report['n_models']} images of split '{report['split']}', "
            f"rotation fitted on '{report['fit_split']}'\n"
            + markdown_table(table_rows(report["results"], report["label"], report["step"])))
