"""Tests of data.procedural: ids, determinism, parameter ranges, closed single surfaces with no hidden
faces, colours, orientation against the real meshes, and builds through data.build into TFRecords."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from data import build, meshes, procedural, render, sampling, tfrecords
from data.procedural import cars, chairs, solid

REPO_ROOT = Path(__file__).resolve().parents[1]


def _mesh_bytes(mesh: trimesh.Trimesh) -> bytes:
    return b"".join(a.tobytes() for a in (mesh.vertices, mesh.faces, mesh.visual.face_colors))


def _ids(category, n):
    """The first n ids of a category."""
    return [procedural.model_id(category, i) for i in range(n)]


def _sample(category, per_kind=2):
    """The first `per_kind` ids of every car style or chair kind, for the per-mesh checks."""
    kinds = cars.STYLES if category == "car" else chairs.KINDS
    chosen, index = {k: [] for k in kinds}, 0
    while any(len(ids) < per_kind for ids in chosen.values()):
        model_id = procedural.model_id(category, index)
        p = procedural.params(model_id)
        kind = p.style if category == "car" else p.kind
        if len(chosen[kind]) < per_kind:
            chosen[kind].append(model_id)
        index += 1
    return [model_id for ids in chosen.values() for model_id in ids]


def _winding_numbers(mesh: trimesh.Trimesh, points: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Generalised winding number of each point [Q, 3] w.r.t. the triangles of `mesh` (any triangle soup):
    the sum of their signed solid angles / 4 pi (Van Oosterom & Strackee). 1 inside one closed outward
    shell, 0 outside it, and n inside n overlapping shells: an independent inside test."""
    tri = mesh.triangles  # [F, 3, 3]
    out = []
    for start in range(0, len(points), chunk):
        rel = tri[None] - points[start:start + chunk, None, None]  # [q, F, 3, 3]
        a, b, c = rel[:, :, 0], rel[:, :, 1], rel[:, :, 2]
        la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))
        num = np.einsum("qfd,qfd->qf", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("qfd,qfd->qf", a, b) * lc + np.einsum("qfd,qfd->qf", a, c) * lb
               + np.einsum("qfd,qfd->qf", b, c) * la)
        out.append(np.sum(2.0 * np.arctan2(num, den), axis=1) / (4.0 * np.pi))
    return np.concatenate(out)


_DIRECTIONS = np.array([d for d in np.ndindex(3, 3, 3) if d.count(1) in (0, 2)], np.float64) - 1.0
_DIRECTIONS /= np.linalg.norm(_DIRECTIONS, axis=1, keepdims=True)  # 6 axes and 8 diagonals: every direction
# lies within 36 degrees of one of them, so a surface point always has an outward probe


def _strictly_inside(mesh: trimesh.Trimesh, points: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """[Q] bool: every probe at distance eps around the point (14 directions) is inside the solid.
    A point on the visible surface has outside space next to it; a point on a face hidden inside the
    solid (parts concatenated instead of united) has none."""
    probes = (points[:, None, :] + eps * _DIRECTIONS[None]).reshape(-1, 3)
    return np.all(_winding_numbers(mesh, probes).reshape(len(points), -1) > 0.5, axis=1)


# --- ids and discovery ------------------------------------------------------------------------------


def test_ids_encode_category_version_and_index():
    assert procedural.model_id("car", 123) == f"proc-car-v{procedural.GENERATOR_VERSION}-000123"
    items = procedural.discover(3)
    assert [(i.category, i.model_id[-6:]) for i in items] == [
        ("car", "000000"), ("car", "000001"), ("car", "000002"),
        ("chair", "000000"), ("chair", "000001"), ("chair", "000002")]
    assert [i.category for i in procedural.discover(4, "chair")] == ["chair"] * 4
    assert items[0].path == f"procedural:{items[0].model_id}"


@pytest.mark.parametrize("call, message", [
    (lambda: procedural.discover(-3), r"--procedural_models must be in 1\.\.1000000.*got -3"),
    (lambda: procedural.discover(0), r"got 0"),
    (lambda: procedural.discover(5, "plane"),
     r"unknown category 'plane' for the procedural source: it makes car, chair"),
    (lambda: procedural.model_id("car", 10 ** 6), r"index must be in 0\.\.999999"),
    (lambda: procedural.generate("car-000001"), r"not a procedural model id"),
    (lambda: procedural.generate("proc-car-v999-000001"), r"generator v999; this is v1"),
    (lambda: build.build_dataset(source="procedural", out_dir="unused", procedural_models=-1),
     r"--procedural_models must be in"),
])
def test_bad_arguments_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- determinism and variety -------------------------------------------------------------------------


def test_same_id_same_mesh_bytes_in_another_process():
    ids = _ids("car", 3) + _ids("chair", 3)
    here = hashlib.sha256(b"".join(_mesh_bytes(procedural.generate(i)) for i in ids)).hexdigest()
    again = hashlib.sha256(b"".join(_mesh_bytes(procedural.generate(i)) for i in ids)).hexdigest()
    code = ("import hashlib; from data import procedural; ids = %r; "
            "print(hashlib.sha256(b''.join(b''.join(a.tobytes() for a in (m.vertices, m.faces, "
            "m.visual.face_colors)) for m in map(procedural.generate, ids))).hexdigest())" % ids)
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=300)
    assert other.returncode == 0, other.stderr[-2000:]
    assert here == again == other.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("category", procedural.CATEGORIES)
def test_different_ids_give_different_meshes(category):
    digests = {hashlib.sha256(_mesh_bytes(procedural.generate(i))).hexdigest() for i in _ids(category, 40)}
    assert len(digests) == 40
    params = [procedural.params(i) for i in _ids(category, 40)]
    assert len(set(params)) == 40


# --- parameters --------------------------------------------------------------------------------------


def _in_range(value, bounds):
    return bounds[0] <= value <= bounds[1]


def test_car_parameters_lie_in_their_style_ranges():
    params = [procedural.params(i) for i in _ids("car", 300)]
    assert {p.style for p in params} == set(cars.STYLES)
    for p in params:
        for name, bounds in {**cars.RANGES[p.style], **cars.COMMON_RANGES}.items():
            assert _in_range(getattr(p, name), bounds), (p.style, name, getattr(p, name))
        assert not p.spoiler or p.style in cars.SPOILER_STYLES
        assert not p.roof_rails or p.style in cars.ROOF_RAIL_STYLES
        assert all(0.0 <= c <= 1.0 for c in p.body_colour + p.rim_colour + p.glass_colour)
    for option in cars.OPTION_PROBABILITY:
        assert any(getattr(p, option) for p in params), option


def test_chair_parameters_lie_in_their_kind_ranges():
    params = [procedural.params(i) for i in _ids("chair", 300)]
    assert {p.kind for p in params} == set(chairs.KINDS)
    for p in params:
        for name, bounds in chairs.RANGES[p.kind].items():
            assert _in_range(getattr(p, name), bounds), (p.kind, name, getattr(p, name))
        for name, options in chairs.CHOICES[p.kind].items():
            assert getattr(p, name) in options, (p.kind, name)
        assert 3 <= p.slats <= 6
        assert p.cushion or p.kind not in ("office", "lounge")
    seen = {(name, getattr(p, name)) for p in params for name in ("back", "legs", "arms")}
    every = {(name, o) for kind in chairs.CHOICES.values() for name, options in kind.items() for o in options}
    assert seen == every  # every back, support and arm option occurs


@pytest.mark.parametrize("model_id", _sample("car"))
def test_a_car_stands_on_its_tyres_with_its_drawn_size(model_id):
    p, mesh = procedural.params(model_id), procedural.generate(model_id)
    lo, hi = mesh.bounds
    assert lo[1] == pytest.approx(0.0, abs=1e-9)
    assert p.length - 1e-6 <= hi[2] - lo[2] <= p.length + 0.1  # bumpers and lights stand out by a few cm
    assert p.width - 1e-6 <= hi[0] - lo[0] <= p.width + 0.3    # mirrors
    assert p.height - 0.01 <= hi[1] <= p.height + 0.06  # roof rails
    np.testing.assert_allclose(lo[[0, 2]], -hi[[0, 2]], atol=1e-9)  # centred on x = 0 and z = 0
    on_ground = mesh.triangles[:, :, 1].min(axis=1) < 0.01
    tyre = np.round(np.asarray(cars.TYRE) * 255).astype(np.uint8)
    assert np.all(mesh.visual.face_colors[on_ground, :3] == tyre)


@pytest.mark.parametrize("model_id", _sample("chair"))
def test_a_chair_stands_on_the_floor_with_its_seat_height(model_id):
    p, mesh = procedural.params(model_id), procedural.generate(model_id)
    lo, hi = mesh.bounds
    assert lo[1] == pytest.approx(0.0, abs=1e-9)
    if p.back == "none" and p.arms == "none":
        assert hi[1] == pytest.approx(p.seat_height, abs=1e-6)
    else:
        assert hi[1] > p.seat_height + min(p.back_height * 0.9, p.arm_height) - 1e-6


# --- closed single surfaces, no hidden faces ---------------------------------------------------------


@pytest.mark.parametrize("model_id", _sample("car") + _sample("chair"))
def test_meshes_are_watertight_oriented_volumes(model_id):
    mesh = procedural.generate(model_id)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.is_volume
    assert mesh.volume > 0  # outward-facing
    assert len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces)))) == 1


def test_the_inside_test_finds_faces_hidden_in_a_concatenation():
    """The check below can fail: two overlapping boxes concatenated (not united) hide faces inside."""
    boxes = [trimesh.creation.box((1.0, 1.0, 1.0)), trimesh.creation.box((1.0, 1.0, 1.0))]
    boxes[1].apply_translation((0.5, 0.2, 0.1))
    soup = trimesh.util.concatenate(boxes)
    points = sampling.area_gt(soup.vertices, soup.faces, 1024, seed=0).astype(np.float64)
    # hidden: 0.72 + 0.45 + 0.40 of each box's area 6, i.e. 3.14 / 12 of the soup's area
    assert np.mean(_strictly_inside(soup, points)) == pytest.approx(3.14 / 12, abs=0.04)
    united = solid.Assembly()
    united.add((1, 0, 0), solid.box((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5)),
               solid.box((0.0, -0.3, -0.4), (1.0, 0.7, 0.6)))
    mesh = united.mesh()
    points = sampling.area_gt(mesh.vertices, mesh.faces, 1024, seed=0).astype(np.float64)
    assert not np.any(_strictly_inside(mesh, points))


@pytest.mark.parametrize("model_id", _sample("car", 1) + _sample("chair", 1))
def test_no_ground_truth_point_lies_inside_the_solid(model_id):
    """Both GT clouds of the build pipeline, on the render-frame mesh the pipeline renders."""
    item = procedural.ProceduralItem(model_id, model_id.split("-")[1])
    task = build.ModelTask(item.category, model_id, "procedural", item, (0,), 32, 256, 0)
    record = build.mesh_record(task)
    mesh = build.render_frame_mesh("procedural", item)
    for gt in ("gt_uniform", "gt_area"):
        points = record[gt].astype(np.float64)
        assert np.max(np.abs(points)) <= 0.5 + 1e-6
        assert not np.any(_strictly_inside(mesh, points, eps=2e-4)), gt


# --- colours and orientation -------------------------------------------------------------------------


def _colour(rgb):
    return tuple(np.round(np.asarray(rgb) * 255).astype(np.uint8))


@pytest.mark.parametrize("model_id", _sample("car", 1))
def test_cars_carry_part_colours_that_the_renderer_uses(model_id):
    p, mesh = procedural.params(model_id), procedural.generate(model_id)
    assert mesh.visual.kind == "face"
    present = {tuple(c) for c in mesh.visual.face_colors[:, :3]}
    assert {_colour(p.body_colour), _colour(p.glass_colour), _colour(cars.TYRE), _colour(p.rim_colour),
            _colour(cars.HEADLIGHT), _colour(cars.TAILLIGHT)} <= present
    # no colour= argument: the renderer takes the mesh's own face colours
    rgb, mask = render.Renderer(64).render(meshes.to_render_frame(meshes.normalise(mesh)), 0.6, 0.3)
    pixels = rgb[mask > 0].astype(np.float64)
    assert len(np.unique(pixels // 16, axis=0)) >= 4  # body, glass, tyres, lights... shaded


def test_chairs_carry_material_colours():
    params = [procedural.params(i) for i in _ids("chair", 60)]
    frames = np.array([p.frame_colour for p in params])
    for palette in (chairs.WOODS, chairs.METALS):  # wood and metal frames both occur
        assert np.any(np.abs(frames[None] - palette[:, None]).max(axis=2) < 0.1)
    assert any(p.cushion and p.seat_colour != p.frame_colour for p in params)
    for model_id in _sample("chair", 1):
        p = procedural.params(model_id)
        mesh = procedural.generate(model_id)
        assert mesh.visual.kind == "face"
        present = {tuple(c) for c in mesh.visual.face_colors[:, :3]}
        assert {_colour(p.seat_colour), _colour(p.frame_colour)} <= present


@pytest.mark.parametrize("model_id", _sample("car", 1))
def test_cars_face_plus_z_in_the_canonical_frame(model_id):
    mesh = meshes.normalise(procedural.generate(model_id))
    lo, hi = mesh.bounds
    along = (mesh.triangles_center[:, 2] - lo[2]) / (hi[2] - lo[2])  # 0 at the rear bumper, 1 at the front
    colours = mesh.visual.face_colors[:, :3]
    assert np.all(along[np.all(colours == _colour(cars.HEADLIGHT), axis=1)] > 0.9)
    assert np.all(along[np.all(colours == _colour(cars.TAILLIGHT), axis=1)] < 0.1)


def _top_z(mesh: trimesh.Trimesh) -> float:
    """Mean z of the highest tenth of 4000 surface samples (canonical frame): < 0 when the tall part
    (a chair's back, a car's cabin) stands towards -z."""
    points = sampling.area_gt(mesh.vertices, mesh.faces, 4000, seed=0)
    return float(np.mean(points[points[:, 1] >= np.quantile(points[:, 1], 0.9), 2]))


def test_chairs_face_plus_z_like_the_real_chairs(realmeshes_dir):
    real = [_top_z(meshes.normalise(meshes.load_mesh(item.path)))
            for item in meshes.discover(realmeshes_dir, "chair")]
    assert np.mean(np.array(real) < 0) >= 0.9  # measured: 51 of the 55 real chairs have their back at -z
    for model_id in _ids("chair", 40):
        if procedural.params(model_id).back != "none":
            assert _top_z(meshes.normalise(procedural.generate(model_id))) < 0, model_id


def test_cars_lie_along_z_with_the_cabin_back_like_the_sweet_home_cars(realmeshes_dir):
    """The Sweet Home 3D cars of the shared set lie along z with their cabin behind the middle (front +z),
    as the procedural cars other than pickups do. (The TORCS cars lie along x, front +x.)"""
    for item in meshes.discover(realmeshes_dir, "car"):
        if item.model_id.startswith("sh3d_"):
            mesh = meshes.normalise(meshes.load_mesh(item.path))
            assert np.argmax(mesh.extents) == 2 and _top_z(mesh) < 0, item.model_id
    for model_id in _ids("car", 30):
        mesh = meshes.normalise(procedural.generate(model_id))
        assert np.argmax(mesh.extents) == 2
        assert procedural.params(model_id).style == "pickup" or _top_z(mesh) < 0, model_id


# --- through data.build ------------------------------------------------------------------------------


@pytest.mark.slow
def test_build_procedural_models_into_tfrecords(tmp_path):
    summary = build.build_dataset(source="procedural", out_dir=tmp_path, procedural_models=3, image_size=32,
                                  n_points=256, views=2, seed=1)
    assert summary["built"] == {"car": 3, "chair": 3} and summary["skipped"] == {}
    index = tfrecords.read_index(tmp_path)
    assert index["source"] == "procedural"
    assert index["generator"]["name"] == "data.procedural"
    assert index["generator"]["version"] == procedural.GENERATOR_VERSION
    assert index["generator"]["models_per_category"] == 3 and "not ShapeNet" in index["generator"]["note"]
    assert {s: e["models"] for s, e in index["splits"].items()} == {"train": {"car": 2, "chair": 2},
                                                                     "test": {"car": 1, "chair": 1}}
    batches = list(tfrecords.make_dataset(tmp_path, "train", 8, shuffle=False, repeat=False))
    assert len(batches) == 1 and batches[0]["image"].shape == (8, 32, 32, 3)
    ids = {i.decode() for i in batches[0]["model_id"].numpy()}
    assert len(ids) == 4 and all(i.startswith("proc-") for i in ids)
    mask = batches[0]["mask"].numpy() > 0.5
    image = batches[0]["image"].numpy()
    assert mask.any(axis=(1, 2)).all() and np.all(image[~mask] == 0)
    assert len(np.unique(np.round(image[mask] * 255) // 16, axis=0)) >= 8  # coloured, not one hue
    # the same models as a direct build: the procedural cache is keyed like any source's
    again = build.build_dataset(source="procedural", out_dir=tmp_path, procedural_models=3, image_size=32,
                                n_points=256, views=2, seed=1)
    assert again["built"] == summary["built"]


def test_ensure_dataset_builds_the_training_set_of_train_py_procedural_models_once(tmp_path):
    """What train.py --procedural_models N does without --data_dir: N models per category, one view, split
    PROCEDURAL_SPLIT, into procedural_out_dir; a second call finds the index and builds nothing."""
    out = tmp_path / build.procedural_out_dir(32, 5).name
    lines = []
    assert build.ensure_dataset(out, "procedural", image_size=32, log=lines.append, split=build.PROCEDURAL_SPLIT,
                                procedural_models=5) == out
    index = tfrecords.read_index(out)
    assert index["split_rule"] == "80/20" and index["generator"]["models_per_category"] == 5
    assert {s: e["models"] for s, e in index["splits"].items()} == {"train": {"car": 4, "chair": 4},
                                                                     "test": {"car": 1, "chair": 1}}
    assert out.name == "procedural_32_m5" and any(line.startswith("building") for line in lines)
    logged = len(lines)
    build.ensure_dataset(out, "procedural", image_size=32, log=lines.append, procedural_models=5)
    assert len(lines) == logged  # the second call found the index: nothing built, nothing said


@pytest.mark.slow
def test_cli_builds_one_category_and_rejects_bad_arguments(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "data.build", "--source", "procedural", "--size", "32",
                               "--n_points", "128", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=300)

    good = run("--out", str(tmp_path / "ok"), "--procedural_models", "2", "--category", "chair")
    assert good.returncode == 0, good.stderr[-2000:]
    assert good.stdout.strip().splitlines()[-1].startswith("built 2 models (chair 2)")
    assert json.loads((tmp_path / "ok" / "index.json").read_text())["generator"]["models_per_category"] == 2
    negative = run("--out", str(tmp_path / "neg"), "--procedural_models", "-2")
    assert negative.returncode != 0 and "procedural_models" in negative.stderr
    unknown = run("--out", str(tmp_path / "unk"), "--procedural_models", "2", "--category", "plane")
    assert unknown.returncode != 0
    assert "unknown category 'plane' for the procedural source: it makes car, chair" in unknown.stderr


def test_contact_sheet_renders_models_as_the_build_does(tmp_path):
    from PIL import Image

    from viz import contact_sheet

    images, ids = contact_sheet.render_source("procedural", "car", 2, 32, 35.0, 20.0, first=5)
    assert ids == [procedural.model_id("car", 5), procedural.model_id("car", 6)]
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    item = procedural.ProceduralItem(ids[0], "car")
    expected, _ = render.Renderer(32).render(build.render_frame_mesh("procedural", item), np.radians(35.0),
                                             np.radians(20.0))
    np.testing.assert_array_equal(images[0], expected)
    out = contact_sheet.contact_sheet(images, ids, tmp_path / "sheet.png", cols=2)
    assert Image.open(out).size[0] > 0
    with pytest.raises(ValueError, match="count must be >= 1"):
        contact_sheet.render_source("procedural", "car", 0, 32, 0.0, 0.0)
