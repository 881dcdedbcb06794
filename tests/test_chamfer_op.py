"""Tests of the NnDistance custom op (losses/ops): kernel results, its own input checks, build and load logic.

The op is built in this session when it is missing; a failed build fails these tests (they are never skipped
on a machine where the build works). CUDA tests are marked `gpu` and skip, saying why, without a GPU kernel.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial import cKDTree

from losses.ops import build, loader


@pytest.fixture(scope="session")
def op(op_library):
    """The op's Python module."""
    return op_library.module


def _reference_indices(query, target):
    """Nearest indices by an exact float64 KD-tree: [B, N, 3], [B, M, 3] -> [B, N]."""
    return np.stack([cKDTree(t.astype(np.float64)).query(q.astype(np.float64))[1]
                     for q, t in zip(query, target)])


# Sizes around the CPU kernel's blocking (8 target lanes, 4 queries per block), N != M, and single points.
@pytest.mark.parametrize("batch,n,m", [(1, 1, 1), (2, 1, 9), (3, 7, 1), (2, 5, 13), (4, 64, 100), (1, 1000, 999)])
def test_cpu_kernel_matches_kd_tree(op, batch, n, m):
    rng = np.random.default_rng(batch * n + m)
    a = rng.uniform(-1, 1, (batch, n, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (batch, m, 3)).astype(np.float32)
    with tf.device("/CPU:0"):
        i_ab, i_ba = op.nn_distance(a, b)
    assert i_ab.dtype == tf.int32 and i_ab.shape == (batch, n) and i_ba.shape == (batch, m)
    np.testing.assert_array_equal(i_ab, _reference_indices(a, b))
    np.testing.assert_array_equal(i_ba, _reference_indices(b, a))


def test_cpu_kernel_is_deterministic_across_thread_splits(op):
    rng = np.random.default_rng(7)
    # A coarse grid has many exact ties; the result must not depend on how the work is sharded.
    a = rng.integers(0, 4, (2, 301, 3)).astype(np.float32)
    b = rng.integers(0, 4, (2, 77, 3)).astype(np.float32)
    first = op.nn_distance(a, b)
    brute = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    np.testing.assert_array_equal(first[0], brute.argmin(-1))  # numpy's argmin takes the first minimum
    np.testing.assert_array_equal(first[1], brute.argmin(-2))
    for _ in range(3):
        for x, y in zip(op.nn_distance(a, b), first):
            np.testing.assert_array_equal(x, y)


def test_op_has_no_gradient(op):
    a = tf.constant(np.random.default_rng(0).normal(size=(1, 4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(a)
        i_ab, _ = op.nn_distance(a, a)
        out = tf.reduce_sum(tf.cast(i_ab, tf.float32))
    assert tape.gradient(out, a) is None


@pytest.mark.parametrize("a,b,match", [
    (np.zeros((1, 4, 3), np.float32), np.zeros((2, 4, 3), np.float32), "batch"),
    (np.zeros((1, 0, 3), np.float32), np.zeros((1, 4, 3), np.float32), "empty"),
    (np.zeros((1, 4, 3), np.float32), np.full((1, 2, 3), np.inf, np.float32), "NaN or Inf"),
    (np.zeros((1, 4, 2), np.float32), np.zeros((1, 4, 2), np.float32), "3"),
    (np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32), "rank 3"),
], ids=["batch", "empty", "inf", "last axis", "rank"])
def test_op_validates_its_inputs(op, a, b, match):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
        op.nn_distance(a, b)


def test_build_is_idempotent(op, capsys):
    build.build()  # rebuilds only if this checkout's build recipe changed since the libraries were built
    libraries = [build.BUILD_DIR / lib.file_name for lib in build.LIBRARIES]
    assert [path.name for path in libraries] == ["nn_distance.so", "projection.so"]
    mtimes = [path.stat().st_mtime_ns for path in libraries]
    capsys.readouterr()
    build.build()
    assert "up to date" in capsys.readouterr().out
    assert [path.stat().st_mtime_ns for path in libraries] == mtimes
    assert build.BUILD_DIR.parent == build.OPS_DIR  # inside losses/ops, ignored by losses/ops/.gitignore
    assert f"/{build.BUILD_DIR.name}/" in (build.OPS_DIR / ".gitignore").read_text().split()


def test_fingerprint_and_stamp_follow_the_sources(tmp_path, monkeypatch):
    ops_copy = tmp_path / "ops"
    ops_copy.mkdir()
    for name in build.SOURCES:
        shutil.copy(build.OPS_DIR / name, ops_copy / name)
    monkeypatch.setattr(build, "OPS_DIR", ops_copy)
    cxx = build.find_cxx()
    before = build.fingerprint(cxx, None)
    assert build.fingerprint(cxx, None) == before
    out = tmp_path / "out"
    out.mkdir()
    (out / build.STAMP_NAME).write_text(json.dumps({"fingerprint": before}))
    assert not build.is_up_to_date(out, before)  # stamp without libraries
    (out / build.LIBRARIES[0].file_name).write_bytes(b"")
    assert not build.is_up_to_date(out, before)  # one library missing
    (out / build.LIBRARIES[1].file_name).write_bytes(b"")
    assert build.is_up_to_date(out, before)
    for name in ("nn_distance_op.cc", "projection_math.h"):
        with (ops_copy / name).open("a") as f:
            f.write("\n// edited\n")
        assert build.fingerprint(cxx, None) != before
        before = build.fingerprint(cxx, None)
        assert not build.is_up_to_date(out, before)


def test_cuda_skip_reasons(monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"cuda_version": "12.5.1"})
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    monkeypatch.setattr(build, "nvcc_cuda_version", lambda nvcc: "12.8")
    assert build.cuda_skip_reason("nvcc") is None
    assert "nvcc not found" in build.cuda_skip_reason(None)
    monkeypatch.setattr(build, "nvcc_cuda_version", lambda nvcc: "13.0")
    assert "CUDA 13.0" in build.cuda_skip_reason("nvcc") and "12.5.1" in build.cuda_skip_reason("nvcc")
    monkeypatch.setattr(build, "nvcc_cuda_version", lambda nvcc: "12.8")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert "sees no GPU" in build.cuda_skip_reason("nvcc")
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: False)
    assert "not a CUDA build" in build.cuda_skip_reason("nvcc")


def test_build_prints_why_cuda_is_skipped_and_fails_on_compiler_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "cuda_skip_reason", lambda nvcc: "no GPU here")
    failing_compiler = shutil.which("false")  # exits 1 whatever its arguments
    monkeypatch.setattr(build, "find_cxx", lambda: failing_compiler)
    assert build.main(["--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "CUDA kernel skipped: no GPU here" in captured.out
    assert "compile of nn_distance_op.cc failed" in captured.err
    assert not (tmp_path / build.STAMP_NAME).exists()
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    assert build.main(["--out", str(tmp_path), "--cuda", "on"]) == 1
    assert "nvcc is not on PATH" in capsys.readouterr().err


def test_loader_reports_a_stale_library(op, monkeypatch):
    monkeypatch.setattr(build, "sources_digest", lambda: "edited")
    for name in ("nn_distance", "projection"):
        lib = loader.load.__wrapped__(name)
        assert lib.module is None and "sources changed" in lib.reason and "losses.ops.build" in lib.reason
    monkeypatch.setattr(build, "read_stamp", lambda out_dir=None: None)
    assert "not built" in loader.load.__wrapped__().reason
    with pytest.raises(ValueError, match="unknown op library 'chamfer'"):
        loader.load.__wrapped__("chamfer")


def _gpu_kernel_available():
    if not tf.config.list_physical_devices("GPU"):
        return "no GPU visible to TensorFlow"
    if not loader.load().cuda:
        return "the op was built without its CUDA kernel (see `python -m losses.ops.build`)"
    return None


@pytest.mark.gpu
def test_cuda_kernel_matches_cpu_kernel(op):
    reason = _gpu_kernel_available()
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(11)
    # Sizes that do not fill the 256-thread blocks or shared-memory tiles, and a coarse grid with exact ties.
    cases = [rng.normal(size=(3, 300, 3)), rng.normal(size=(3, 1000, 3)),
             rng.integers(0, 4, (2, 513, 3)), rng.integers(0, 4, (2, 77, 3))]
    for a, b in (cases[:2], cases[2:]):
        a, b = a.astype(np.float32), b.astype(np.float32)
        with tf.device("/GPU:0"):
            gpu = op.nn_distance(a, b)
        with tf.device("/CPU:0"):
            cpu = op.nn_distance(a, b)
        assert "GPU" in gpu[0].device
        for x, y in zip(gpu, cpu):
            np.testing.assert_array_equal(x, y)
