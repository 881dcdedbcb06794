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
from evaluation.protocol import NOT_BASELINE, Protocol, evaluate_gt_type
from evaluation.report import table_rows
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
        view=np.zeros(m, int), xyz=gts, rgb=np.zeros_like(gts), images=np.zeros((m, 8, 8, 3)),
        gt={"uniform": gts.copy()})


def test_protocol_scores_zero_for_a_rotated_copy_of_the_gt():
    rng = np.random.default_rng(0)
    preds = _fake_predictions(rng)
    rotation = alignment.euler_rotation(np.radians(alignment.INIT_DEG)).numpy()
    preds.xyz = (preds.gt["uniform"] @ rotation).astype(np.float32)  # R · pred = gt at the initial angles
    train_gts = {c: preds.gt["uniform"][preds.category == c] for c in ("car", "chair")}
    protocol = Protocol(align_iters=2, align_lr=1e-9, chamfer_backend="tf", icp=True, emd=True)
    summary, per_model, _ = evaluate_gt_type(preds, preds, train_gts, "uniform", protocol)
    for category, entry in summary["categories"].items():
        assert entry["n_models"] == 3
        for name in ("chamfer", "fwd", "bwd", "emd"):
            assert entry["model"][name] == pytest.approx(0.0, abs=1e-6), (category, name)
            assert entry["icp"][name] == pytest.approx(0.0, abs=1e-6), (category, name)
        assert entry["sphere"]["chamfer"] > 10.0 and entry["mean_shape"]["chamfer"] > 0.0
    assert per_model["chamfer"].shape == (6,)
    rows = table_rows({"uniform": summary}, "run", 2500)
    assert rows[0][0] == "Car run" and rows[0][4] == "2.5k" and rows[0][5] == "baseline"
    assert any("ICP" in r[0] and NOT_BASELINE in r[0] for r in rows)


def test_icp_refines_a_residual_rotation_the_global_fit_left():
    """Per-model ICP (not the baseline's protocol) removes a small per-model rotation and scores ~0 in the
    normalised frame, while the baseline's score of the same predictions stays clearly above 0."""
    rng = np.random.default_rng(2)
    preds = _fake_predictions(rng)
    initial = alignment.euler_rotation(np.radians(alignment.INIT_DEG)).numpy()
    tilt = alignment.euler_rotation(np.radians([0.0, 0.0, 8.0])).numpy()  # 8° left after the global fit
    preds.xyz = (preds.gt["uniform"] @ tilt @ initial).astype(np.float32)
    train_gts = {c: preds.gt["uniform"][preds.category == c] for c in ("car", "chair")}
    protocol = Protocol(align_iters=2, align_lr=1e-9, chamfer_backend="tf", icp=True)
    summary, _, _ = evaluate_gt_type(preds, preds, train_gts, "uniform", protocol)
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
    assert "sphere (reference)" in stdout and "mean training shape (reference)" in stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["step"] == 2 and report["fit_split"] == "train" and report["n_models"] == 4
    with (out / "per_model.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * report["n_models"]  # one row per (model, GT type)
    for gt_type in ("uniform", "area"):
        for category, entry in report["results"][gt_type]["categories"].items():
            values = [float(r["chamfer_x1000"]) for r in rows if r["gt_type"] == gt_type and r["category"] == category]
            assert entry["model"]["chamfer"] == pytest.approx(np.mean(values), rel=1e-6)
            assert entry["model"]["chamfer"] == pytest.approx(entry["model"]["fwd"] + entry["model"]["bwd"])
            assert entry["model"]["emd"] >= max(entry["model"]["fwd"], entry["model"]["bwd"]) - 1e-6
    table = (out / "table.md").read_text()
    assert table.startswith("| model | Chamfer | Fwd | Bwd | iterations | GT type |")
    assert "| baseline |" in table and "| area-based |" in table
    image = np.asarray(Image.open(out / "clouds.png").convert("RGB"))
    panel = int(clouds.FIGURE_INCHES_PER_PANEL * clouds.DPI)
    assert image.shape[:2] == (3 * panel, (2 + len(clouds.DEFAULT_VIEWS)) * panel) and image.std() > 10


def test_eval_n_minus_1_and_fit_on_eval(trained_run):
    common = dict(gt_types=("uniform",), fit_on_eval=True, progress=False)
    plain = run_evaluation(trained_run, EvalSettings(out_dir=trained_run / "e1", **common),
                           Protocol(align_iters=5)).report
    off_by_one = run_evaluation(trained_run, EvalSettings(out_dir=trained_run / "e2", **common),
                                Protocol(align_iters=5, denominator="n_minus_1")).report
    assert plain["fit_split"] == "test"
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
    cloud = np.load(tmp_path / "pred.npy")
    assert cloud.shape == (1024, 6) and np.all(np.isfinite(cloud))
    assert (tmp_path / "pred.ply").read_text().startswith("ply\nformat ascii 1.0\nelement vertex 1024")
    assert np.asarray(Image.open(tmp_path / "pred.png")).std() > 10

    from predict import export_recon_net, predict_image, prepare_image
    from model.trainer import load_for_inference

    recon_net, _, run = load_for_inference(trained_run)
    image = prepare_image(Image.open(tmp_path / "photo.png"), run.train.image_size)
    assert image.shape == (64, 64, 3) and image[0, 0].sum() == 0.0 and image[32, 32, 0] > 0.7
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
