"""Shared pytest configuration: quiet TensorFlow, hypothesis profile, paths to the test data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"
REALMESHES_DIR = REPO_ROOT.parent / "shared" / "data" / "realmeshes"

# TensorFlow's first call in a process is slow; wall-clock deadlines would make property tests flaky.
settings.register_profile("project", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("project")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The built-in sample of meshes shipped with the project."""
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def realmeshes_dir() -> Path:
    """The shared real meshes (25 cars, 55 chairs) that CI provides beside the repository."""
    if not REALMESHES_DIR.is_dir():
        pytest.skip(f"shared real meshes not found at {REALMESHES_DIR} (CI provides them)")
    return REALMESHES_DIR


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """TFRecords of 4 cars and 4 chairs of the built-in sample (one view each, 64 px, 1024-point GT)."""
    from data.build import build_dataset

    out = tmp_path_factory.mktemp("tiny_dataset")
    build_dataset(source="builtin", out_dir=out, views=1, image_size=64, n_points=1024,
                  split="50/50", seed=0, workers=0, max_models=4)
    return out


@pytest.fixture(scope="session")
def op_library():
    """The loaded Chamfer custom op; builds the ops first when needed and fails (never skips) when that fails."""
    from losses.ops import build, loader

    if loader.load().module is None:
        build.build()
        loader.load.cache_clear()
    lib = loader.load()
    if lib.module is None:
        pytest.fail(f"the NnDistance op could not be loaded after building it: {lib.reason}")
    return lib


@pytest.fixture(scope="session")
def projection_library(op_library):
    """The loaded Projection custom op (the same build makes both op libraries); fails if it cannot load."""
    from losses.ops import loader

    lib = loader.load("projection")
    if lib.module is None:
        pytest.fail(f"the Projection op could not be loaded after building the ops: {lib.reason}")
    return lib
