"""End to end: a few-step training run on the tiny data set, then eval.py, predict.py and the export reload.

Also a protocol test that needs no training: predictions that are the GT seen through a known rotation score
zero once aligned, and the sanity references score clearly above zero.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from evaluation import alignment, references
from evaluation.predictions import Predictions
from evaluation.protocol import NOT_BASELINE, Protocol, evaluate_gt_type, fit_rotations
from evaluation.report import markdown_table, table_rows
from evaluation.run import EvalSettings, run_evaluation
from viz import clouds

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args, cwd=REPO_ROOT, env=None):
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    exp = tmp_path_factory.mktemp("run") / "tiny"
    _run(["train.py", f"--exp={exp}", f"--data_dir={tiny_dataset}", "--categ=all", "--N_ITERS=2",
          "--batch_size=2", "--print_n=1", "--save_n=1", "--save_model_n=2", "--N_PROJ=2"])
    return exp


def _fake_predictions(rng, m=6, n=128):
    # Inside [-0.5, 0.5]^3 like a real prediction, so the ±0.5 clip of §10.3 changes nothing.
    gts = np.clip(rng.normal(size=(m, n, 3)) * [0.1, 0.05, 0.03], -0.3, 0.3).astype(np.float32)
    gts[:, : n // 8] += [0.15, 0.1, 0.0]
    return Predictions(
        model_id=np.array([f"m{i}" for i in range(m)]), category=np.array(["car"] * 3 + ["chair"] * 3),
        view=np.zeros(m, int), xyz=gts, rgb=np.zeros_like(gts), pose=np.zeros((m, 2), np.float32),
        gt_pose=np.zeros((m, 2), np.float32), images=np.zeros((m, 8, 8, 3)), gt={"uniform": gts.copy()})


def _protocol_outputs(preds, protocol):
    """Rotations fitted on the predictions themselves, mean shapes = each category's medoid, then the scores."""
    mean_shapes = {c: references.mean_training_shape(preds.gt["uniform"][preds.category == c])
                   for c in ("car", "chair")}
    rotations = fit_rotations(preds, "uniform", protocol, ["car", "chair"])
    return evaluate_gt_type(preds, rotations, mean_shapes, "uniform", protocol)


def test_protocol_scores_zero_for_a_rotated_copy_of_the_gt():
    rng = np.random.default_rng(0)
    preds = _fake_predictions(rng)
    rotation = alignment.euler_rotation(np.radians(alignment.INIT_DEG)).numpy()
    preds.xyz = (preds.gt["uniform"] @ rotation).astype(np.float32)  # R · pred = gt at the initial angles
    protocol = Protocol(align_iters=2, align_lr=1e-9, chamfer_backend="tf", icp=True, emd=True)
    summary, per_model, _ = _protocol_outputs(preds, protocol)
    for category, entry in summary["categories"].items():
        assert entry["n_models"] == 3
        for name in ("chamfer", "fwd", "bwd", "emd"):
            assert entry["model"][name] == pytest.approx(0.0, abs=1e-6), (category, name)
            assert entry["icp"][name] == pytest.approx(0.0, abs=1e-6), (category, name)
        assert entry["sphere"]["chamfer"] > 10.0 and entry["mean_shape"]["chamfer"] > 0.0
        assert entry["shuffled"]["chamfer"] > 1.0 and "emd" not in entry["shuffled"]
    assert per_model["chamfer"].shape == (6,)
    rows = table_rows({"uniform": summary}, "run", 2500)
    assert rows[0][0] == "Car run" and rows[0][2] == "2.5k" and rows[0][3] == "baseline"
    assert any("ICP" in r[0] and NOT_BASELINE in r[0] for r in rows)
    assert any(r[0] == "Car run: shuffled (reference)" for r in rows)
    table = markdown_table(rows)
    assert table.startswith("| model | Chamfer | Fwd | Bwd | EMD (not the baseline's protocol) | iterations |")
    assert "| Car run: shuffled (reference) | " in table and " | — | 2.5k | baseline |" in table


def test_icp_refines_a_residual_rotation_the_global_fit_left():
    """Per-model ICP (not the baseline's protocol) removes a small per-model rotation and scores ~0 in the
    normalised frame, while the baseline's score of the same predictions stays clearly above 0."""
    rng = np.random.default_rng(2)
    preds = _fake_predictions(rng)
    initial = alignment.euler_rotation(np.radians(alignment.INIT_DEG)).numpy()
    tilt = alignment.euler_rotation(np.radians([0.0, 0.0, 8.0])).numpy()  # 8° left after the global fit
    preds.xyz = (preds.gt["uniform"] @ tilt @ initial).astype(np.float32)
    protocol = Protocol(align_iters=2, align_lr=1e-9, chamfer_backend="tf", icp=True)
    summary, _, _ = _protocol_outputs(preds, protocol)
    for entry in summary["categories"].values():
        assert entry["model"]["chamfer"] > 0.5
        assert entry["icp"]["chamfer"] < 0.05 * entry["model"]["chamfer"]


def test_mean_training_shape_is_the_chamfer_medoid():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(64, 3))
    clouds = np.stack([base + rng.normal(scale=s, size=(64, 3)) for s in (0.3, 0.01, 0.3, 0.2)])
    np.testing.assert_array_equal(references.mean_training_shape(clouds), clouds[1])
    sphere = references.fibonacci_sphere(500, 2.0)
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), 2.0)
    assert references.mean_radius(sphere[None]) == pytest.approx(2.0, rel=1e-3)


def test_eval_cli_writes_consistent_outputs(trained_run, tiny_dataset):
    out = trained_run / "eval_cli"
    stdout = _run(["eval.py", f"--exp={trained_run}", f"--out={out}", "--gt_type=both", "--align_iters=20",
                   "--batch_size=3", "--emd", "--plot_models=3"])
    for text in ("sphere (reference)", "mean training shape (reference)", "shuffled (reference)", "spread ratio",
                 "EMD (not the baseline's protocol)", "rotation fitted on split 'train'", "pose net: not scored",
                 "Pose accuracy"):
        assert text in stdout, text
    assert "learned something" in stdout or "NOT learned" in stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["step"] == 2 and report["reference"]["fit_split"] == "train" and report["n_models"] == 4
    assert report["reference"]["data_dir"] == report["data_dir"] == str(tiny_dataset)
    with (out / "per_model.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * report["n_models"]  # one row per (model, GT type)
    assert {"shuffled_chamfer_x1000", "emd_x1000", "pose_geodesic_deg"} <= set(rows[0])
    for gt_type in ("uniform", "area"):
        for category, entry in report["results"][gt_type]["categories"].items():
            chosen = [r for r in rows if r["gt_type"] == gt_type and r["category"] == category]
            assert entry["model"]["chamfer"] == pytest.approx(np.mean([float(r["chamfer_x1000"]) for r in chosen]),
                                                              rel=1e-6)
            assert entry["shuffled"]["chamfer"] == pytest.approx(
                np.mean([float(r["shuffled_chamfer_x1000"]) for r in chosen]), rel=1e-6)
            assert entry["model"]["chamfer"] == pytest.approx(entry["model"]["fwd"] + entry["model"]["bwd"])
            assert entry["model"]["emd"] >= max(entry["model"]["fwd"], entry["model"]["bwd"]) - 1e-6
            assert 0.0 <= entry["spread"]["ratio"] and entry["pose"] == {"not_scored": report["pose_net"]}
    table = (out / "table.md").read_text()
    assert table.startswith("| model | Chamfer | Fwd | Bwd | EMD (not the baseline's protocol) | iterations | GT type |")
    assert "| baseline |" in table and "| area-based |" in table and "### Does the output depend on the input?" in table
    image = np.asarray(Image.open(out / "clouds.png").convert("RGB"))
    panel = int(clouds.FIGURE_INCHES_PER_PANEL * clouds.DPI)
    # 2 test models of each category (one view each), 3 views of prediction and GT beside the input.
    assert image.shape[:2] == (4 * panel, (1 + 2 * len(clouds.DEFAULT_VIEWS)) * panel) and image.std() > 10
    assert np.asarray(Image.open(out / "chart.png").convert("RGB")).std() > 10


def test_eval_folder_is_named_after_what_it_evaluated_and_rescoring_uses_the_cache(trained_run, tiny_dataset,
                                                                                   monkeypatch):
    settings = EvalSettings(gt_types=("uniform", "area"), progress=False)
    first = run_evaluation(trained_run, settings, Protocol(align_iters=5))
    assert first.out_dir == trained_run / "eval" / f"{tiny_dataset.name}_test_step2"
    assert first.report["cache"]["used"] == []

    def no_prediction(*args, **kwargs):
        raise AssertionError("re-scoring predicted again instead of using the cache")

    monkeypatch.setattr("evaluation.run.predict_split", no_prediction)
    again = run_evaluation(trained_run, settings, Protocol(align_iters=5, icp=True, denominator="n_minus_1"))
    kinds = sorted(name.split("_")[0] for name in again.report["cache"]["used"])
    assert kinds == ["mean", "mean", "predictions", "rotations", "rotations"]
    for gt_type in ("uniform", "area"):
        for category, entry in first.report["results"][gt_type]["categories"].items():
            rescored = again.report["results"][gt_type]["categories"][category]
            n = entry["n_models"]
            assert rescored["model"]["chamfer"] == pytest.approx(entry["model"]["chamfer"] * n / (n - 1))
            assert rescored["rotation_deg"] == entry["rotation_deg"] and "icp" in rescored
    np.testing.assert_array_equal(again.predictions.images, first.predictions.images)
    np.testing.assert_array_equal(again.predictions.xyz, first.predictions.xyz)
    # Another alignment setting fits again (and says so by not listing a cached rotation).
    with pytest.raises(AssertionError, match="re-scoring predicted again"):
        run_evaluation(trained_run, settings, Protocol(align_iters=6))


def test_eval_anywhere_scores_a_test_only_data_set_against_the_runs_own_references(trained_run, tiny_dataset,
                                                                                   tmp_path):
    from data.build import build_dataset

    test_only = tmp_path / "test_only"
    build_dataset(source="builtin", out_dir=test_only, views=2, image_size=64, n_points=1024, split="0/100",
                  seed=3, workers=0, max_models=2)
    stdout = _run(["eval.py", f"--exp={trained_run}", f"--data_dir={test_only}", "--split=test", "--gt_type=area",
                   "--align_iters=5", "--plot_models=0"])
    out = trained_run / "eval" / "test_only_test_step2"
    report = json.loads((out / "metrics.json").read_text())
    assert report["data_dir"] == str(test_only) and report["n_models"] == 8  # 2 cars + 2 chairs, 2 views each
    assert report["reference"] == {**report["reference"], "data_dir": str(tiny_dataset), "split": "train",
                                   "fit_data_dir": str(tiny_dataset), "fit_split": "train"}
    assert f"mean training shape from split 'train' of {tiny_dataset}" in stdout
    # Named reference data: the rotation and the mean shape from the test-only set's own split.
    named = run_evaluation(trained_run, EvalSettings(data_dir=test_only, reference_data_dir=test_only,
                                                     reference_split="test", gt_types=("area",), progress=False,
                                                     out_dir=tmp_path / "named"), Protocol(align_iters=5))
    assert named.report["reference"]["fit_split"] == named.report["reference"]["split"] == "test"
    assert named.report["reference"]["data_dir"] == str(test_only)


def test_eval_with_refinement_writes_its_own_folder(trained_run):
    evaluation = run_evaluation(trained_run, EvalSettings(gt_types=("uniform",), refine_steps=2, max_models=2,
                                                          progress=False), Protocol(align_iters=5))
    assert evaluation.out_dir.name.endswith("_test_step2_refine2_first2")
    refinement = evaluation.report["refinement"]
    assert refinement["steps"] == 2 and set(refinement["mean_before"]) == set(refinement["mean_after"])
    assert evaluation.report["n_models"] == 2


def test_eval_n_minus_1_and_fit_on_eval(trained_run):
    common = dict(gt_types=("uniform",), fit_on_eval=True, progress=False)
    plain = run_evaluation(trained_run, EvalSettings(out_dir=trained_run / "e1", **common),
                           Protocol(align_iters=5)).report
    off_by_one = run_evaluation(trained_run, EvalSettings(out_dir=trained_run / "e2", **common),
                                Protocol(align_iters=5, denominator="n_minus_1")).report
    assert plain["reference"]["fit_split"] == "test"
    for category, entry in plain["results"]["uniform"]["categories"].items():
        n = entry["n_models"]
        assert off_by_one["results"]["uniform"]["categories"][category]["model"]["chamfer"] == pytest.approx(
            entry["model"]["chamfer"] * n / (n - 1))


def test_predict_and_export_reload_without_project_code(trained_run, tmp_path):
    rgba = np.zeros((90, 130, 4), np.uint8)
    rgba[20:70, 30:110] = [200, 40, 40, 255]  # a red box on a transparent background
    Image.fromarray(rgba).save(tmp_path / "photo.png")
    saved = tmp_path / "saved_model"
    _run(["predict.py", f"--exp={trained_run}", f"--image={tmp_path / 'photo.png'}", f"--out={tmp_path / 'pred'}",
          f"--export={saved}"])
    checkpoint_files = {p: p.read_bytes() for p in (trained_run / "checkpoints").iterdir()}
    stdout = _run(["predict.py", f"--exp={trained_run}", f"--image={tmp_path / 'photo.png'}",
                   f"--out={tmp_path / 'refined'}", "--refine_steps=3"])
    assert "refined 3 steps: recon_loss" in stdout
    assert {p: p.read_bytes() for p in (trained_run / "checkpoints").iterdir()} == checkpoint_files
    assert np.load(tmp_path / "refined.npy").shape == (1024, 6)
    _run(["predict.py", f"--exp={trained_run}", f"--image={tmp_path / 'photo.png'}", f"--out={tmp_path / 'zero'}",
          "--refine_steps=0"])
    np.testing.assert_array_equal(np.load(tmp_path / "zero.npy"), np.load(tmp_path / "pred.npy"))  # N = 0: none
    cloud = np.load(tmp_path / "pred.npy")
    assert cloud.shape == (1024, 6) and np.all(np.isfinite(cloud))
    assert (tmp_path / "pred.ply").read_text().startswith("ply\nformat ascii 1.0\nelement vertex 1024")
    assert np.asarray(Image.open(tmp_path / "pred.png")).std() > 10

    from predict import export_recon_net, predict_image, prepare_input
    from model.trainer import load_for_inference

    recon_net, _, run = load_for_inference(trained_run)
    image, mask = prepare_input(Image.open(tmp_path / "photo.png"), run.train.image_size)
    assert image.shape == (64, 64, 3) and image[0, 0].sum() == 0.0 and image[32, 32, 0] > 0.7
    # The 80 × 50 box plus a 4-px margin (88 × 58) centred in an 88-px square: the box's rows 19..69 of 88
    # become 13.8..50.2 of 64, i.e. 36 rows after thresholding the resized mask at one half.
    assert mask.shape == (64, 64) and mask[32, 32] == 1.0 and mask[0, 0] == 0.0 and mask[:, 32].sum() == 36
    np.testing.assert_allclose(predict_image(recon_net, image)[0], cloud[:, :3], atol=1e-5)
    np.save(tmp_path / "image.npy", image[None])
    # A clean interpreter in another folder, with nothing of this repository importable.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([str(REPO_ROOT / "tests" / "scripts" / "reload_saved_model.py"), "saved_model", "image.npy", "reloaded.npy"],
         cwd=tmp_path, env=env)
    np.testing.assert_allclose(np.load(tmp_path / "reloaded.npy")[0], cloud[:, :3], atol=1e-5)

    # The .keras file holds only stock Keras layers: keras.saving.load_model needs no custom objects.
    reloaded = keras.saving.load_model(export_recon_net(recon_net, tmp_path / "recon_net.keras"))
    np.testing.assert_allclose(np.asarray(reloaded(image[None])["xyz"])[0], cloud[:, :3], atol=1e-5)
