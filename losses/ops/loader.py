"""Lazy loader of the custom op libraries built by ``python -m losses.ops.build``.

``load(name)`` loads ``losses/ops/_build/<name>.so`` on first use and caches the outcome; it never builds. A
library that is missing, was built from other sources or for another TensorFlow version, or fails to load is
reported with the reason and the command that fixes it, so that its callers can fall back to pure TF
(losses/chamfer.py for ``nn_distance``, model/projection.py for ``projection``).

Gradients: ``NnDistance`` has none (losses/chamfer.py recomputes the distances in TF); ``Projection``'s is the
``ProjectionGrad`` op of the same library, registered here.
"""

import functools
from dataclasses import dataclass
from types import ModuleType

import tensorflow as tf

from losses.ops import build

REBUILD_HINT = "run `python -m losses.ops.build`"


@dataclass(frozen=True)
class OpLibrary:
    """Outcome of loading a library: `module` is None exactly when `reason` says why it is unavailable."""

    module: ModuleType | None
    reason: str | None
    cuda: bool = False  # the library carries its CUDA kernels


@functools.cache
def load(name: str = "nn_distance") -> OpLibrary:
    """Loads one op library once per process.

    Args:
        name: a library of ``build.LIBRARIES``: "nn_distance" (module function ``nn_distance(a, b) -> (idx_ab,
            idx_ba)``) or "projection" (``projection(uvw, colours, params, ...)`` and ``projection_grad``).

    Returns:
        OpLibrary with the module, or the reason it is not available.
    """
    known = {lib.name: lib for lib in build.LIBRARIES}
    if name not in known:
        raise ValueError(f"losses.ops.loader: unknown op library {name!r}; known: {', '.join(known)}")
    library = build.BUILD_DIR / known[name].file_name
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
    return OpLibrary(module, None, cuda=bool(stamp.get("cuda")))


# The op returns integer indices only; losses.chamfer computes distances and their gradient in TF.
tf.no_gradient("NnDistance")


@tf.RegisterGradient("Projection")
def _projection_gradient(op, grad_mask, grad_image, grad_state):
    """Gradients of Projection's mask and image w.r.t. uvw and colours, by the ProjectionGrad op.

    colour_state is an auxiliary output (what the backward pass needs of the forward one) and carries no
    gradient; params (σ², β and the constants of §5.4) get none either.
    """
    del grad_state
    mask, image, state = op.outputs
    grad_mask = tf.zeros_like(mask) if grad_mask is None else grad_mask
    grad_image = tf.zeros_like(image) if grad_image is None else grad_image
    grad_uvw, grad_colours = load("projection").module.projection_grad(
        op.inputs[0], op.inputs[1], op.inputs[2], mask, image, state, grad_mask, grad_image,
        image_size=op.get_attr("image_size"), splat_radius=op.get_attr("splat_radius"),
        well_radius=op.get_attr("well_radius"))
    return grad_uvw, grad_colours, None
