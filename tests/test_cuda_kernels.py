"""The CUDA kernels of both custom ops without a GPU: they compile with nvcc (`nvcc -c`, losses.ops.build's
flags), their plain launch functions load through ctypes and reject bad sizes, and the standalone harness
bench/bench_cuda_kernels.py fails early and clearly where it cannot run, with CPU references that agree with
the project's own. On a machine with nvcc, PyTorch and a CUDA GPU the last test runs the harness's checks.

Tests that need nvcc skip, saying so, where it is not installed.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import bench_cuda_kernels as harness
from losses.ops import build

REPO = Path(__file__).resolve().parents[1]
ARCH = "-arch=sm_90"  # one real architecture keeps the compile short (install builds --gpu-architecture all)

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")


@needs_nvcc
@pytest.mark.parametrize("lib", build.LIBRARIES, ids=lambda lib: lib.kernel_source)
def test_cuda_sources_compile_with_nvcc(lib, tmp_path):
    out = tmp_path / "kernel.o"
    done = subprocess.run(["nvcc", *build.NVCC_FLAGS, ARCH, str(build.OPS_DIR / lib.kernel_source), "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    assert "warning" not in done.stderr.lower(), done.stderr


@needs_nvcc
def test_launch_functions_load_through_ctypes_and_reject_bad_sizes(tmp_path):
    libraries = harness.compile_kernels("sm_90", tmp_path)
    projection = libraries["projection"]
    for suffix in ("F32", "F64"):
        forward = getattr(projection, f"ProjectionForwardCuda{suffix}")
        backward = getattr(projection, f"ProjectionBackwardCuda{suffix}")
        # rejected before any CUDA call, so this works without a GPU
        assert forward(None, 1, 4, 3, 8, 33, 1, harness._params(), *[None] * 5) == \
            b"Projection CUDA: splat_radius outside [0, 32]"
        assert backward(None, -1, 4, 3, 8, 4, 1, harness._params(), *[None] * 9).startswith(b"Projection CUDA:")
    assert libraries["nn_distance"].NnDistanceCudaLaunch.restype is not None


def test_harness_constants_are_model_projections():
    from model import projection

    assert (harness.SIGMA_SQ, harness.BETA, harness.DEPTH_SHIFT, harness.MAX_DEPTH, harness.SOFTMAX_EPS,
            harness.RENORM_EPS, harness.WELL_RADIUS) == (
        projection.SIGMA_SQ, projection.BETA, projection.DEPTH_SHIFT, projection.MAX_DEPTH, projection.SOFTMAX_EPS,
        projection.RENORM_EPS, projection.WELL_RADIUS)
    assert harness.SPLAT_RADIUS == projection.splat_radius(projection.SIGMA_SQ)


def test_harness_brute_force_is_the_nn_distance_ops(op_library):
    """The harness's CPU reference (float32, difference form, first minimum) equals the NnDistance CPU kernel
    on a grid full of ties, so an exact match on the GPU means the same indices as the CPU kernel."""
    rng = np.random.default_rng(3)
    query = rng.integers(0, 4, (2, 300, 3)).astype(np.float32)
    target = rng.integers(0, 4, (2, 91, 3)).astype(np.float32)
    np.testing.assert_array_equal(harness.nn_brute_force(query, target),
                                  op_library.module.nn_distance(query, target)[0].numpy())


def test_harness_fails_early_without_a_gpu_and_runs_its_checks_with_one():
    missing = harness.requirements_missing()
    done = subprocess.run([sys.executable, "-m", "bench.bench_cuda_kernels", "--skip-timing"], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    if missing:
        assert done.returncode == 2, done.stderr
        assert f"cannot run here: {missing}" in done.stderr and done.stdout == ""
    else:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert "FAIL" not in done.stdout
