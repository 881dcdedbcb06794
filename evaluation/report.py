"""What an evaluation writes: metrics.json, per_model.csv and table.md, with the study's table 3 first.

table.md holds three tables and the verdicts:
  1. Table 3 of the study: model, Chamfer, Fwd, Bwd (EMD when computed), iterations, GT type, metrics × 1000
     (baseline §10.3), the model beside its references: sphere, mean training shape and the shuffled reference
     (each GT against other models' predictions, `evaluation.references`).
  2. Does the output depend on the input: the model's Chamfer, the shuffled and mean-shape references, the
     paired differences with their standard errors (`evaluation.verdict`), the spread ratio and the verdict.
  3. Pose accuracy of the pose net (`evaluation.pose`), or why it is not scored.
The picture of the clouds (clouds.png) and the bar chart (chart.png) are drawn by `viz`, one layer up (viz
may import evaluation, not the reverse).

Shape legend: M models.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from evaluation import metrics, verdict
from evaluation.predictions import Predictions
from evaluation.protocol import NOT_BASELINE

# --gt_type value -> the label of the study's table 3.
GT_LABELS = {"uniform": "baseline", "area": "area-based"}
TABLE_HEADER = ("model", "Chamfer", "Fwd", "Bwd", "iterations", "GT type")
COLLAPSE_HEADER = ("model", "GT type", "Chamfer", "shuffled", "shuffled − model (± SE)", "mean shape",
                   "mean shape − model (± SE)", "spread ratio (pred / GT)", "verdict")
POSE_HEADER = ("model", "GT type", "median rotation error (°)", "Acc π/6", "median azimuth error (°)",
               "median elevation error (°)")
METRICS_JSON, PER_MODEL_CSV, TABLE_MD = "metrics.json", "per_model.csv", "table.md"
SHUFFLED_ROW, SPREAD_ROW = "shuffled (reference)", "spread ratio"


def iterations_label(step: int) -> str:
    """Step count as the study's table 3 writes it (28000 -> '28k')."""
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def _row_name(category: str, label: str) -> str:
    return f"{category.capitalize()} {label}".strip()


def table_rows(results: dict, label: str, step: int, model: bool = True, references: bool = True) -> list[tuple]:
    """Rows of the table-3 layout for one run: the model (with its shuffled reference) and/or the fixed
    references (sphere, mean training shape), per (category, GT type). Each row: (name, values, iterations,
    GT label) with values the metrics dict (chamfer, fwd, bwd[, emd]) × 1000."""
    rows = []
    for gt_type, summary in results.items():
        for category, entry in summary["categories"].items():
            name = _row_name(category, label)
            variants = []
            if model:
                variants.append((name, entry["model"]))
                if "icp" in entry:
                    variants.append((f"{name} + ICP ({NOT_BASELINE})", entry["icp"]))
                if entry["shuffled"] is not None:
                    variants.append((f"{name}: {SHUFFLED_ROW}", entry["shuffled"]))
            if references:
                variants += [(f"{category.capitalize()}: sphere (reference)", entry["sphere"]),
                             (f"{category.capitalize()}: mean training shape (reference)", entry["mean_shape"])]
            rows += [(row_name, values, iterations_label(step), GT_LABELS[gt_type]) for row_name, values in variants]
    return rows


def markdown(header, rows) -> str:
    """A Markdown table of string cells."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[tuple]) -> str:
    """The study's table 3 layout (metrics with 3 decimals, × 1000 already applied), with an EMD column
    (NOT the baseline's protocol) when any row has one."""
    with_emd = any("emd" in values for _, values, _, _ in rows)
    header = TABLE_HEADER[:4] + ((f"EMD ({NOT_BASELINE})",) if with_emd else ()) + TABLE_HEADER[4:]
    cells = []
    for name, values, iters, gt_label in rows:
        emd = (f"{values['emd']:.3f}" if "emd" in values else "—",) if with_emd else ()
        cells.append((name, *(f"{values[k]:.3f}" for k in ("chamfer", "fwd", "bwd")), *emd, iters, gt_label))
    return markdown(header, cells)


def _difference(comparison: dict | None) -> str:
    if comparison is None:
        return "—"
    se = comparison["standard_error"]
    return f"{comparison['mean_difference']:.3f} ± {se:.3f}" if math.isfinite(se) else \
        f"{comparison['mean_difference']:.3f}"


def collapse_rows(results: dict, label: str) -> list[tuple]:
    """Rows of the table "does the output depend on the input" for one run (COLLAPSE_HEADER)."""
    rows = []
    for gt_type, summary in results.items():
        for category, entry in summary["categories"].items():
            spread = entry["spread"]
            rows.append((_row_name(category, label), GT_LABELS[gt_type], f"{entry['model']['chamfer']:.3f}",
                         f"{entry['shuffled']['chamfer']:.3f}" if entry["shuffled"] else "—",
                         _difference(entry["vs_shuffled"]), f"{entry['mean_shape']['chamfer']:.3f}",
                         _difference(entry["vs_mean_shape"]),
                         f"{spread['ratio']:.3f} ({spread['predictions']:.3f} / {spread['gt']:.3f})" if spread else "—",
                         verdict.verdict_label(entry)))
    return rows


def pose_rows(results: dict, label: str) -> list[tuple]:
    """Rows of the pose table for one run (POSE_HEADER)."""
    rows = []
    for gt_type, summary in results.items():
        for category, entry in summary["categories"].items():
            p = entry["pose"]
            values = ((p["not_scored"], "", "", "") if "not_scored" in p else
                      (f"{p['median_geodesic_deg']:.1f}", f"{p['accuracy_pi_6']:.3f}",
                       f"{p['median_azimuth_deg']:.1f}", f"{p['median_elevation_deg']:.1f}"))
            rows.append((_row_name(category, label), GT_LABELS[gt_type], *values))
    return rows


def verdict_lines(results: dict, label: str) -> list[str]:
    """The verdict sentences of one run, one per (GT type, category)."""
    return [f"- {label} [{GT_LABELS[gt_type]} GT] {entry['verdict']}"
            for gt_type, summary in results.items() for entry in summary["categories"].values()]


def tables_text(table3_rows: list[tuple], collapse: list[tuple], poses: list[tuple], verdicts: list[str],
                protocol: dict) -> str:
    """The three tables and the verdicts, as table.md and experiments.reproduce's table3.md hold them."""
    return (markdown_table(table3_rows)
            + f"\nShuffled reference: each GT against at most {protocol['shuffled_others']} predictions of other "
              f"models of its category (never another view of the same model), aligned and normalised as the "
              f"model's own score. Spread ratio: mean pairwise Chamfer between the predictions of different "
              f"models ÷ the same between their GTs (at most {protocol['spread_pairs']} pairs of models); "
              f"0 for a fixed output.\n\n"
            + f"### Does the output depend on the input?\n\nA model \"{verdict.LEARNED}\" only when it beats the "
              f"shuffled reference: {verdict.CRITERION}. Metrics × 1000.\n\n" + markdown(COLLAPSE_HEADER, collapse)
            + "\n" + "\n".join(verdicts) + "\n"
            + "\n### Pose accuracy of the pose net\n\nGeodesic error between the predicted camera (composed with "
              "the category's fitted rotation) and the GT camera; Acc π/6: fraction below 30° "
              "(evaluation/pose.py).\n\n" + markdown(POSE_HEADER, poses))


def report_text(report: dict) -> str:
    """table.md of one evaluation."""
    results, label = report["results"], report["label"]
    return tables_text(table_rows(results, label, report["step"]), collapse_rows(results, label),
                       pose_rows(results, label), verdict_lines(results, label), report["protocol"])


def write_per_model_csv(path: Path, preds: Predictions, per_model_by_gt: dict) -> None:
    """One row per (model, GT type): ids, every per-model metric × 1000 and the pose errors in degrees."""
    names = sorted({name for per_model in per_model_by_gt.values() for name in per_model})
    columns = [n if n.endswith("_deg") else f"{n}_x1000" for n in names]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model_id", "category", "view", "gt_type", *columns])
        for gt_type, per_model in per_model_by_gt.items():
            for m in range(len(preds.model_id)):
                writer.writerow([preds.model_id[m], preds.category[m], int(preds.view[m]), gt_type,
                                 *(_csv_value(n, per_model[n][m]) if n in per_model else "" for n in names)])


def _csv_value(name: str, value: float) -> str:
    return f"{value:.6f}" if name.endswith("_deg") else f"{metrics.METRIC_SCALE * value:.6f}"


def write_report(out_dir: Path, report: dict, preds: Predictions, per_model_by_gt: dict) -> None:
    """Writes metrics.json (`report`), per_model.csv and table.md into `out_dir`."""
    (out_dir / METRICS_JSON).write_text(json.dumps(report, indent=2))
    write_per_model_csv(out_dir / PER_MODEL_CSV, preds, per_model_by_gt)
    (out_dir / TABLE_MD).write_text(report_text(report))


def summary_text(report: dict) -> str:
    """What eval.py prints: the run, where each part's data came from, the tables and the verdicts."""
    ref = report["reference"]
    refined = report["refinement"]["steps"]
    cache = report["cache"]["used"]
    return (f"{report['label']}: step {report['step']}, {report['n_models']} images of split '{report['split']}' of "
            f"{report['data_dir']}" + (f", each refined for {refined} steps" if refined else "") + "\n"
            f"rotation fitted on split '{ref['fit_split']}' of {ref['fit_data_dir']}; mean training shape from "
            f"split '{ref['split']}' of {ref['data_dir']}\n"
            + (f"from the cache in {report['cache']['folder']}: {', '.join(cache)}\n" if cache else "")
            + f"pose net: {report['pose_net']}\n\n" + report_text(report))
