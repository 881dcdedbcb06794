"""Lazy loader of the `NnDistance` custom op built by ``python -m losses.ops.build``.

``load()`` loads ``losses/ops/_build/nn_distance.so`` on first use and caches the outcome; it never builds.
A library that is missing, was built from other sources or for another TensorFlow version, or fails to load is
reported with the reason and the command that fixes it, so that ``losses.chamfer`` can fall back to pure TF.
"""

import functools
from dataclasses import dataclass
from types import ModuleType

import tensorflow as tf

from losses.ops import build

REBUILD_HINT = "run `python -m losses.ops.build`"


@dataclass(frozen=True)
class OpLibrary:
    """Outcome of loading the op: `module` is None exactly when `reason` says why it is unavailable."""

    module: ModuleType | None
    reason: str | None
    cuda: bool = False  # the library carries the CUDA kernel


@functools.cache
def load() -> OpLibrary:
    """Loads the op library once per process.

    Returns:
        OpLibrary with the module exposing ``nn_distance(a, b) -> (idx_ab, idx_ba)``, or the reason it is not
        available.
    """
    library = build.BUILD_DIR / build.LIBRARY_NAME
    stamp = build.read_stamp()
    if stamp is None or not library.is_file():
        return OpLibrary(None, f"the op is not built ({REBUILD_HINT})")
    if stamp.get("tf_version") != tf.__version__:
        return OpLibrary(None, f"the op was built for TensorFlow {stamp.get('tf_version')}, this is "
                               f"{tf.__version__} ({REBUILD_HINT})")
    if stamp.get("sources_sha256") != build.sources_digest():
        return OpLibrary(None, f"the op's sources changed since it was built ({REBUILD_HINT})")
    try:
        module = tf.load_op_library(str(library))
    except (tf.errors.NotFoundError, OSError) as err:
        return OpLibrary(None, f"loading {library.name} failed: {err} ({REBUILD_HINT})")
    # The op returns integer indices only; losses.chamfer computes distances and their gradient in TF.
    tf.no_gradient("NnDistance")
    return OpLibrary(module, None, cuda=bool(stamp.get("cuda")))
