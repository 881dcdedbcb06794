"""Tests of data.meshes: loading every format, one clear MeshError per kind of bad input, the canonical
and render frames, and discovery of the three kinds of source."""

import json
import struct

import numpy as np
import pytest
import trimesh

from data import meshes
from data.meshes import CANONICAL_TO_RENDER, MeshError, MeshItem, discover, load_mesh, normalise


def _box(extents=(4.0, 2.0, 1.0), centre=(10.0, -3.0, 5.0)) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply", ".glb"])
def test_load_every_format(tmp_path, suffix):
    path = tmp_path / f"box{suffix}"
    _box().export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12
    assert mesh.area == pytest.approx(2 * (4 * 2 + 4 * 1 + 2 * 1))
    np.testing.assert_allclose(mesh.bounds, [[8, -4, 4.5], [12, -2, 5.5]], atol=1e-6)


def test_scene_parts_are_concatenated_with_their_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a",
                       transform=trimesh.transformations.translation_matrix((-2, 0, 0)))
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="b",
                       transform=trimesh.transformations.translation_matrix((2, 0, 0)))
    path = tmp_path / "two.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 24
    np.testing.assert_allclose(mesh.bounds, [[-2.5, -0.5, -0.5], [2.5, 0.5, 0.5]], atol=1e-6)


def _empty_scene_glb() -> bytes:
    """A valid glTF binary whose scene has one node and no mesh (trimesh refuses to export one)."""
    doc = json.dumps({"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
                      "nodes": [{"name": "empty"}]}).encode()
    doc += b" " * (-len(doc) % 4)
    return b"glTF" + struct.pack("<II", 2, 20 + len(doc)) + struct.pack("<I", len(doc)) + b"JSON" + doc


BAD_FILES = {
    "unreadable": ("garbage.ply", b"ply\nthis is not a ply header at all\x00\x01\x02", "unreadable"),
    "missing": ("missing.obj", None, "unreadable"),
    "empty": ("empty.off", b"OFF\n0 0 0\n", "empty mesh"),
    "zero_area": ("line.off", b"OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n", "zero-area"),
    "nan": ("nan.off", b"OFF\n3 1 0\n0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n", "non-finite vertices (1 of 3)"),
    "inf": ("inf.obj", b"v 0 0 0\nv 1 inf 0\nv 0 1 0\nf 1 2 3\n", "non-finite vertices (1 of 3)"),
    "no_geometry": ("nodes_only.glb", _empty_scene_glb(), "scene with no triangle geometry"),
    "points_only": ("points.obj", b"v 0 0 0\nv 1 0 0\n", "no triangle geometry"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_raises_mesh_error_with_path_and_reason(tmp_path, case):
    name, content, reason = BAD_FILES[case]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.path == path
    assert reason in info.value.reason
    assert str(path) in str(info.value)


def test_too_many_faces_is_decimated(tmp_path):
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=4).export(path)  # 5120 faces, area 4 pi
    mesh = load_mesh(path, max_faces=1000)
    assert 900 <= len(mesh.faces) <= 1000
    assert mesh.area == pytest.approx(4 * np.pi, rel=0.02)
    assert len(load_mesh(path).faces) == 5120  # under the default threshold: untouched


def test_triangle_soup_is_welded_before_decimation(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=4)
    soup = trimesh.Trimesh(sphere.triangles.reshape(-1, 3), np.arange(3 * 5120).reshape(-1, 3), process=False)
    soup.export(tmp_path / "soup.ply")  # every face has its own three vertices
    mesh = load_mesh(tmp_path / "soup.ply", max_faces=1000)
    assert len(mesh.faces) <= 1000 and mesh.area == pytest.approx(4 * np.pi, rel=0.02)


def test_decimation_that_drops_parts_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    corners = rng.random((2000, 1, 3)) * 10 + rng.random((2000, 3, 3)) * 0.1  # 2000 separate triangles
    trimesh.Trimesh(corners.reshape(-1, 3), np.arange(6000).reshape(-1, 3), process=False).export(
        tmp_path / "confetti.ply")
    with pytest.raises(MeshError, match="decimation changed the surface area by 75%"):
        load_mesh(tmp_path / "confetti.ply", max_faces=500)


def test_too_many_faces_refused_when_decimation_cannot_reach_the_target(tmp_path):
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=2).export(path)
    with pytest.raises(MeshError, match=r"320 faces > max_faces=1 and decimation reached"):
        load_mesh(path, max_faces=1)


def test_normalise_centres_and_scales_the_bounding_box_diagonal_by_default():
    out = normalise(_box())  # extents (4, 2, 1): diagonal sqrt(21)
    half = np.array([2.0, 1.0, 0.5]) / np.sqrt(21.0)
    np.testing.assert_allclose(out.bounds, [-half, half], atol=1e-12)
    assert np.linalg.norm(np.ptp(out.vertices, axis=0)) == pytest.approx(1.0, abs=1e-12)


def test_normalise_longest_side():
    out = normalise(_box(), scale="longest_side")
    np.testing.assert_allclose(out.bounds, [[-0.5, -0.25, -0.125], [0.5, 0.25, 0.125]], atol=1e-12)


def test_normalise_refuses_an_unknown_scale():
    with pytest.raises(ValueError, match="normalisation must be one of"):
        normalise(_box(), scale="unit_cube")


def test_normalise_rotates_about_y_before_centring():
    mesh = _box()
    out = normalise(mesh, rotate_y_deg=90.0, scale="longest_side")
    # +90° about +y maps x -> -z and z -> x: extents (4, 2, 1) become (1, 2, 4).
    np.testing.assert_allclose(np.ptp(out.vertices, axis=0), [0.25, 0.5, 1.0], atol=1e-12)
    front = mesh.vertices[:, 0] == mesh.vertices[:, 0].max()  # the +x end of the box ...
    np.testing.assert_allclose(out.vertices[front, 2], -0.5)  # ... ends at -z
    assert not np.shares_memory(out.vertices, mesh.vertices)


def test_normalise_keeps_face_colours():
    mesh = _box()
    mesh.visual.face_colors = [200, 10, 10, 255]
    assert normalise(mesh).visual.kind == "face"


def test_canonical_to_render_golden():
    assert np.linalg.det(CANONICAL_TO_RENDER) == pytest.approx(1.0)
    np.testing.assert_array_equal(CANONICAL_TO_RENDER @ CANONICAL_TO_RENDER.T, np.eye(3))
    up, right, front = np.eye(3)[1], np.eye(3)[0], np.eye(3)[2]
    np.testing.assert_array_equal(meshes.to_render_frame(up), [-1, 0, 0])  # image up = row 0 side
    np.testing.assert_array_equal(meshes.to_render_frame(right), [0, 1, 0])  # image right
    np.testing.assert_array_equal(meshes.to_render_frame(front), [0, 0, 1])  # towards the camera


def test_to_render_frame_mesh_and_points_agree():
    mesh = normalise(_box())
    points = mesh.vertices.astype(np.float32)
    moved = meshes.to_render_frame(points)
    assert moved.dtype == np.float32
    np.testing.assert_allclose(meshes.to_render_frame(mesh).vertices, moved, atol=1e-6)
    np.testing.assert_allclose(moved, points @ CANONICAL_TO_RENDER.T, atol=1e-6)


def test_discover_builtin(sample_dir):
    items = discover("builtin")
    assert items == sorted(items, key=lambda it: (it.category, it.model_id))
    assert {it.category for it in items} == {"car", "chair"}
    assert len(items) == len(list(sample_dir.glob("*/*.ply")))
    first = items[0]
    assert first.model_id == first.path.stem and first.path.parent.name == first.category
    assert discover("builtin", category="chair") == [it for it in items if it.category == "chair"]


def _touch(path, content=b"OFF\n0 0 0\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_discover_shapenet_tree(tmp_path):
    for synset, model in [("03001627", "zz1"), ("02958343", "bb2"), ("02958343", "aa1"), ("04379243", "t1")]:
        _touch(tmp_path / synset / model / "model.obj")
    _touch(tmp_path / "02958343" / "no_mesh_here" / "readme.txt")
    items = discover(tmp_path)
    assert [(it.category, it.model_id) for it in items] == [
        ("04379243", "t1"), ("car", "aa1"), ("car", "bb2"), ("chair", "zz1")]
    assert items[1].path == tmp_path / "02958343" / "aa1" / "model.obj"
    assert discover(tmp_path, category="car") == discover(tmp_path, category="02958343") == items[1:3]


def test_discover_folder_with_category_subfolders(tmp_path):
    for rel in ["chair/b.ply", "chair/a.obj", "car/z.off", "car/notes.txt", "car/y.glb"]:
        _touch(tmp_path / rel)
    items = discover(tmp_path)
    assert [(it.category, it.model_id) for it in items] == [
        ("car", "y"), ("car", "z"), ("chair", "a"), ("chair", "b")]
    assert discover(tmp_path, category="chair") == [MeshItem("a", "chair", tmp_path / "chair" / "a.obj"),
                                                   MeshItem("b", "chair", tmp_path / "chair" / "b.ply")]


def test_discover_flat_folder_needs_a_category(tmp_path):
    for name in ["m2.ply", "m1.obj"]:
        _touch(tmp_path / name)
    assert [it.model_id for it in discover(tmp_path, category="lamp")] == ["m1", "m2"]
    assert {it.category for it in discover(tmp_path, category="lamp")} == {"lamp"}
    with pytest.raises(ValueError, match="pass a category"):
        discover(tmp_path)


def test_discover_errors(tmp_path):
    with pytest.raises(ValueError, match="is not 'builtin' or a directory"):
        discover(tmp_path / "nope")
    (tmp_path / "car").mkdir()
    with pytest.raises(ValueError, match="no meshes"):
        discover(tmp_path)
    _touch(tmp_path / "car" / "x.obj")
    _touch(tmp_path / "car" / "x.ply")
    with pytest.raises(ValueError, match="duplicate model id 'x'"):
        discover(tmp_path)
