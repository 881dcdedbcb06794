"""Evaluation of one run directory: predictions, the protocol per GT type, the report files.

    run_evaluation(exp_dir, EvalSettings(split="test"), Protocol())

Steps, for a run written by train.py (restored with `model.trainer.load_for_inference`, its configuration
with `model.run_config`):
  1. Predict the clouds of the evaluation split and of the fit split (`evaluation.predictions`, §10.1).
  2. Per GT type, `evaluation.protocol.evaluate_gt_type`: the global rotation per category fitted on the fit
     split (the baseline fitted and scored the same split, §10.2, §13.7: `fit_on_eval`; by default it is
     fitted on `val`, or `train` when the data set has no val split), the scores and the references.
  3. Write metrics.json, per_model.csv and table.md (`evaluation.report`) into `<exp>/eval_<split>`.

Shape legend: M models, N predicted points.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from absl import logging

from evaluation import metrics, report
from evaluation.predictions import Predictions, default_fit_split, predict_split, training_gts
from evaluation.protocol import NOT_BASELINE, Protocol, evaluate_gt_type
from model import checkpointing, trainer


@dataclasses.dataclass
class EvalSettings:
    """What to evaluate and where to write it (how to score it is the `Protocol`).

    Attributes:
      split: evaluation split.  fit_split: split the rotation is fitted on (None: `default_fit_split`).
      fit_on_eval: fit on the evaluation split itself, as the baseline did (§10.2).
      gt_types: GT types to score against.  batch_size: prediction batch size.
      data_dir: data set (None: the one the run was trained on).
      step: checkpoint step (None: the newest).  max_models: cap per split (0: all).
      label: name of the run in the table (None: the run directory's name).
      out_dir: output folder (None: `<exp>/eval_<split>`).  progress: progress bars.
    """

    split: str = "test"
    fit_split: str | None = None
    fit_on_eval: bool = False
    gt_types: tuple = ("uniform", "area")
    batch_size: int = 32
    data_dir: str | Path | None = None
    step: int | None = None
    max_models: int = 0
    label: str | None = None
    out_dir: str | Path | None = None
    progress: bool = True


@dataclasses.dataclass
class Evaluation:
    """Result of `run_evaluation`.

    Attributes:
      report: the metrics.json content.  out_dir: the folder written.
      predictions: the evaluation split's predictions.
      rotated: {gt type: float32 `[M, N, 3]`} the predictions turned by their category's rotation.
    """

    report: dict
    out_dir: Path
    predictions: Predictions
    rotated: dict[str, np.ndarray]


def run_evaluation(exp_dir, settings: EvalSettings | None = None, protocol: Protocol | None = None) -> Evaluation:
    """Evaluates one run directory and writes metrics.json, per_model.csv and table.md.

    Args:
      exp_dir: run directory written by train.py.
      settings: what to evaluate (default `EvalSettings()`).  protocol: how to score it (default `Protocol()`).

    Returns:
      The Evaluation (report, output folder, predictions and rotated predictions for a picture).
    """
    exp_dir = Path(exp_dir)
    s = settings or EvalSettings()
    protocol = protocol or Protocol()
    recon_net, _, run = trainer.load_for_inference(exp_dir, step=s.step)
    step = checkpointing.checkpoint_step(checkpointing.checkpoint_path(exp_dir, s.step))
    data_dir = s.data_dir or run.data_dir
    categories = None if run.categories is None else list(run.categories)
    fit_split = s.split if s.fit_on_eval else (s.fit_split or default_fit_split(data_dir))
    out_dir = Path(s.out_dir) if s.out_dir else exp_dir / f"eval_{s.split}"
    out_dir.mkdir(parents=True, exist_ok=True)

    eval_preds = predict_split(recon_net, data_dir, s.split, s.batch_size, s.gt_types, categories, s.max_models,
                               s.progress)
    fit_preds = eval_preds if fit_split == s.split else predict_split(
        recon_net, data_dir, fit_split, s.batch_size, s.gt_types, categories, s.max_models, s.progress)
    train_gts = training_gts(data_dir, run.split, s.gt_types, categories, s.batch_size)

    results, per_model_by_gt, rotated_by_gt = {}, {}, {}
    for gt_type in s.gt_types:
        logging.info("eval: fitting one global rotation per category on %s (%d images) against %s GT",
                     fit_split, len(fit_preds.xyz), gt_type)
        results[gt_type], per_model_by_gt[gt_type], rotated_by_gt[gt_type] = evaluate_gt_type(
            eval_preds, fit_preds, train_gts[gt_type], gt_type, protocol)
    label = exp_dir.name if s.label is None else s.label
    content = {"exp": str(exp_dir), "label": label, "step": step, "split": s.split, "fit_split": fit_split,
               "data_dir": str(data_dir), "n_models": len(eval_preds.xyz),
               "protocol": {**dataclasses.asdict(protocol), "metric_scale": metrics.METRIC_SCALE,
                            "note": "icp and emd, when present, are " + NOT_BASELINE},
               "results": results}
    report.write_report(out_dir, content, eval_preds, per_model_by_gt)
    return Evaluation(report=content, out_dir=out_dir, predictions=eval_preds, rotated=rotated_by_gt)
