"""Tests of data.shapenet: the baseline's released layout (baseline §2.1, §2.6) into the project's data."""

import json

import numpy as np
import pytest
from PIL import Image

from data import shapenet, tfrecords
from data.build import build_dataset
from data.meshes import CANONICAL_TO_RENDER

CAR, CHAIR = "02958343", "03001627"
N_POINTS = 64
SOURCE_SIZE = 64


def _square(model_index, view):
    """Top-left corner and side of the square drawn for (model, view): different for each pair."""
    return 4 + 8 * model_index + 2 * view, 6 + 4 * view, 8


def _make_model(root, synset, model_id, model_index, n_views=3,
                clouds=("pointcloud_{n}.npy", "gt_pointcloud_{n}.npy"), drop=()):
    """Writes one model of the layout: RGBA renders with a coloured square, masks, view.txt, clouds."""
    render_dir = root / shapenet.RENDERED_DIR / synset / model_id
    cloud_dir = root / shapenet.CLOUDS_DIR / synset / model_id
    render_dir.mkdir(parents=True)
    cloud_dir.mkdir(parents=True)
    for v in range(n_views):
        top, left, side = _square(model_index, v)
        rgba = np.zeros((SOURCE_SIZE, SOURCE_SIZE, 4), np.uint8)
        rgba[top:top + side, left:left + side] = (200, 40 + 20 * v, 10 + 30 * model_index, 255)
        Image.fromarray(rgba, "RGBA").save(render_dir / f"render_{v}.png")
        Image.fromarray(rgba[..., 3]).save(render_dir / f"mask_{v}.png")
    (render_dir / "view.txt").write_text("".join(f"{10 * v + model_index} {5 * v - 10} 0 2\n"
                                                 for v in range(n_views)))
    rng = np.random.default_rng(model_index)
    for name in clouds:
        np.save(cloud_dir / name.format(n=N_POINTS), rng.normal(size=(N_POINTS, 3)) * [1, 2, 3] + 5)
    for relative in drop:
        (root / relative).unlink()


def test_load_layout_model_converts_like_the_baseline(tmp_path):
    _make_model(tmp_path, CAR, "m0", 0)
    render_dir = tmp_path / shapenet.RENDERED_DIR / CAR / "m0"
    rgba = np.zeros((128, 128, 4), np.uint8)  # DRC-size render: left half red, alpha 0 at the top rows
    rgba[:, :64] = (200, 0, 0, 255)
    rgba[:2, :64, 3] = 0
    Image.fromarray(rgba, "RGBA").save(render_dir / "render_1.png")
    mask = np.zeros((128, 128), np.uint8)
    mask[:64, :64] = 255
    mask[100, 100] = 255  # one 128-px pixel is a quarter of a 64-px pixel: binarised away
    Image.fromarray(mask).save(render_dir / "mask_1.png")
    np.save(tmp_path / shapenet.CLOUDS_DIR / CAR / "m0" / f"pcl_{N_POINTS}_fps_trimesh.npy",
            np.full((N_POINTS, 3), 7.0) + np.eye(3)[np.arange(N_POINTS) % 3])

    item = shapenet.discover_layout(tmp_path)[0]
    assert (item.model_id, item.category, item.synset) == ("m0", "car", CAR)
    record = shapenet.load_layout_model(item, [1, 2], image_size=64, n_points=N_POINTS)

    expected_rgb = np.zeros((64, 64, 3), np.uint8)
    expected_rgb[:, :32] = (200, 0, 0)  # alpha dropped without compositing (baseline §2.4)
    np.testing.assert_array_equal(record["images"][0], expected_rgb)
    expected_mask = np.zeros((64, 64), np.uint8)
    expected_mask[:32, :32] = 255
    np.testing.assert_array_equal(record["masks"][0], expected_mask)
    np.testing.assert_allclose(record["poses"], np.radians([[10, -5], [20, 0]]), rtol=1e-6)
    assert record["views"].tolist() == [1, 2]

    # pcl_<N>_fps_trimesh.npy (the code's name) wins over pointcloud_<N>.npy; each cloud is normalised
    # on its own bounding box (the study's area GT is in raw mesh coordinates, baseline §11.2).
    uniform = np.full((N_POINTS, 3), 7.0) + np.eye(3)[np.arange(N_POINTS) % 3]
    area = np.load(tmp_path / shapenet.CLOUDS_DIR / CAR / "m0" / f"gt_pointcloud_{N_POINTS}.npy")
    for name, cloud in (("gt_uniform", uniform), ("gt_area", area)):
        lo, hi = cloud.min(axis=0), cloud.max(axis=0)
        expected = ((cloud - (lo + hi) / 2) / np.linalg.norm(hi - lo)) @ CANONICAL_TO_RENDER.T  # diagonal 1
        np.testing.assert_allclose(record[name], expected, atol=1e-6)
        assert record[name].dtype == np.float32


@pytest.mark.parametrize("drop, clouds, message", [
    (["mask_1.png"], ("pointcloud_{n}.npy",), "mask_1.png: missing"),
    (["render_0.png"], ("pointcloud_{n}.npy",), "render_0.png: missing"),
    ([], ("gt_pointcloud_{n}.npy",), f"no baseline cloud \\(pcl_{N_POINTS}_fps_trimesh.npy or pointcloud_"),
])
def test_missing_files_raise_naming_them(tmp_path, drop, clouds, message):
    _make_model(tmp_path, CAR, "m0", 0, clouds=clouds,
                drop=[f"{shapenet.RENDERED_DIR}/{CAR}/m0/{name}" for name in drop])
    with pytest.raises(shapenet.LayoutError, match=message):
        shapenet.load_layout_model(shapenet.discover_layout(tmp_path)[0], [0, 1], 64, N_POINTS)


def test_view_txt_too_short(tmp_path):
    _make_model(tmp_path, CAR, "m0", 0, n_views=2)
    with pytest.raises(shapenet.LayoutError, match="view.txt: has 2 view lines, view 2 requested"):
        shapenet.load_layout_model(shapenet.discover_layout(tmp_path)[0], [2], 64, N_POINTS)


def _examples(data_dir, split, **kwargs):
    ds = tfrecords.make_dataset(data_dir, split, batch_size=1, shuffle=False, repeat=False, **kwargs)
    return [{k: v.numpy()[0] for k, v in b.items()} for b in ds]


def test_build_from_layout_skips_bad_models_and_keeps_pairs(tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"
    names = ["c0", "c1", "c2", "c3"]
    for i, name in enumerate(names):
        _make_model(root, CAR, name, i)
    _make_model(root, CAR, "no_mask", 4, drop=[f"{shapenet.RENDERED_DIR}/{CAR}/no_mask/mask_1.png"])
    _make_model(root, CHAIR, "no_cloud", 5, clouds=())
    summary = build_dataset(baseline_layout=root, out_dir=out, views=2, image_size=32, n_points=N_POINTS,
                            split="50/50", seed=0)
    assert summary["built"] == {"car": 4} and summary["skipped"] == {"car": 1, "chair": 1}
    skipped = {e["model_id"]: e["reason"] for e in json.loads((out / "skipped.json").read_text())}
    assert skipped == {"no_mask": "mask_1.png: missing",
                       "no_cloud": f"no_cloud: no baseline cloud (pcl_{N_POINTS}_fps_trimesh.npy or "
                                   f"pointcloud_{N_POINTS}.npy)"}
    index = tfrecords.read_index(out)
    assert index["gt_types"] == ["gt_uniform", "gt_area"] and index["source"].startswith("baseline_layout")
    examples = _examples(out, "train") + _examples(out, "test")
    assert sorted((ex["model_id"].decode(), ex["view"]) for ex in examples) == \
        [(name, v) for name in names for v in (0, 1)]
    for ex in examples:  # image, mask and pose are those of the example's own model and view
        i, v = names.index(ex["model_id"].decode()), ex["view"]
        top, left, side = (c // 2 for c in _square(i, v))
        expected = np.zeros((32, 32), np.float32)
        expected[top:top + side, left:left + side] = 1
        np.testing.assert_array_equal(ex["mask"], expected)
        np.testing.assert_array_equal(ex["image"].max(axis=-1) > 0, expected > 0)
        np.testing.assert_allclose(ex["pose"], np.radians([10 * v + i, 5 * v - 10]), rtol=1e-6)


def test_split_files_and_absent_gt_type(tmp_path):
    root, out, split_dir = tmp_path / "data", tmp_path / "out", tmp_path / "splits"
    _make_model(root, CAR, "a", 0)
    _make_model(root, CAR, "b", 1, clouds=("pointcloud_{n}.npy",))  # no area-based GT
    split_dir.mkdir()
    for split, entries in (("train", ["a_2"]), ("test", ["b_1", "zzz_0"])):
        array = np.empty((len(entries), 1), dtype=object)
        array[:, 0] = entries
        np.save(split_dir / f"images_list_{CAR}_{split}.npy", array, allow_pickle=True)
    summary = build_dataset(baseline_layout=root, out_dir=out, image_size=32, n_points=N_POINTS,
                            split=str(split_dir))
    assert summary["examples"] == {"train": 1, "test": 1}
    assert [e["model_id"] for e in summary["skipped_models"]] == ["zzz"]
    assert "not in the source" in summary["skipped_models"][0]["reason"]
    assert [(ex["model_id"], ex["view"]) for ex in _examples(out, "train")] == [(b"a", 2)]
    assert [(ex["model_id"], ex["view"]) for ex in _examples(out, "test")] == [(b"b", 1)]
    assert tfrecords.read_index(out)["gt_types"] == ["gt_uniform"]
    with pytest.raises(ValueError, match=r"\['gt_area'\] requested but the data set only holds"):
        tfrecords.make_dataset(out, "train", 1, gt_types=["gt_area"])
