"""Tests of data.build: counts, resume, shards + pack, parallel workers, bad input, the CLI's exit code."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data import build, tfrecords
from evaluation.predictions import iterate_split

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(source="builtin", views=1, image_size=32, n_points=256, split="50/50", seed=0, max_models=1)


def _tfrecord_bytes(data_dir):
    """{file name: content} of a data set's shards, and its index with the shards named by file name (which
    pack folder holds them depends on how many packs the folder has seen)."""
    index = tfrecords.read_index(data_dir)
    files = {Path(shard).name: (Path(data_dir) / shard).read_bytes()
             for entry in index["splits"].values() for shard in entry["shards"]}
    assert files, "no shard"
    for entry in index["splits"].values():
        entry["shards"] = [Path(shard).name for shard in entry["shards"]]
    return files, index


def test_tiny_dataset_counts(tiny_dataset):
    index = tfrecords.read_index(tiny_dataset)
    assert index["splits"]["train"]["models"] == {"car": 2, "chair": 2}
    assert index["splits"]["test"]["examples"] == {"car": 2, "chair": 2}
    assert index["gt_types"] == ["gt_uniform", "gt_area"] and index["seed"] == 0
    assert json.loads((tiny_dataset / "skipped.json").read_text()) == []


def test_view_poses_depend_only_on_seed_model_and_view():
    pose = build.view_pose(0, "car", "m", 3)
    assert pose.dtype == np.float32 and pose.shape == (2,)
    np.testing.assert_array_equal(pose, build.view_pose(0, "car", "m", 3))
    for other in (build.view_pose(1, "car", "m", 3), build.view_pose(0, "chair", "m", 3),
                  build.view_pose(0, "car", "n", 3), build.view_pose(0, "car", "m", 4)):
        assert not np.array_equal(pose, other)


def test_resume_skips_cached_models_and_rebuilds_on_new_parameters(tmp_path, monkeypatch):
    first = build.build_dataset(out_dir=tmp_path, **SMALL)
    assert first["built"] == {"car": 1, "chair": 1} and first["packed"]
    cached = sorted((tmp_path / build.MODELS_DIR).rglob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    before = _tfrecord_bytes(tmp_path)

    def fail(task):
        raise AssertionError(f"{task.model_id} rebuilt although cached")

    monkeypatch.setattr(build, "mesh_record", fail)
    again = build.build_dataset(out_dir=tmp_path, **SMALL)
    assert again["built"] == first["built"] and again["examples"] == first["examples"]
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert _tfrecord_bytes(tmp_path) == before
    # other parameters invalidate the cache: the (patched) builder runs and reports every model
    lines = []
    changed = build.build_dataset(out_dir=tmp_path, **dict(SMALL, n_points=128), log=lines.append)
    assert changed["built"] == {} and changed["skipped"] == {"car": 1, "chair": 1}
    assert "rebuilt although cached" in changed["skipped_models"][0]["reason"]
    assert len(lines) == 2 and all("parameters changed: n_points 256 -> 128" in line for line in lines)
    assert [e["reason"] for e in changed["rebuilt"]] == ["parameters changed: n_points 256 -> 128"] * 2


def test_shards_then_pack_equal_a_single_build(tmp_path):
    params = dict(SMALL, max_models=2)
    build.build_dataset(out_dir=tmp_path / "single", **params)
    part = build.build_dataset(out_dir=tmp_path / "sharded", shard=0, num_shards=2, **params)
    assert not part["packed"] and part["missing"] == 2 and "not built yet" in part["line"]
    with pytest.raises(ValueError, match="2 models have no cache entry"):
        build.build_dataset(out_dir=tmp_path / "sharded", pack_only=True, **params)
    other = tmp_path / "other_machine"  # shard 1 elsewhere, its cache copied back before packing
    build.build_dataset(out_dir=other, shard=1, num_shards=2, **params)
    shutil.copytree(other / build.MODELS_DIR, tmp_path / "sharded" / build.MODELS_DIR, dirs_exist_ok=True)
    packed = build.build_dataset(out_dir=tmp_path / "sharded", pack_only=True, **params)
    assert packed["packed"] and packed["built"] == {"car": 2, "chair": 2}
    assert _tfrecord_bytes(tmp_path / "sharded") == _tfrecord_bytes(tmp_path / "single")


def test_two_workers_equal_one_process(tmp_path):
    serial = build.build_dataset(out_dir=tmp_path / "serial", **SMALL)
    parallel = build.build_dataset(out_dir=tmp_path / "parallel", workers=2, **SMALL)
    assert parallel["built"] == serial["built"] == {"car": 1, "chair": 1}
    assert _tfrecord_bytes(tmp_path / "parallel") == _tfrecord_bytes(tmp_path / "serial")


def test_rotate_y_deg_turns_every_mesh_about_its_up_axis(tmp_path):
    """A per-source turn about the canonical up axis (y) rotates both GT clouds by the same rotation,
    expressed in the render frame: CANONICAL_TO_RENDER @ R_y @ CANONICAL_TO_RENDER^T."""
    from data import meshes

    def clouds(rotate):
        task = build._plan("builtin", None, "chair", 1, 32, 256, "50/50", 0, 1, rotate, "diagonal")[0][0]
        return build.mesh_record(task)

    plain, turned = clouds(0.0), clouds(90.0)
    r_y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +90° about y
    m = np.asarray(meshes.CANONICAL_TO_RENDER, np.float64)
    rotation = m @ r_y @ m.T
    for gt in ("gt_uniform", "gt_area"):
        assert not np.allclose(turned[gt], plain[gt], atol=1e-3)
        np.testing.assert_allclose(turned[gt], plain[gt] @ rotation.T, atol=1e-5)


def test_views_and_70_10_20(tmp_path):
    summary = build.build_dataset(out_dir=tmp_path, **dict(SMALL, views=2, max_models=3, split="70/10/20"))
    index = tfrecords.read_index(tmp_path)
    assert {s: e["models"] for s, e in index["splits"].items()} == \
        {"train": {"car": 2, "chair": 2}, "val": {"car": 0, "chair": 0}, "test": {"car": 1, "chair": 1}}
    assert summary["examples"] == {"train": 8, "val": 0, "test": 4}  # 3 → 2.1/0.3/0.6 → 2/0/1
    ds = tfrecords.make_dataset(tmp_path, "test", 1, shuffle=False, repeat=False)
    assert sorted(int(b["view"][0]) for b in ds) == [0, 0, 1, 1]


@pytest.mark.parametrize("rule, full, empty", [("100/0", "train", "test"), ("0/100", "test", "train")])
def test_a_split_rule_with_an_empty_split_lists_it(tmp_path, rule, full, empty):
    """--split 100/0 and 0/100: index.json lists both splits, the empty one with zero examples and no shard,
    and reading it says so."""
    summary = build.build_dataset(out_dir=tmp_path, **dict(SMALL, split=rule))
    assert summary["examples"] == {full: 2, empty: 0}
    index = tfrecords.read_index(tmp_path)
    assert index["splits"][empty] == {"shards": [], "bytes": [], "examples": {"car": 0, "chair": 0},
                                      "models": {"car": 0, "chair": 0}}
    assert index["splits"][full]["examples"] == {"car": 1, "chair": 1}
    assert tfrecords.num_examples(index, empty) == 0
    message = f"split '{empty}' of {tmp_path} is empty \\(built with --split {rule}\\)"
    with pytest.raises(ValueError, match=message):
        tfrecords.make_dataset(tmp_path, empty, 1)
    with pytest.raises(ValueError, match=message):
        tfrecords.split_examples(tmp_path, empty, ["car"])
    with pytest.raises(ValueError, match=message):  # what an evaluation of it reads
        next(iterate_split(tmp_path, empty, 1, ["uniform"], progress=False))
    assert len(list(tfrecords.make_dataset(tmp_path, full, 1, repeat=False))) == 2


def test_a_pack_killed_midway_leaves_the_data_set_in_place(tmp_path, monkeypatch):
    """The new shards are written beside the old ones and index.json switches to them: a pack that dies while
    writing leaves the previous data set readable, and the next pack deletes the leftovers."""
    params = dict(SMALL, max_models=2)
    build.build_dataset(out_dir=tmp_path, **params)
    before = _tfrecord_bytes(tmp_path)
    written = tfrecords.write_shards

    def dies_after_one_split(examples, out_dir, split, num_shards):
        if split != "train":
            raise KeyboardInterrupt("killed while packing")
        return written(examples, out_dir, split, num_shards)

    monkeypatch.setattr(build.tfrecords, "write_shards", dies_after_one_split)
    with pytest.raises(KeyboardInterrupt):
        build.build_dataset(out_dir=tmp_path, pack_only=True, **params)
    assert _tfrecord_bytes(tmp_path) == before
    assert len(list(tfrecords.make_dataset(tmp_path, "test", 1, repeat=False))) == 2
    assert sorted(p.name for p in tmp_path.glob("pack-*")) == ["pack-1", "pack-2"]  # the killed pack's leftovers
    monkeypatch.setattr(build.tfrecords, "write_shards", written)
    build.build_dataset(out_dir=tmp_path, pack_only=True, **params)
    assert _tfrecord_bytes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.glob("pack-*")) == ["pack-2"]  # the leftovers went first


def _one_mesh_source(root, mesh_name, as_name="model.ply"):
    """A folder source ``root/car/<as_name>`` holding a copy of one of the sample's car meshes."""
    (root / "car").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "data" / "sample" / "car" / mesh_name, root / "car" / as_name)
    return root


def _gt(out, category="car", model_id="model"):
    with np.load(build.cache_path(out, category, model_id)) as record:
        return record["gt_area"]


def test_a_changed_mesh_is_built_again_and_said_so(tmp_path):
    """The cache is keyed by the mesh file's content: new content under the same name is built again, with
    the reason, and the data set holds the new mesh."""
    source, out = _one_mesh_source(tmp_path / "meshes", "sh3d_scopia_suv.ply"), tmp_path / "out"
    params = dict(source=source, out_dir=out, image_size=32, n_points=256)
    first = build.build_dataset(**params)
    assert first["built"] == {"car": 1} and first["rebuilt"] == []
    before = _gt(out)
    assert build.build_dataset(**params)["rebuilt"] == []  # unchanged: reused
    _one_mesh_source(source, "sh3d_scopia_van.ply")  # same file name, another mesh
    lines = []
    again = build.build_dataset(**params, log=lines.append)
    assert again["built"] == {"car": 1}
    assert lines == [f"rebuilding car/model: its input changed ({source / 'car' / 'model.ply'})"]
    assert not np.allclose(_gt(out), before)


def test_a_repaired_mesh_is_retried(tmp_path):
    source, out = tmp_path / "meshes", tmp_path / "out"
    (source / "car").mkdir(parents=True)
    (source / "car" / "model.ply").write_text("this is not a mesh\n")
    params = dict(source=source, out_dir=out, image_size=32, n_points=256)
    assert build.build_dataset(**params)["skipped"] == {"car": 1}
    _one_mesh_source(source, "sh3d_scopia_suv.ply")  # repaired in place
    repaired = build.build_dataset(**params)
    assert repaired["built"] == {"car": 1} and repaired["skipped"] == {}
    assert repaired["rebuilt"][0]["reason"].endswith("(it was skipped)")


def test_a_second_source_into_the_same_out_is_not_mixed(tmp_path):
    """Two sources with the same category and model id into one --out: the second one's model is built from
    its own mesh (not taken from the first one's cache), and the summary says which data set it replaced."""
    first = _one_mesh_source(tmp_path / "first", "sh3d_scopia_suv.ply")
    second = _one_mesh_source(tmp_path / "second", "sh3d_scopia_van.ply")
    out = tmp_path / "out"
    build.build_dataset(source=first, out_dir=out, image_size=32, n_points=256)
    from_first = _gt(out)
    summary = build.build_dataset(source=second, out_dir=out, image_size=32, n_points=256)
    assert len(summary["rebuilt"]) == 1 and summary["replaced_source"] == str(first)
    assert f"replaced the data set built from {first}" in summary["line"]
    assert tfrecords.read_index(out)["source"] == str(second)
    alone = build.build_dataset(source=second, out_dir=tmp_path / "alone", image_size=32, n_points=256)
    assert alone["replaced_source"] is None
    np.testing.assert_array_equal(_gt(out), _gt(tmp_path / "alone"))
    assert not np.allclose(_gt(out), from_first)


@pytest.mark.parametrize("category", ["../../escaped", "..", "a/b"])
def test_a_category_cannot_leave_the_output_folder(tmp_path, category):
    source = tmp_path / "meshes"
    source.mkdir()
    shutil.copy(REPO_ROOT / "data" / "sample" / "car" / "sh3d_scopia_suv.ply", source)
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(ValueError, match="--category .* is not a plain file name"):
        build.build_dataset(source=source, out_dir=out, category=category, image_size=32, n_points=256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meshes"]
    with pytest.raises(ValueError, match="model id '..' is not a plain file name"):
        build.cache_path(out, "car", "..")


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="--out .*file is a file, not a folder"):
        build.build_dataset(out_dir=tmp_path / "file", **SMALL)
    run = subprocess.run([sys.executable, "-m", "data.build", "--source", "builtin", "--out",
                          str(tmp_path / "file")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1].startswith("data.build: --out ")


def _bad_folder(root, with_good):
    (root / "car").mkdir(parents=True)
    (root / "car" / "garbage.ply").write_text("this is not a mesh\n")
    (root / "car" / "empty.obj").write_text("# no geometry\n")
    if with_good:
        shutil.copy(REPO_ROOT / "data" / "sample" / "car" / "sh3d_scopia_smart-car.ply", root / "car")


def test_bad_files_are_reported_and_the_build_goes_on(tmp_path):
    _bad_folder(tmp_path / "meshes", with_good=True)
    summary = build.build_dataset(source=tmp_path / "meshes", out_dir=tmp_path / "out", image_size=32,
                                  n_points=256)
    assert summary["built"] == {"car": 1} and summary["skipped"] == {"car": 2}
    reported = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert sorted(e["model_id"] for e in reported) == ["empty", "garbage"]
    assert all(e["reason"] and e["path"].endswith((".ply", ".obj")) for e in reported)
    assert summary["examples"] == {"train": 1, "test": 0}  # 50/50 of one model: the tie goes to train


@pytest.mark.parametrize("with_good, code", [(False, 1), (True, 0)])
def test_cli_exit_code_nonzero_only_when_nothing_built(tmp_path, with_good, code):
    _bad_folder(tmp_path / "meshes", with_good)
    run = subprocess.run([sys.executable, "-m", "data.build", "--source", str(tmp_path / "meshes"),
                          "--out", str(tmp_path / "out"), "--size", "32", "--n_points", "256"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == code, run.stderr[-2000:]
    assert "skipped car/garbage: garbage.ply: unreadable" in run.stdout
    assert run.stdout.strip().splitlines()[-1].startswith(f"built {int(with_good)} models")


def test_rotation_rules_turn_the_models_they_match():
    assert build.rotation_rules(-90) == [("*", -90.0)]
    assert build.rotation_rules("12.5") == [("*", 12.5)]
    rules = build.rotation_rules("car/torcs_*=-90, chair/*Chair=180,car/*=45")
    assert build.rotation_for(rules, "car", "torcs_buggy") == -90.0  # first match wins
    assert build.rotation_for(rules, "car", "sh3d_scopia_suv") == 45.0
    assert build.rotation_for(rules, "chair", "sh3d_deckChair") == 180.0
    assert build.rotation_for(rules, "chair", "sh3d_stool") == 0.0  # no rule: not turned
    for bad in ("car/torcs_*", "=90", "car/*=ninety"):
        with pytest.raises(ValueError, match="rotate_y_deg: .* is neither an angle"):
            build.rotation_rules(bad)


def test_rotation_rules_reach_the_built_models(tmp_path):
    ids = [t.model_id for t in build._plan("builtin", None, "car", 1, 32, 64, "50/50", 0, None, 0.0,
                                           "diagonal")[0]]
    rule = f"car/{ids[0]}=90"
    tasks = build._plan("builtin", None, "car", 1, 32, 64, "50/50", 0, None, rule, "diagonal")[0]
    assert [t.rotate_y_deg for t in tasks] == [90.0] + [0.0] * (len(ids) - 1)
