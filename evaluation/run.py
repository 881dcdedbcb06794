"""Evaluation of one run directory: predictions, the protocol per GT type, the report files.

    run_evaluation(exp_dir, EvalSettings(split="test"), Protocol())

Steps, for a run written by train.py (restored with `model.trainer.load_for_inference`, its configuration
with `model.run_config`):
  1. Predict the clouds and poses of the evaluation split of the evaluation data (`evaluation.predictions`,
     §10.1; optionally refined image by image, `evaluation.refinement`). Any built data set and split can be
     evaluated, also a folder with a test split only.
  2. The reference data: the run's own data set and training split unless named (`reference_data_dir`,
     `reference_split`). The global rotation per category is fitted on its `val` split when it has one (the
     baseline's align split, §10.2), otherwise on the reference split (`fit_split` overrides; `fit_on_eval`
     fits on the evaluation split itself, as the baseline's scripts did, §13.7); the mean training shape is
     the medoid of the reference split's clouds.
  3. Per GT type, `evaluation.protocol.evaluate_gt_type`: the scores, the references, the verdict, the pose.
  4. Write metrics.json, per_model.csv and table.md (`evaluation.report`) into the evaluation's folder,
     `<exp>/eval/<data name>_<split>_step<k>[_refine<N>][_first<M>]` unless `out_dir` is given.

Predictions, fitted rotations and mean shapes are cached (`evaluation.cache`) in `<exp>/eval/cache/` (with
`out_dir`: `<out_dir>/cache/`), so re-scoring with other options (ICP, EMD, the denominator, the references'
draws) neither predicts nor fits again; the report lists the cache entries it used.

Shape legend: M models, N predicted points.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from absl import logging

from evaluation import metrics, references, report, verdict
from evaluation.alignment import GlobalRotation
from evaluation.cache import Cache, checkpoint_identity, data_identity
from evaluation.predictions import Predictions, default_fit_split, predict_split, training_gts
from evaluation.protocol import NOT_BASELINE, Protocol, evaluate_gt_type, fit_rotations
from evaluation.refinement import TERMS, Refiner
from model import checkpointing, trainer
from model.config import TrainConfig

EVAL_DIR, CACHE_DIR = "eval", "cache"


@dataclasses.dataclass
class EvalSettings:
    """What to evaluate and where to write it (how to score it is the `Protocol`).

    Attributes:
      split: evaluation split.  data_dir: evaluation data set (None: the one the run was trained on).
      reference_data_dir: data set of the rotation fit and the mean training shape (None: the run's).
      reference_split: split of the mean training shape, and of the fit when the reference data has no val
        split (None: the run's training split).
      fit_split: split of the reference data the rotation is fitted on (None: val if present, else the
        reference split).  fit_on_eval: fit on the evaluation split itself, as the baseline did (§10.2).
      gt_types: GT types to score against.  batch_size: prediction batch size.
      step: checkpoint step (None: the newest).
      max_models: evaluate only the first this many examples of the evaluation split (0: all); the fit split
        is always used whole, unless it is the evaluation split.
      refine_steps: test-time refinement steps per evaluation image (0: none; `evaluation.refinement`).
      label: name of the run in the table (None: the run directory's name, with "+ refinement N steps").
      out_dir: output folder (None: `<exp>/eval/<data name>_<split>_step<k>...`, module doc).
      cache: read and write the cache.  progress: progress bars.
    """

    split: str = "test"
    data_dir: str | Path | None = None
    reference_data_dir: str | Path | None = None
    reference_split: str | None = None
    fit_split: str | None = None
    fit_on_eval: bool = False
    gt_types: tuple = ("uniform", "area")
    batch_size: int = 32
    step: int | None = None
    max_models: int = 0
    refine_steps: int = 0
    label: str | None = None
    out_dir: str | Path | None = None
    cache: bool = True
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


def evaluation_name(data_dir, split: str, step: int, refine_steps: int = 0, max_models: int = 0) -> str:
    """`<data name>_<split>_step<k>[_refine<N>][_first<M>]`: the folder of one evaluation under `<exp>/eval/`."""
    name = f"{Path(data_dir).resolve().name}_{split}_step{step}"
    return name + (f"_refine{refine_steps}" if refine_steps else "") + (f"_first{max_models}" if max_models else "")


def pose_net_status(config: TrainConfig) -> str | None:
    """Why the run's pose net was not trained (its poses are then not scored), or None when it was."""
    if config.use_gt_pose:
        return "not scored: the run was trained with --use_gt_pose, its pose net is untrained"
    if not config.trains_pose_net:
        return "not scored: the run was trained without --optimise_pose, its pose net is untrained"
    return None


def _rotations_from_arrays(arrays: dict, categories) -> dict[str, GlobalRotation]:
    return {c: GlobalRotation(angles=arrays[f"angles_{c}"], rotation=arrays[f"rotation_{c}"],
                              losses=arrays[f"losses_{c}"]) for c in categories}


def _rotations_to_arrays(rotations: dict[str, GlobalRotation]) -> dict[str, np.ndarray]:
    return {f"{name}_{c}": getattr(r, name) for c, r in rotations.items() for name in ("angles", "rotation", "losses")}


@dataclasses.dataclass
class _Sources:
    """Where each part of an evaluation comes from (resolved from the run and the settings)."""

    data_dir: str | Path  # evaluation data
    reference_dir: str | Path  # mean training shape (and, by default, the fit)
    reference_split: str
    fit_dir: str | Path
    fit_split: str

    @classmethod
    def resolve(cls, s: EvalSettings, run) -> _Sources:
        data_dir = s.data_dir or run.data_dir
        reference_dir = s.reference_data_dir or run.data_dir
        reference_split = s.reference_split or run.split
        if s.fit_on_eval:
            return cls(data_dir, reference_dir, reference_split, data_dir, s.split)
        fit_split = s.fit_split or (reference_split if s.reference_split
                                    else default_fit_split(reference_dir, reference_split))
        return cls(data_dir, reference_dir, reference_split, reference_dir, fit_split)


def _evaluation_predictions(nets, run, s: EvalSettings, src: _Sources, cache: Cache, model_key: dict):
    """(Predictions of the evaluation split, float64 `[M, 2, len(TERMS)]` refinement losses before/after)."""
    key = {**model_key, "data": data_identity(src.data_dir), "split": s.split, "max_models": s.max_models,
           "refine_steps": s.refine_steps}
    cached = cache.load("predictions", key)
    if cached is not None:
        return Predictions.from_arrays(cached), cached["refinement_losses"]
    refiner = Refiner(*nets, run.train, s.refine_steps) if s.refine_steps else None
    preds = predict_split(*nets, src.data_dir, s.split, s.batch_size, s.gt_types,
                          None if run.categories is None else list(run.categories), s.max_models, s.progress,
                          refiner)
    refinement = np.stack(refiner.first_last) if refiner else np.zeros((0, 2, len(TERMS)))
    cache.save("predictions", key, {**preds.to_arrays(), "refinement_losses": refinement})
    return preds, refinement


def _global_rotations(nets, s: EvalSettings, src: _Sources, protocol: Protocol, cache: Cache, model_key: dict,
                      eval_preds: Predictions, categories: list[str]) -> dict:
    """{gt type: {category: GlobalRotation}} fitted on the fit split's unrefined predictions: the whole split,
    or the evaluated examples when it is the evaluation split."""
    fit_is_eval = (Path(src.fit_dir).resolve(), src.fit_split) == (Path(src.data_dir).resolve(), s.split)
    fit_max_models = s.max_models if fit_is_eval else 0
    key = {**model_key, "data": data_identity(src.fit_dir), "split": src.fit_split, "categories": categories,
           "max_models": fit_max_models, "fit": protocol.fit_settings()}
    rotations, fit_preds = {}, None
    for gt_type in s.gt_types:
        cached = cache.load("rotations", {**key, "gt_type": gt_type})
        if cached is not None:
            rotations[gt_type] = _rotations_from_arrays(cached, categories)
            continue
        if fit_preds is None:
            fit_preds = eval_preds if fit_is_eval and not s.refine_steps else predict_split(
                *nets, src.fit_dir, src.fit_split, s.batch_size, s.gt_types, categories, fit_max_models, s.progress)
        logging.info("eval: fitting one global rotation per category on %s of %s (%d images) against %s GT",
                     src.fit_split, src.fit_dir, len(fit_preds.xyz), gt_type)
        rotations[gt_type] = fit_rotations(fit_preds, gt_type, protocol, categories)
        cache.save("rotations", {**key, "gt_type": gt_type}, _rotations_to_arrays(rotations[gt_type]))
    return rotations


def _mean_shapes(s: EvalSettings, src: _Sources, protocol: Protocol, cache: Cache, categories: list[str]) -> dict:
    """{gt type: {category: float `[K, 3]`}} the mean training shapes of the reference split."""
    key = {"data": data_identity(src.reference_dir), "split": src.reference_split, "categories": categories,
           "seed": protocol.seed, "candidates": references.REFERENCE_CANDIDATES}
    shapes, train_gts = {}, None
    for gt_type in s.gt_types:
        cached = cache.load("mean_shapes", {**key, "gt_type": gt_type})
        if cached is None:
            if train_gts is None:
                train_gts = training_gts(src.reference_dir, src.reference_split, s.gt_types, categories, s.batch_size)
            cached = {c: references.mean_training_shape(clouds, protocol.nn_method, protocol.seed)
                      for c, clouds in train_gts[gt_type].items()}
            cache.save("mean_shapes", {**key, "gt_type": gt_type}, cached)
        shapes[gt_type] = cached
    return shapes


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
    recon_net, pose_net, run = trainer.load_for_inference(exp_dir, step=s.step)
    nets = (recon_net, pose_net)
    checkpoint = checkpointing.checkpoint_path(exp_dir, s.step)
    step = checkpointing.checkpoint_step(checkpoint)
    src = _Sources.resolve(s, run)
    if s.out_dir:
        out_dir = Path(s.out_dir)
        cache_dir = out_dir / CACHE_DIR
    else:
        out_dir = exp_dir / EVAL_DIR / evaluation_name(src.data_dir, s.split, step, s.refine_steps, s.max_models)
        cache_dir = exp_dir / EVAL_DIR / CACHE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Cache(cache_dir if s.cache else None)
    model_key = {"checkpoint": checkpoint_identity(checkpoint, step),
                 "categories": None if run.categories is None else list(run.categories), "gt_types": list(s.gt_types)}

    eval_preds, refinement = _evaluation_predictions(nets, run, s, src, cache, model_key)
    categories = sorted({str(c) for c in eval_preds.category})
    rotations = _global_rotations(nets, s, src, protocol, cache, model_key, eval_preds, categories)
    mean_shapes = _mean_shapes(s, src, protocol, cache, categories)

    pose_status = pose_net_status(run.train)
    results, per_model_by_gt, rotated_by_gt = {}, {}, {}
    for gt_type in s.gt_types:
        results[gt_type], per_model_by_gt[gt_type], rotated_by_gt[gt_type] = evaluate_gt_type(
            eval_preds, rotations[gt_type], mean_shapes[gt_type], gt_type, protocol, pose_status)
    label = (exp_dir.name + (f" + refinement {s.refine_steps} steps" if s.refine_steps else "")
             if s.label is None else s.label)
    content = {"exp": str(exp_dir), "label": label, "step": step,
               "data_dir": str(src.data_dir), "split": s.split, "n_models": len(eval_preds.xyz),
               "reference": {"data_dir": str(src.reference_dir), "split": src.reference_split,
                             "fit_data_dir": str(src.fit_dir), "fit_split": src.fit_split,
                             "note": "the rotation is fitted on fit_data_dir/fit_split; the mean training shape "
                                     "is the medoid of data_dir/split's clouds"},
               "protocol": {**dataclasses.asdict(protocol), "metric_scale": metrics.METRIC_SCALE,
                            "note": "icp and emd, when present, are " + NOT_BASELINE},
               "criterion": verdict.CRITERION,
               "pose_net": pose_status or "trained",
               "refinement": _refinement_summary(s.refine_steps, refinement),
               "cache": {"folder": str(cache.folder) if cache.folder else None, "used": cache.used},
               "results": results}
    report.write_report(out_dir, content, eval_preds, per_model_by_gt)
    return Evaluation(report=content, out_dir=out_dir, predictions=eval_preds, rotated=rotated_by_gt)


def _refinement_summary(steps: int, first_last: np.ndarray) -> dict:
    """{"steps": N} and, when refined, the mean over images of every objective term before and after."""
    if not steps:
        return {"steps": 0}
    return {"steps": steps, "mean_before": dict(zip(TERMS, first_last[:, 0].mean(axis=0).tolist())),
            "mean_after": dict(zip(TERMS, first_last[:, 1].mean(axis=0).tolist()))}
