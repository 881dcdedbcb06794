"""Bar charts of evaluations: one evaluation's scores beside its references, and the study's table-3 grid.

`evaluation_chart` (chart.png beside an evaluation's table.md): one panel per (GT type, category), the
groups Chamfer, Fwd and Bwd (× 1000, log scale: the sphere sits an order of magnitude above), one bar each for
the model, the shuffled reference (other models' predictions), the mean training shape and the sphere; the
panel's title gives the spread ratio and the verdict (`evaluation.verdict.verdict_label`).

`grid_chart` (table3.png of `experiments.reproduce`): one panel per (category, GT type), per run the model's
Chamfer beside its shuffled reference, with the spread ratio above them, and the category's mean training
shape as a dashed line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import ticker

from evaluation.report import GT_LABELS
from evaluation.verdict import verdict_label
from viz import clouds

EVALUATION_CHART = "chart.png"
GRID_CHART = "table3.png"
METRICS = ("chamfer", "fwd", "bwd")
REFERENCES = (("model", "model"), ("shuffled", "shuffled (other models' predictions)"),
              ("mean_shape", "mean training shape"), ("sphere", "sphere"))
PANEL_WIDTH = 1.75  # panel width in FIGURE_INCHES_PER_PANEL units


def _panels(n_panels: int, rows: int):
    cols = int(np.ceil(n_panels / rows))
    fig = clouds.new_figure(rows, cols)
    fig.set_size_inches(cols * clouds.FIGURE_INCHES_PER_PANEL * PANEL_WIDTH, rows * clouds.FIGURE_INCHES_PER_PANEL * 1.2)
    return fig, cols


def evaluation_chart(report: dict, out_path) -> Path:
    """chart.png of one evaluation (module doc).

    Args:
      report: the metrics.json content (`evaluation.run.run_evaluation`).
      out_path: PNG to write.

    Returns:
      The PNG path.
    """
    results = report["results"]
    panels = [(g, c, e) for g, summary in results.items() for c, e in summary["categories"].items()]
    fig, cols = _panels(len(panels), len(results))
    width = 0.8 / len(REFERENCES)
    for p, (gt_type, category, entry) in enumerate(panels):
        ax = fig.add_subplot(len(results), cols, p + 1)
        shown = [(r, key, label) for r, (key, label) in enumerate(REFERENCES) if entry.get(key) is not None]
        for r, key, label in shown:
            bars = ax.bar(np.arange(len(METRICS)) + (r - (len(REFERENCES) - 1) / 2) * width,
                          [entry[key][m] for m in METRICS], width, label=label, color=f"C{r}")
            ax.bar_label(bars, fmt="%.3g", fontsize=4)
        smallest = min(entry[key][m] for _, key, _ in shown for m in METRICS if entry[key][m] > 0)
        ax.set_yscale("log")
        ax.set_ylim(bottom=smallest / 3)  # every bar rises visibly from the axis
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xticks(np.arange(len(METRICS)), ["Chamfer", "Fwd", "Bwd"], fontsize=7)
        ax.set_ylabel("× 1000 (log scale)", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
        spread = f"spread {entry['spread']['ratio']:.2f}" if entry["spread"] else "spread —"
        ax.set_title(f"{category}, {GT_LABELS[gt_type]} GT: {spread}\n{verdict_label(entry)}", fontsize=7)
    fig.suptitle(f"{report['label']}, step {report['step']}, split '{report['split']}' of "
                 f"{Path(report['data_dir']).name}", fontsize=8)
    return _save_with_legend(fig, fig.axes[0], out_path)


def _save_with_legend(fig, ax, out_path) -> Path:
    """One legend (of `ax`) under the panels, then the figure written."""
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0.0, 0.05, 1.0, 1.0))
    return clouds.save_figure(fig, out_path)


def grid_chart(reports: dict, out_path) -> Path:
    """table3.png of the experiment grid (module doc).

    Args:
      reports: {run name: metrics.json content}, every run evaluated on the same split.
      out_path: PNG to write.

    Returns:
      The PNG path.
    """
    panels = {}
    for report in reports.values():
        for gt_type, summary in report["results"].items():
            for category, entry in summary["categories"].items():
                panels.setdefault((category, gt_type), []).append((report["label"], entry))
    if not panels:
        raise ValueError("viz.charts: no evaluated run to draw")
    keys = sorted(panels, key=lambda k: (k[0], list(GT_LABELS).index(k[1])))
    rows = len({gt for _, gt in keys})
    fig, cols = _panels(len(keys), rows)
    for p, (category, gt_type) in enumerate(keys):
        ax = fig.add_subplot(rows, cols, p + 1)
        runs = panels[(category, gt_type)]
        x = np.arange(len(runs))
        model = [e["model"]["chamfer"] for _, e in runs]
        shuffled = [e["shuffled"]["chamfer"] if e["shuffled"] else np.nan for _, e in runs]
        ax.bar(x - 0.2, model, 0.4, label="model")
        ax.bar(x + 0.2, shuffled, 0.4, label="shuffled (other models' predictions)")
        for i, (_, entry) in enumerate(runs):
            spread = f"{entry['spread']['ratio']:.2f}" if entry["spread"] else "—"
            ax.annotate(f"spread {spread}", (x[i], np.nanmax([model[i], shuffled[i]])), ha="center",
                        va="bottom", fontsize=5)
        ax.axhline(runs[0][1]["mean_shape"]["chamfer"], color="k", linestyle="--", linewidth=0.8,
                   label="mean training shape")
        ax.set_ylim(top=1.15 * ax.get_ylim()[1])  # room for the spread labels
        ax.set_xticks(x, [label for label, _ in runs], fontsize=5, rotation=20, ha="right")
        ax.set_ylabel("Chamfer × 1000", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_title(f"{category}, {GT_LABELS[gt_type]} GT", fontsize=8)
    return _save_with_legend(fig, fig.axes[0], out_path)
