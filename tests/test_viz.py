"""Tests of viz/: every figure is a PNG of the expected pixel size with real content (not a blank canvas)."""

import csv

import numpy as np
import pytest
from PIL import Image

from viz import charts, clouds, loss_curves, renders, sampling_figure

PANEL_PX = int(clouds.FIGURE_INCHES_PER_PANEL * clouds.DPI)


def _open_png(path, width, height):
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert image.shape == (height, width, 3), f"{path.name}: {image.shape}"
    # Non-empty: many distinct colours and a real spread (a blank or single-colour canvas fails).
    assert image.std() > 10.0
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    return image


def test_to_display_stands_objects_upright():
    # Render frame: object up is -x (data.meshes); matplotlib's up is +z.
    np.testing.assert_allclose(clouds.to_display(np.array([[-1.0, 0.0, 0.0]])), [[0.0, 0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(np.linalg.det(clouds.RENDER_TO_DISPLAY), 1.0)


def test_cloud_grid(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 64, 64, 3))
    preds = rng.normal(size=(3, 256, 3)) * [0.1, 0.4, 0.2]
    gts = rng.normal(size=(3, 300, 3))
    out = clouds.cloud_grid(images, preds, gts, tmp_path / "clouds.png", titles=["a", "b", "c"],
                            pred_colours=rng.uniform(size=(3, 256, 3)))
    # The input, then each view twice: the prediction and the GT from the same viewpoint.
    _open_png(out, (1 + 2 * len(clouds.DEFAULT_VIEWS)) * PANEL_PX, 3 * PANEL_PX)
    with pytest.raises(ValueError, match="same number"):
        clouds.cloud_grid(images, preds[:2], gts, tmp_path / "bad.png")
    assert clouds.view_label((20.0, -60.0)) == "el 20°, az -60°"


def test_a_single_row_keeps_its_titles_inside_the_picture(tmp_path):
    """predict.py's picture (one row): the titles' dark pixels start below the top edge, not cut by it."""
    rng = np.random.default_rng(0)
    out = clouds.cloud_grid(rng.uniform(size=(1, 64, 64, 3)), rng.normal(size=(1, 256, 3)), None,
                            tmp_path / "one.png", titles=["input"])
    image = _open_png(out, (1 + len(clouds.DEFAULT_VIEWS)) * PANEL_PX, PANEL_PX)
    dark_rows = np.flatnonzero((image[:, PANEL_PX:].min(axis=2) < 100).any(axis=1))  # titles and points
    assert dark_rows[0] > 2


def test_distinct_models_takes_different_models_of_every_category():
    ids = np.array(["c1", "c1", "c2", "h1", "h1", "h2", "h3", "c3"])
    categories = np.array(["car", "car", "car", "chair", "chair", "chair", "chair", "car"])
    np.testing.assert_array_equal(clouds.distinct_models(ids, categories, 2), [0, 2, 3, 5])
    np.testing.assert_array_equal(clouds.distinct_models(ids, categories, 5), [0, 2, 7, 3, 5, 6])


def _entry(model, learned):
    values = {"chamfer": model, "fwd": model / 2, "bwd": model / 2}
    return {"model": values, "shuffled": {k: v * (3.0 if learned else 1.0) for k, v in values.items()},
            "mean_shape": {"chamfer": 20.0, "fwd": 12.0, "bwd": 8.0}, "sphere": {"chamfer": 100.0, "fwd": 50.0,
                                                                                 "bwd": 50.0},
            "spread": {"ratio": 0.8 if learned else 0.0, "predictions": 1.0, "gt": 1.0, "pairs": 3},
            "vs_shuffled": {"mean_difference": 1.0, "standard_error": 0.1, "n_models": 3, "beats": learned}}


def _report(label, learned):
    categories = {"car": _entry(5.0, learned), "chair": _entry(15.0, learned)}
    return {"label": label, "step": 100, "split": "test", "data_dir": "data/x",
            "results": {"uniform": {"categories": categories}, "area": {"categories": categories}}}


def test_evaluation_and_grid_charts(tmp_path):
    out = charts.evaluation_chart(_report("run", True), tmp_path / "chart.png")
    image = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)
    assert image.std() > 10.0 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    grid = charts.grid_chart({"a": _report("KRO", True), "b": _report("baseline", False)}, tmp_path / "grid.png")
    assert np.asarray(Image.open(grid).convert("RGB"), dtype=np.float64).std() > 10.0
    with pytest.raises(ValueError, match="no evaluated run"):
        charts.grid_chart({}, tmp_path / "none.png")


def test_sampling_figure(sample_dir, tmp_path):
    paths = {c: sample_dir / c / name for c, name in sampling_figure.DEFAULT_MODELS.items()}
    out = sampling_figure.sampling_figure(paths, tmp_path / "table1.png", n_points=512)
    _open_png(out, 3 * PANEL_PX, 2 * PANEL_PX)


def _write_losses_csv(run, rows, with_kro):
    run.mkdir()
    names = ["loss_total", "loss_ae", "loss_mask"] + (["loss_kro"] if with_kro else [])
    with (run / "losses.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *names, "steps_per_sec"])
        for i in range(rows):
            writer.writerow([100 * (i + 1), *[10.0 / (i + 1) + j for j in range(len(names))], 3.0])


def test_loss_curves_overlay_runs(tmp_path):
    _write_losses_csv(tmp_path / "base", 12, with_kro=False)
    _write_losses_csv(tmp_path / "kro", 12, with_kro=True)
    names = loss_curves.loss_names({"a": loss_curves.read_losses(tmp_path / "kro")})
    assert names[0] == "loss_total" and names[-1] == "loss_kro" and "steps_per_sec" not in names
    out = loss_curves.plot_loss_curves([tmp_path / "base", tmp_path / "kro"], tmp_path / "losses.png")
    # 4 loss panels -> 3 columns × 2 rows of 1.5 × 1 panel units.
    _open_png(out, int(3 * 1.5 * PANEL_PX), 2 * PANEL_PX)
    with pytest.raises(FileNotFoundError, match="losses.csv"):
        loss_curves.read_losses(tmp_path / "missing")


def test_loss_curves_label_their_y_axes(tmp_path, monkeypatch):
    _write_losses_csv(tmp_path / "run", 12, with_kro=True)
    drawn = []
    monkeypatch.setattr(clouds, "save_figure", lambda fig, path: drawn.append(fig) or path)
    loss_curves.plot_loss_curves([tmp_path / "run"], tmp_path / "losses.png")
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    # 10/(i+1) + j spans more than a decade only for j = 0 (loss_total): drawn on a log scale.
    assert labels == ["loss_total (log scale)", "loss_ae", "loss_mask", "loss_kro"]


def test_render_grid(tmp_path):
    folder = tmp_path / "run" / renders.RENDERS_DIR
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = ["input", "mask", "pred_0_pose_10_20", "pred_0_pose_10_20_mask"]
    for step in (0, 500, 1000, 1500, 2000):
        for name in names:
            shape = (64, 64) if "mask" in name else (64, 64, 3)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(folder / f"{step}_{name}.png")
    assert list(renders.logged_renders(tmp_path / "run")) == [0, 500, 1000, 1500, 2000]
    out = renders.render_grid(tmp_path / "run", tmp_path / "renders.png", max_rows=3)
    _open_png(out, len(names) * PANEL_PX, 3 * PANEL_PX)
    with pytest.raises(FileNotFoundError, match="renders"):
        renders.render_grid(tmp_path / "nothing", tmp_path / "x.png")
