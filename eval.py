"""Evaluation with the baseline's protocol (baseline §10), against either or both GT types.

    python eval.py --exp runs/car --split test --gt_type both

Steps, for the run in `--exp` (restored with the flags train.py saved, `model.trainer.load_for_inference`):
  1. Predict the clouds of the evaluation split and of the fit split (batched, progress bar) (§10.1).
  2. Fit ONE global rotation per GT type on the fit split (`evaluation.alignment`, §10.2: Euler angles from
     (29°, 0°, 270°), Adam lr 1e-3 on 1e4 · Chamfer, 5000 steps of batch 1). The baseline fitted and scored
     the same split (§10.2, §13.7); `--fit_on_eval` does that, the default fits on `val` (or `train` when the
     data set has no val split) and applies the rotation to the evaluation split.
  3. Score every rotated prediction (`evaluation.metrics`, §10.3): per-cloud bbox normalisation (prediction
     clipped to ±0.5 for its box), squared Chamfer forward (GT -> pred) and backward (pred -> GT), their sum,
     averaged per category over models, × 1000 (`--n_minus_1`: the baseline's n - 1 denominator).
  4. Sanity references, scored on the same split with the same normalisation and metric: a sphere whose radius
     is the mean radius of the GT clouds, and the category's mean training shape (the training GT cloud with
     the smallest mean Chamfer to the other training clouds of its category). A model that learned anything
     beats both. They need no rotation: they are built in the GT frame.
  5. Optional, NOT the baseline's protocol and labelled so everywhere: per-model ICP refinement after the
     global rotation (`--icp`) and the exact EMD (`--emd`).

Writes into `--out` (default `<exp>/eval_<split>`): metrics.json, per_model.csv (values × 1000), table.md
(the study's table 3 layout: model, Chamfer, Fwd, Bwd, iterations, GT type) and clouds.png
(input | aligned prediction | GT for the first models).

Shape legend: M models, N predicted points, K GT points, H image size.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from absl import app, flags, logging
from tqdm import tqdm

from data import build, tfrecords
from evaluation import alignment, metrics
from geometry import nearest
from model import checkpointing, trainer
from viz import clouds

# --gt_type value -> TFRecord feature, and the label of the study's table 3.
GT_FEATURES = {"uniform": "gt_uniform", "area": "gt_area"}
GT_LABELS = {"uniform": "baseline", "area": "area-based"}
TABLE_HEADER = ("model", "Chamfer", "Fwd", "Bwd", "iterations", "GT type")
REFERENCE_CANDIDATES = 200  # training clouds considered for the mean shape (O(T^2) Chamfers)
NOT_BASELINE = "not the baseline's protocol"


@dataclasses.dataclass
class Predictions:
    """Predicted clouds of one split with what they are compared to.

    Attributes:
      model_id, category: str `[M]`.  view: int `[M]`.
      xyz: float32 `[M, N, 3]` predictions.  rgb: float32 `[M, N, 3]` predicted colours.
      images: float32 `[M, H, H, 3]` inputs.
      gt: {gt type: float32 `[M, K, 3]`} GT clouds in the render frame.
    """

    model_id: np.ndarray
    category: np.ndarray
    view: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    images: np.ndarray
    gt: dict


def iterate_split(data_dir, split: str, batch_size: int, gt_types, categories=None, max_models: int = 0,
                  progress: bool = True, desc: str = ""):
    """Yields the batches of one split in file order (no shuffling, baseline §10.1), trimmed to `max_models`.

    Args:
      data_dir: data set written by `data.build`.  split: split name.  batch_size: B.
      gt_types: GT types to read ("uniform", "area").  categories: category names, or None for all.
      max_models: keep only the first this many examples (0: all).
      progress: show a progress bar labelled `desc`.

    Yields:
      dicts of numpy arrays as `data.tfrecords.make_dataset` gives them, the last batch possibly shorter.
    """
    total = tfrecords.num_examples(tfrecords.read_index(data_dir), split, categories)
    total = min(total, max_models) if max_models else total
    dataset = tfrecords.make_dataset(data_dir, split, batch_size, shuffle=False, repeat=False,
                                     categories=categories, drop_remainder=False,
                                     gt_types=[GT_FEATURES[g] for g in gt_types])
    seen = 0
    for batch in tqdm(dataset, total=math.ceil(total / batch_size), desc=desc, disable=not progress):
        keep = min(int(batch["image"].shape[0]), total - seen)
        yield {k: v.numpy()[:keep] for k, v in batch.items()}
        seen += keep
        if seen >= total:
            return


def _strings(values: np.ndarray) -> np.ndarray:
    """A tf.string batch (numpy bytes objects) as a numpy array of str."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])


def predict_split(recon_net, data_dir, split: str, batch_size: int, gt_types, categories=None,
                  max_models: int = 0, progress: bool = True) -> Predictions:
    """Runs the reconstruction net over one split (baseline §10.1; arguments as `iterate_split`).

    Args:
      recon_net: Keras model, images `[B, H, H, 3]` -> {"xyz": `[B, N, 3]`, "rgb": `[B, N, 3]`, ...}.

    Returns:
      Predictions of the split.
    """
    parts: dict[str, list] = {}
    for batch in iterate_split(data_dir, split, batch_size, gt_types, categories, max_models, progress,
                               desc=f"predict {split}"):
        out = recon_net.predict_on_batch(batch["image"])  # Keras compiles and caches the inference function
        batch.update(xyz=np.asarray(out["xyz"]), rgb=np.asarray(out["rgb"]))
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    if not parts:
        raise ValueError(f"eval: split {split!r} of {data_dir} gave no examples")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Predictions(_strings(cat["model_id"]), _strings(cat["category"]), cat["view"], cat["xyz"],
                       cat["rgb"], cat["image"], {g: cat[GT_FEATURES[g]] for g in gt_types})


def fibonacci_sphere(n: int, radius: float) -> np.ndarray:
    """n nearly uniform points on a sphere of `radius` about the origin (golden-angle spiral): float `[n, 3]`."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = math.pi * (1.0 + math.sqrt(5.0)) * i
    return radius * np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar),
                              np.cos(polar)], axis=1)


def mean_radius(gts: np.ndarray) -> float:
    """Mean over clouds of the mean distance of their points to their bbox centre. gts: float `[M, K, 3]`."""
    centres = (gts.max(axis=1, keepdims=True) + gts.min(axis=1, keepdims=True)) / 2.0
    return float(np.mean(np.linalg.norm(gts - centres, axis=-1)))


def mean_training_shape(train_gts: np.ndarray, method: str = "kdtree", seed: int = 0) -> np.ndarray:
    """The Chamfer medoid of training clouds: the one with the smallest mean Chamfer to the others.

    Args:
      train_gts: float `[T, K, 3]` (at most REFERENCE_CANDIDATES of them, drawn with `seed`, are compared).
      method: nearest-neighbour method (`geometry.nearest.NUMPY_METHODS`).  seed: draw of the candidates.

    Returns:
      float `[K, 3]`.
    """
    if len(train_gts) > REFERENCE_CANDIDATES:
        train_gts = train_gts[np.random.default_rng(seed).choice(len(train_gts), REFERENCE_CANDIDATES, False)]
    normalised = [metrics.normalise_bbox(g) for g in train_gts]
    cost = np.zeros(len(normalised))
    for i, a in enumerate(normalised):
        for j in range(i + 1, len(normalised)):
            d = sum(metrics.chamfer_fwd_bwd(a, normalised[j], method))
            cost[i] += d
            cost[j] += d
    return train_gts[int(np.argmin(cost))]


@dataclasses.dataclass
class Protocol:
    """Settings of the evaluation (defaults = baseline §10.2-10.3)."""

    align_iters: int = alignment.ALIGN_ITERS
    align_lr: float = alignment.ALIGN_LR
    align_batch: int = 1
    chamfer_backend: str = "auto"
    nn_method: str = "kdtree"
    denominator: str = "n"
    icp: bool = False
    emd: bool = False
    seed: int = 0


def score(gts: np.ndarray, preds, protocol: Protocol, normalise: bool = True) -> dict[str, np.ndarray]:
    """Per-model metrics (unscaled) of already rotated predictions, with EMD when the protocol asks.

    `normalise=False` for clouds already in the normalised frame (the ICP-refined ones), so that the
    per-cloud bounding-box normalisation does not undo part of ICP's translation.
    """
    return metrics.per_model_metrics(gts, preds, protocol.nn_method, with_emd=protocol.emd,
                                     normalise=normalise)


def icp_pairs(gts: np.ndarray, preds: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-model ICP refinement in the normalised frame (NOT the baseline's protocol).

    Returns:
      (normalised GT clouds, ICP-refined normalised predictions), to be scored without normalising again.
    """
    pairs = [metrics.normalise_pair(gt, pred) for gt, pred in zip(gts, preds)]
    return [gt_n for gt_n, _ in pairs], [alignment.icp_refine(pred_n, gt_n) for gt_n, pred_n in pairs]


def evaluate_gt_type(eval_preds: Predictions, fit_preds: Predictions, train_gts: dict, gt_type: str,
                     protocol: Protocol) -> tuple[dict, dict]:
    """Per category: fits the global rotation on `fit_preds`, scores `eval_preds` and the references.

    The baseline trains and aligns one category at a time (§10.2), so a multi-category run gets one
    rotation per category, each fitted on that category's fit predictions only.

    Args:
      eval_preds: predictions of the evaluation split.  fit_preds: predictions the rotation is fitted on.
      train_gts: {category: float `[T, K, 3]`} training GT clouds of this GT type (for the mean shape).
      gt_type: "uniform" or "area".  protocol: settings.

    Returns:
      (summary, per_model, rotated): summary = {"categories": {category: {"n_models", "rotation_deg" [3],
      "align_loss_first", "align_loss_last", "model", "sphere", "mean_shape"[, "icp"]}}} with scaled
      averages; per_model = {name: float64 `[M]`} unscaled, keys "<metric>" and "icp_<metric>";
      rotated = float32 `[M, N, 3]` the predictions turned by their category's rotation.
    """
    gts = eval_preds.gt[gt_type]
    rotated = np.empty_like(eval_preds.xyz)
    summary = {"categories": {}}
    for category in sorted(set(eval_preds.category)):
        mask = eval_preds.category == category
        fit_mask = fit_preds.category == category
        if not fit_mask.any():
            raise ValueError(f"eval: no predictions of category {category!r} to fit the rotation on")
        if category not in train_gts:
            raise ValueError(f"eval: no training clouds of category {category!r} for the mean-shape reference")
        fit = alignment.fit_global_rotation(fit_preds.xyz[fit_mask], fit_preds.gt[gt_type][fit_mask],
                                            n_iters=protocol.align_iters, lr=protocol.align_lr,
                                            batch_size=protocol.align_batch, seed=protocol.seed,
                                            backend=protocol.chamfer_backend)
        rotated[mask] = alignment.rotate(eval_preds.xyz[mask], fit.rotation)
        summary["categories"][category] = {
            "rotation_deg": fit.angles_deg.tolist(), "align_loss_first": float(fit.losses[0]),
            "align_loss_last": float(np.mean(fit.losses[-min(100, len(fit.losses)):]))}
    per_model = score(gts, rotated, protocol)
    if protocol.icp:
        per_model.update({f"icp_{k}": v for k, v in score(*icp_pairs(gts, rotated), protocol,
                                                           normalise=False).items()})
    sphere = fibonacci_sphere(gts.shape[1], mean_radius(gts))
    for category in sorted(set(eval_preds.category)):
        mask = eval_preds.category == category
        mean_shape = mean_training_shape(train_gts[category], protocol.nn_method, protocol.seed)
        entry = summary["categories"][category]
        entry.update({"n_models": int(mask.sum()),
                 "model": metrics.summarise({k: per_model[k][mask] for k in ("chamfer", "fwd", "bwd", "emd")
                                             if k in per_model}, protocol.denominator),
                 "sphere": metrics.summarise(score(gts[mask], [sphere] * int(mask.sum()), protocol),
                                             protocol.denominator),
                 "mean_shape": metrics.summarise(score(gts[mask], [mean_shape] * int(mask.sum()), protocol),
                                                 protocol.denominator)})
        if protocol.icp:
            entry["icp"] = metrics.summarise({k[4:]: v[mask] for k, v in per_model.items() if k.startswith("icp_")},
                                             protocol.denominator)
    return summary, per_model, rotated


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


def training_gts(data_dir, split: str, gt_types, categories, batch_size: int) -> dict:
    """{gt type: {category: float `[T, K, 3]`}} GT clouds of the training split (for the mean shape)."""
    parts: dict[str, list] = {}
    for batch in iterate_split(data_dir, split, batch_size, gt_types, categories,
                               max_models=4 * REFERENCE_CANDIDATES, progress=False):
        for key in ("category", *(GT_FEATURES[g] for g in gt_types)):
            parts.setdefault(key, []).append(batch[key])
    if not parts:
        raise ValueError(f"eval: training split {split!r} of {data_dir} gave no examples")
    category = _strings(np.concatenate(parts["category"]))
    return {g: {c: np.concatenate(parts[GT_FEATURES[g]])[category == c] for c in set(category)}
            for g in gt_types}


def default_fit_split(data_dir) -> str:
    """`val` when the data set has it (the baseline's align split, §10.2), else `train`."""
    return "val" if "val" in tfrecords.read_index(data_dir)["splits"] else "train"


def run_data_dir(config: dict) -> Path:
    """The data set a run was trained on: its --data_dir, or train.py's default for the built-in sample."""
    if config.get("data_dir"):
        return Path(config["data_dir"])
    return build.builtin_out_dir(config["H"], config["data_views"])


def categories_of(config: dict):
    """Categories the run was trained on (its `--categ`), or None for all."""
    categ = str(config.get("categ", "all")).strip()
    return None if categ == "all" else [c.strip() for c in categ.split(",") if c.strip()]


def run_evaluation(exp_dir, out_dir=None, split: str = "test", fit_split: str | None = None,
                   fit_on_eval: bool = False, gt_types=("uniform", "area"), batch_size: int = 32,
                   data_dir: str | None = None, step: int | None = None, max_models: int = 0,
                   label: str | None = None, protocol: Protocol | None = None, plot_models: int = 6,
                   progress: bool = True) -> dict:
    """Evaluates one run directory and writes metrics.json, per_model.csv, table.md and clouds.png.

    Args:
      exp_dir: run directory written by train.py.
      out_dir: output folder (default `<exp>/eval_<split>`).
      split: evaluation split.  fit_split: split the rotation is fitted on (default: `default_fit_split`).
      fit_on_eval: fit on the evaluation split itself, as the baseline did (§10.2).
      gt_types: GT types to score against.  batch_size: prediction batch size.
      data_dir: data set (default: the one the run was trained on).
      step: checkpoint step (default: the newest).  max_models: cap per split (0: all).
      label: name of the run in the table (default: the run directory's name).
      protocol: `Protocol` settings.  plot_models: models drawn in clouds.png (0: no picture).
      progress: progress bars.

    Returns:
      The metrics.json content.
    """
    exp_dir = Path(exp_dir)
    protocol = protocol or Protocol()
    recon_net, _, config = trainer.load_for_inference(exp_dir, step=step)
    step = checkpointing.checkpoint_step(checkpointing.checkpoint_path(exp_dir, step))
    data_dir = data_dir or run_data_dir(config)
    categories = categories_of(config)
    fit_split = split if fit_on_eval else (fit_split or default_fit_split(data_dir))
    out_dir = Path(out_dir) if out_dir else exp_dir / f"eval_{split}"
    out_dir.mkdir(parents=True, exist_ok=True)

    eval_preds = predict_split(recon_net, data_dir, split, batch_size, gt_types, categories, max_models, progress)
    fit_preds = eval_preds if fit_split == split else predict_split(
        recon_net, data_dir, fit_split, batch_size, gt_types, categories, max_models, progress)
    train_gts = training_gts(data_dir, config.get("split", "train"), gt_types, categories, batch_size)

    results, per_model_by_gt, rotated_by_gt = {}, {}, {}
    for gt_type in gt_types:
        logging.info("eval: fitting one global rotation per category on %s (%d images) against %s GT",
                     fit_split, len(fit_preds.xyz), gt_type)
        results[gt_type], per_model_by_gt[gt_type], rotated_by_gt[gt_type] = evaluate_gt_type(
            eval_preds, fit_preds, train_gts[gt_type], gt_type, protocol)
    label = exp_dir.name if label is None else label
    report = {"exp": str(exp_dir), "label": label, "step": step, "split": split, "fit_split": fit_split,
              "data_dir": str(data_dir), "n_models": len(eval_preds.xyz),
              "protocol": {**dataclasses.asdict(protocol), "metric_scale": metrics.METRIC_SCALE,
                           "note": "icp and emd, when present, are " + NOT_BASELINE},
              "results": results}
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_per_model_csv(out_dir / "per_model.csv", eval_preds, per_model_by_gt)
    (out_dir / "table.md").write_text(markdown_table(table_rows(results, label, step)))
    if plot_models:
        shown = min(plot_models, len(eval_preds.xyz))
        first = gt_types[0]
        clouds.cloud_grid(eval_preds.images[:shown], rotated_by_gt[first][:shown],
                          eval_preds.gt[first][:shown], out_dir / "clouds.png",
                          titles=list(eval_preds.model_id[:shown]), pred_colours=eval_preds.rgb[:shown])
    return report


def print_report(report: dict) -> None:
    """Prints the table with the sanity references beside the model's score."""
    print(f"{report['label']}: step {report['step']}, {report['n_models']} images of split '{report['split']}', "
          f"rotation fitted on '{report['fit_split']}'")
    print(markdown_table(table_rows(report["results"], report["label"], report["step"])))


def main(argv):
    del argv
    f = flags.FLAGS
    protocol = Protocol(align_iters=f.align_iters, align_lr=f.align_lr, align_batch=f.align_batch,
                        chamfer_backend=f.chamfer_backend, nn_method=f.nn_method,
                        denominator="n_minus_1" if f.n_minus_1 else "n", icp=f.icp, emd=f.emd, seed=f.seed)
    gt_types = ("uniform", "area") if f.gt_type == "both" else (f.gt_type,)
    report = run_evaluation(f.exp, f.out or None, f.split, f.fit_split or None, f.fit_on_eval, gt_types,
                            f.batch_size, f.data_dir or None, f.step, f.max_models, f.label, protocol,
                            f.plot_models)
    print_report(report)
    print(f"wrote {Path(f.out) if f.out else Path(f.exp) / f'eval_{f.split}'}/{{metrics.json,per_model.csv,"
          f"table.md,clouds.png}}")


def define_flags() -> None:
    """Eval's own flags (the run's training flags come from <exp>/flags.json, not from the command line)."""
    flags.DEFINE_string("exp", None, "Run directory written by train.py.")
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the newest).")
    flags.DEFINE_string("split", "test", "Split to evaluate.")
    flags.DEFINE_string("fit_split", "", "Split the global rotation is fitted on (default: val, else train).")
    flags.DEFINE_boolean("fit_on_eval", False, "Fit the rotation on the evaluation split itself, as the "
                         "baseline's scripts did (§10.2).")
    flags.DEFINE_enum("gt_type", "both", ["uniform", "area", "both"], "Ground truth to score against.")
    flags.DEFINE_integer("batch_size", 32, "Prediction batch size.")
    flags.DEFINE_string("data_dir", "", "Data set (default: the one the run was trained on).")
    flags.DEFINE_integer("max_models", 0, "Evaluate only the first this many examples of each split (0: all).")
    flags.DEFINE_integer("align_iters", alignment.ALIGN_ITERS, "Adam steps of the rotation fit (§10.2).")
    flags.DEFINE_float("align_lr", alignment.ALIGN_LR, "Adam learning rate of the rotation fit (§10.2).")
    flags.DEFINE_integer("align_batch", 1, "Models per step of the rotation fit (1 in the baseline).")
    flags.DEFINE_enum("chamfer_backend", "auto", ["auto", "op", "tf"], "Chamfer backend of the rotation fit.")
    flags.DEFINE_enum("nn_method", "kdtree", list(nearest.NUMPY_METHODS), "Nearest neighbours of the metrics.")
    flags.DEFINE_boolean("n_minus_1", False, "Divide the sum over models by n - 1 as the baseline did (§10.3).")
    flags.DEFINE_boolean("icp", False, f"Also report per-model ICP refinement ({NOT_BASELINE}).")
    flags.DEFINE_boolean("emd", False, f"Also report the exact EMD ({NOT_BASELINE}).")
    flags.DEFINE_integer("seed", 0, "Seed of the rotation fit's model order and the reference draw.")
    flags.DEFINE_string("out", "", "Output folder (default: <exp>/eval_<split>).")
    flags.DEFINE_string("label", None, "Run name in the table (default: the run directory's name).")
    flags.DEFINE_integer("plot_models", 6, "Models drawn in clouds.png (0: none).")
    flags.mark_flag_as_required("exp")


if __name__ == "__main__":
    define_flags()
    app.run(main)
