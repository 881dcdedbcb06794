"""Differentiable projection of a coloured point cloud to a soft silhouette and a colour image.

Baseline §5.3 (silhouette ``cont_proj``) and §5.4 (colour ``rgb_cont_proj``), each in three forms:

  * ``*_faithful``: the baseline's dense formulation, formula for formula, with [B, N, H, W] intermediates
    (the reference; memory O(B·N·H·W)).
  * ``*_fast``: the same function evaluated only where it is non-negligible: each point touches a small
    window of pixels and the contributions are scatter-added (memory O(B·N·window)). Equal to the faithful
    form up to float rounding (silhouette: plus a truncation error below ``SPLAT_TOLERANCE`` per point).
  * ``*_fused``: the fast form's arithmetic in one custom op, ``Projection`` (losses/ops: a multi-threaded C++
    CPU kernel and a CUDA kernel, float32 and float64), which renders both images in one pass over the points
    and has its own backward op; no [B, N, window] intermediates.

``render`` and ``silhouette`` take ``method``: "faithful", "fast", "fused", or "auto" (the default), which is
"fused" when the op library loaded (and has its CUDA kernel if TensorFlow sees a GPU) and "fast" otherwise,
logged once per process. The camera (geometry/camera.py) stays in TensorFlow in every form, so the gradient
w.r.t. the pose follows from the gradient w.r.t. (u, v, w).

Shape legend: B batch, N points, H = W = image_size.
Conventions (geometry/camera.py, baseline §5.3): ``uvw[..., 0] = u`` is compared with the ROW index i,
``uvw[..., 1] = v`` with the COLUMN index j, pixel (i, j) is centred at (u, v) = (i, j); ``w`` is the
positive depth. Depth plays no part in the silhouette (no occlusion); in the colour image it only sets the
softmax weights of the points sharing a pixel's 3×3 well.
"""

import functools
import logging
import math

import tensorflow as tf

from geometry import camera
from geometry.checks import check_image_size
from losses.ops import loader

SIGMA_SQ = 0.4  # baseline §5.3: main.py passes --sigma_sq (default 0.4 px²)
WELL_RADIUS = 1  # baseline §5.4: 3×3 well, boundary included
BETA = 100.0  # baseline §5.4: softmax sharpness over beta / depth
DEPTH_SHIFT = 1.0  # baseline §5.4 step 1: w' = w + 1
MAX_DEPTH = 10.0  # baseline §5.4 step 2: d = clip(k_u·k_v·w', 0, 10); d == 10 marks "not in the well"
OUTSIDE_WELL_FACTOR = 10.0  # baseline §5.4 step 2: per-axis well value outside the well
SOFTMAX_EPS = 1e-5  # baseline §5.4 step 3: beta / (d + 1e-5)
RENORM_EPS = 1e-8  # baseline §5.4 step 4: prob / (Σ prob + 1e-8)
SPLAT_TOLERANCE = 1e-6  # bound on the silhouette mass a point loses to the fast form's truncation
MAX_FUSED_SPLAT_RADIUS = 32  # the Projection op's limit on splat_radius (kMaxSplatRadius, projection_math.h)

METHODS = ("auto", "fused", "fast", "faithful")

_LOG = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- helpers


def _check_uvw(uvw, name: str) -> tf.Tensor:
    uvw = tf.convert_to_tensor(uvw)
    if uvw.shape.rank != 3 or uvw.shape[-1] != 3:
        raise ValueError(f"model/projection.py {name}: uvw must be [B, N, 3], got shape {uvw.shape}")
    return uvw


def _pixel_grid(image_size: int, dtype) -> tuple[tf.Tensor, tf.Tensor]:
    """Integer pixel centres ``meshgrid(range(H), range(W), indexing='ij')`` as [1, 1, H, W] (§5.3)."""
    coords = tf.range(image_size, dtype=dtype)
    rows, cols = tf.meshgrid(coords, coords, indexing="ij")
    return rows[None, None], cols[None, None]


def splat_radius(sigma_sq: float, tolerance: float = SPLAT_TOLERANCE) -> int:
    """Smallest half-width r of the fast silhouette window that loses < ``tolerance`` per point.

    Derivation. A point at (u, v) is splatted on the (2r+1)² pixels around (round(u), round(v)); write
    g(δ) = exp(−δ²/(2σ²)) and t = u − round(u), |t| ≤ 1/2. Along one axis:
      * the full sum A = Σ_k g(k − t) ≤ max g + ∫ g = 1 + sqrt(2πσ²) (g is unimodal);
      * the pixels left out are at |δ| ≥ r + 1/2 on one side and ≥ r + 1 on the other, so their sum
        T ≤ (g(r + 1/2) + g(r + 1)) / (1 − q), the ratio of consecutive terms beyond a = r + 1/2 being at
        most q = exp(−(2a + 1)/(2σ²)).
    The mass outside the 2-D window is T_u·A_v + W_u·T_v ≤ 2·A·T (W ≤ A is the kept part), and tanh is
    1-Lipschitz, so the silhouette changes by less than 2·A·T per point. For σ² = 0.4 this gives r = 4
    (bound 5e-11; r = 3 would give 1.2e-6).

    Args:
        sigma_sq: Gaussian variance σ² in px² (> 0).
        tolerance: bound on the lost mass per point.

    Returns:
        The half-width r (int ≥ 0).
    """
    if not sigma_sq > 0 or not tolerance > 0:
        raise ValueError(f"model/projection.py splat_radius: sigma_sq and tolerance must be > 0, got "
                         f"sigma_sq={sigma_sq!r}, tolerance={tolerance!r}")
    full_axis = 1.0 + math.sqrt(2.0 * math.pi * sigma_sq)
    r = 0
    while True:
        near = r + 0.5
        ratio = math.exp(-(2.0 * near + 1.0) / (2.0 * sigma_sq))
        tail = (math.exp(-near**2 / (2.0 * sigma_sq)) + math.exp(-(r + 1.0) ** 2 / (2.0 * sigma_sq))) / (1.0 - ratio)
        if 2.0 * full_axis * tail < tolerance:
            return r
        r += 1


def _window(coord: tf.Tensor, radius: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Integer pixel indices round(coord) − radius … round(coord) + radius along one axis.

    Args:
        coord: float tensor [B, N] (u or v).
        radius: window half-width.

    Returns:
        (index_float [B, N, 2·radius+1] in the dtype of coord, with no gradient; offset coord − index
        [B, N, 2·radius+1], differentiable w.r.t. coord).
    """
    steps = tf.range(-radius, radius + 1, dtype=coord.dtype)
    index = tf.stop_gradient(tf.round(coord))[..., None] + steps
    return index, coord[..., None] - index


def _window_pixel_ids(rows, cols, image_size: int, keep_rows=None, keep_cols=None) -> tf.Tensor:
    """Flat segment ids b·H·W + i·W + j of the pixels (rows[k], cols[l]) of each point's window.

    Entries off the image, or dropped by ``keep_rows`` / ``keep_cols``, go to the extra id B·H·W.

    Args:
        rows, cols: float tensors [B, N, K1] of integer-valued pixel indices (any value, also off-image).
        image_size: H = W.
        keep_rows, keep_cols: optional bool tensors [B, N, K1] selecting rows / columns of the window.

    Returns:
        int32 tensor [B, N, K1, K1] of segment ids in [0, B·H·W].
    """
    batch = tf.shape(rows)[0]
    on_image_rows = (rows >= 0) & (rows < image_size)
    on_image_cols = (cols >= 0) & (cols < image_size)
    keep_rows = on_image_rows if keep_rows is None else on_image_rows & keep_rows
    keep_cols = on_image_cols if keep_cols is None else on_image_cols & keep_cols
    # clip before the cast so that far-away points cannot overflow int32
    r = tf.cast(tf.clip_by_value(rows, 0, image_size - 1), tf.int32)
    c = tf.cast(tf.clip_by_value(cols, 0, image_size - 1), tf.int32)
    b = tf.range(batch)[:, None, None, None]
    ids = (b * image_size + r[..., :, None]) * image_size + c[..., None, :]
    return tf.where(keep_rows[..., :, None] & keep_cols[..., None, :], ids, batch * image_size * image_size)


def _pixels_to_image(per_pixel, image_size: int, batch) -> tf.Tensor:
    """Drop the overflow segment of [B·H·W + 1, ...] and reshape to [B, H, W, ...]."""
    trailing = tf.shape(per_pixel)[1:]
    shape = tf.concat([[batch, image_size, image_size], trailing], axis=0)
    return tf.reshape(per_pixel[:-1], shape)


# ---------------------------------------------------------------------------------------- silhouette


def silhouette_faithful(uvw, image_size: int, sigma_sq: float = SIGMA_SQ) -> tf.Tensor:
    """Soft silhouette, the baseline's dense ``cont_proj`` (baseline §5.3).

    ``M[b, i, j] = tanh(Σ_n exp(−(u_n − i)²/(2σ²)) · exp(−(v_n − j)²/(2σ²)))``.

    Args:
        uvw: float tensor [B, N, 3] from :func:`geometry.camera.project` (w unused).
        image_size: H = W.
        sigma_sq: σ² in px².

    Returns:
        Tensor [B, H, W] in [0, 1), dtype of uvw. Builds [B, N, H, W] intermediates.
    """
    uvw = _check_uvw(uvw, "silhouette_faithful")
    check_image_size(image_size, "model/projection.py silhouette_faithful")
    rows, cols = _pixel_grid(image_size, uvw.dtype)
    u, v = uvw[..., 0, None, None], uvw[..., 1, None, None]  # [B, N, 1, 1]
    kernel_u = tf.exp(-tf.square(u - rows) / (2.0 * sigma_sq))  # [B, N, H, W]
    kernel_v = tf.exp(-tf.square(v - cols) / (2.0 * sigma_sq))
    return tf.tanh(tf.reduce_sum(kernel_u * kernel_v, axis=1))


def silhouette_fast(uvw, image_size: int, sigma_sq: float = SIGMA_SQ) -> tf.Tensor:
    """Soft silhouette of §5.3 as a truncated Gaussian splat (same values as :func:`silhouette_faithful`).

    Each point adds g(u − i)·g(v − j) to the (2r+1)² pixels around (round(u), round(v)), r =
    :func:`splat_radius` (sigma_sq); pixels outside the image are dropped. Per point, the result differs
    from the dense form by less than ``SPLAT_TOLERANCE``.

    Args:
        uvw: float tensor [B, N, 3] (w unused).
        image_size: H = W.
        sigma_sq: σ² in px² (Python number).

    Returns:
        Tensor [B, H, W] in [0, 1), dtype of uvw. Memory O(B·N·(2r+1)²).
    """
    uvw = _check_uvw(uvw, "silhouette_fast")
    check_image_size(image_size, "model/projection.py silhouette_fast")
    radius = splat_radius(sigma_sq)
    rows, du = _window(uvw[..., 0], radius)  # [B, N, K1], K1 = 2r + 1
    cols, dv = _window(uvw[..., 1], radius)
    kernel_u = tf.exp(-tf.square(du) / (2.0 * sigma_sq))
    kernel_v = tf.exp(-tf.square(dv) / (2.0 * sigma_sq))
    values = kernel_u[..., :, None] * kernel_v[..., None, :]  # [B, N, K1, K1]
    ids = _window_pixel_ids(rows, cols, image_size)
    batch = tf.shape(uvw)[0]
    per_pixel = tf.math.unsorted_segment_sum(values, ids, batch * image_size * image_size + 1)
    return tf.tanh(_pixels_to_image(per_pixel, image_size, batch))


# -------------------------------------------------------------------------------------------- colour


def colour_faithful(uvw, rgb, image_size: int, well_radius: int = WELL_RADIUS, beta: float = BETA) -> tf.Tensor:
    """Soft colour image, the baseline's dense ``rgb_cont_proj`` (baseline §5.4), steps 1–6 as written.

    Steps: w' = w + 1; per-axis well k(δ) = 1 if |δ| ≤ well_radius else 10; d = clip(k_u·k_v·w', 0, 10);
    prob = softmax_n(beta / (d + 1e-5)); m = [d ≠ 10]; prob ← prob·m / (Σ_n prob·m + 1e-8);
    I = Σ_n prob·rgb_n; pixels with no point in their well are 0. The well test is a hard comparison, so
    there is no gradient w.r.t. u, v: gradients reach the depth w (through the softmax) and rgb.

    Args:
        uvw: float tensor [B, N, 3] = (u rows, v columns, w depth).
        rgb: float tensor [B, N, 3], per-point colours (the baseline's ``feat``).
        image_size: H = W.
        well_radius: half-width of the well in px.
        beta: softmax sharpness.

    Returns:
        Tensor [B, H, W, 3], dtype of uvw. Builds [B, N, H, W] and [B, N, H, W, 3] intermediates.
    """
    uvw = _check_uvw(uvw, "colour_faithful")
    check_image_size(image_size, "model/projection.py colour_faithful")
    rgb = tf.cast(rgb, uvw.dtype)
    rows, cols = _pixel_grid(image_size, uvw.dtype)
    u, v = uvw[..., 0, None, None], uvw[..., 1, None, None]  # [B, N, 1, 1]
    w_shifted = uvw[..., 2, None, None] + DEPTH_SHIFT
    well_u = tf.where(tf.abs(u - rows) <= well_radius, 1.0, OUTSIDE_WELL_FACTOR)  # [B, N, H, W]
    well_v = tf.where(tf.abs(v - cols) <= well_radius, 1.0, OUTSIDE_WELL_FACTOR)
    d = tf.clip_by_value(tf.cast(well_u * well_v, uvw.dtype) * w_shifted, 0.0, MAX_DEPTH)
    prob = tf.nn.softmax(beta / (d + SOFTMAX_EPS), axis=1)
    in_well = tf.cast(tf.not_equal(d, MAX_DEPTH), uvw.dtype)
    prob = prob * in_well
    prob = prob / (tf.reduce_sum(prob, axis=1, keepdims=True) + RENORM_EPS)
    image = tf.reduce_sum(prob[..., None] * rgb[:, :, None, None, :], axis=1)  # [B, H, W, 3]
    has_point = tf.reduce_sum(in_well, axis=1)[..., None] > 0
    return tf.where(has_point, image, tf.zeros_like(image))


def colour_fast(uvw, rgb, image_size: int, well_radius: int = WELL_RADIUS, beta: float = BETA) -> tf.Tensor:
    """Soft colour image of §5.4 as a per-pixel softmax over the points in the pixel's well.

    Same values and gradients as :func:`colour_faithful`. Each point lies in the well of at most
    (2·well_radius + 1)² pixels: those (i, j) with |u − i| ≤ well_radius and |v − j| ≤ well_radius, all
    within well_radius of (round(u), round(v)), and it is visible there if d = clip(w + 1, 0, 10) ≠ 10.
    Writing l = beta / (d + 1e-5), the baseline's masked and renormalised softmax gives an in-well point
    the weight ``e^{l_n} / (Z_in + 1e-8·Z_all)`` with Z_in = Σ_in e^{l} and Z_all = Z_in +
    (N − n_in)·e^{l_out}, l_out = beta / (10 + 1e-5) being the logit of every point outside the well; this
    is computed exactly with segment max / sum over the pixel ids.

    Args:
        uvw: float tensor [B, N, 3] = (u rows, v columns, w depth).
        rgb: float tensor [B, N, 3].
        image_size: H = W.
        well_radius: half-width of the well in px (int).
        beta: softmax sharpness.

    Returns:
        Tensor [B, H, W, 3], dtype of uvw. Memory O(B·N·(2·well_radius + 1)²).
    """
    uvw = _check_uvw(uvw, "colour_fast")
    check_image_size(image_size, "model/projection.py colour_fast")
    rgb = tf.cast(rgb, uvw.dtype)
    batch, n_points = tf.shape(uvw)[0], tf.shape(uvw)[1]
    rows, du = _window(uvw[..., 0], well_radius)  # [B, N, K1]
    cols, dv = _window(uvw[..., 1], well_radius)
    d = tf.clip_by_value(uvw[..., 2] + DEPTH_SHIFT, 0.0, MAX_DEPTH)  # [B, N]
    logit = beta / (d + SOFTMAX_EPS)
    visible = tf.not_equal(d, MAX_DEPTH)[..., None]  # d == 10: counted as outside every well
    ids = _window_pixel_ids(rows, cols, image_size, keep_rows=(tf.abs(du) <= well_radius) & visible,
                            keep_cols=tf.abs(dv) <= well_radius)
    ids = tf.reshape(ids, [batch, n_points, -1])  # [B, N, K], K = K1²
    entry_logit = tf.broadcast_to(logit[..., None], tf.shape(ids))
    segments = batch * image_size * image_size + 1

    count = tf.math.unsorted_segment_sum(tf.ones_like(entry_logit), ids, segments)  # points in the well
    # The shift cancels in the weights; empty pixels get 0 instead of the segment max's -inf.
    segment_max = tf.math.unsorted_segment_max(tf.stop_gradient(entry_logit), ids, segments)
    shift = tf.where(count > 0, segment_max, tf.zeros_like(segment_max))
    expo = tf.exp(entry_logit - tf.gather(shift, ids))
    z_in = tf.math.unsorted_segment_sum(expo, ids, segments)
    outside = (tf.cast(n_points, uvw.dtype) - count) * tf.exp(beta / (MAX_DEPTH + SOFTMAX_EPS) - shift)
    denominator = z_in + RENORM_EPS * (z_in + outside)
    weight = expo / tf.gather(denominator, ids)  # [B, N, K]
    per_pixel = tf.math.unsorted_segment_sum(weight[..., None] * rgb[:, :, None, :], ids, segments)
    return _pixels_to_image(per_pixel, image_size, batch)


# --------------------------------------------------------------------------------------------- fused


def _fused_op():
    """The module of the Projection op library; RuntimeError with the reason when it is unavailable."""
    lib = loader.load("projection")
    if lib.module is None:
        raise RuntimeError(f"model/projection.py: method 'fused' is unavailable: {lib.reason}")
    return lib.module


def project_fused(uvw, rgb, image_size: int, sigma_sq: float = SIGMA_SQ, well_radius: int = WELL_RADIUS,
                  beta: float = BETA) -> tuple[tf.Tensor, tf.Tensor]:
    """Soft silhouette (§5.3) and soft colour image (§5.4) in one call of the custom op ``Projection``.

    The op evaluates exactly the functions of :func:`silhouette_fast` and :func:`colour_fast` (window of
    ``splat_radius(sigma_sq)``, per-pixel softmax over the well), in float32 or float64, and its registered
    gradient (``ProjectionGrad``) gives the gradients w.r.t. uvw and rgb: the silhouette's w.r.t. u, v and the
    colour image's w.r.t. w and rgb only (none w.r.t. u, v, as in the baseline). A NaN u or v makes the mask
    of its batch element NaN, a NaN w its image, as in the dense form.

    Args:
        uvw: float32 or float64 tensor [B, N, 3] = (u rows, v columns, w depth).
        rgb: float tensor [B, N, C] (cast to the dtype of uvw); C = 0 renders the silhouette alone.
        image_size: H = W.
        sigma_sq: σ² of the silhouette in px² (its window half-width must stay within the op's limit of 32 px,
            i.e. σ² up to about 27 px²).
        well_radius: half-width of the colour well in px (int).
        beta: softmax sharpness.

    Returns:
        (mask [B, H, W], image [B, H, W, C]) in the dtype of uvw. No XLA kernel: not for jit_compile.

    Raises:
        RuntimeError: the op library is not built or failed to load (the message says why).
    """
    uvw = _check_uvw(uvw, "project_fused")
    check_image_size(image_size, "model/projection.py project_fused")
    if uvw.dtype not in (tf.float32, tf.float64):
        raise TypeError(f"model/projection.py project_fused: uvw must be float32 or float64, got {uvw.dtype.name}")
    radius = splat_radius(sigma_sq)
    if radius > MAX_FUSED_SPLAT_RADIUS:
        raise ValueError(f"model/projection.py project_fused: sigma_sq={sigma_sq} needs a {2 * radius + 1}-pixel "
                         f"window, more than the op's {2 * MAX_FUSED_SPLAT_RADIUS + 1}; use method 'fast'")
    params = tf.constant([sigma_sq, beta, DEPTH_SHIFT, MAX_DEPTH, SOFTMAX_EPS, RENORM_EPS], uvw.dtype)
    mask, image, _ = _fused_op().projection(uvw, tf.cast(rgb, uvw.dtype), params, image_size=image_size,
                                            splat_radius=radius, well_radius=well_radius)
    return mask, image


def silhouette_fused(uvw, image_size: int, sigma_sq: float = SIGMA_SQ) -> tf.Tensor:
    """Soft silhouette of §5.3 by the custom op (same values as :func:`silhouette_fast`): [B, H, W]."""
    uvw = _check_uvw(uvw, "silhouette_fused")
    no_colour = tf.zeros(tf.concat([tf.shape(uvw)[:2], [0]], axis=0), uvw.dtype)  # [B, N, 0]
    return project_fused(uvw, no_colour, image_size, sigma_sq)[0]


def colour_fused(uvw, rgb, image_size: int, well_radius: int = WELL_RADIUS, beta: float = BETA) -> tf.Tensor:
    """Soft colour image of §5.4 by the custom op (same values as :func:`colour_fast`): [B, H, W, C]."""
    return project_fused(uvw, rgb, image_size, well_radius=well_radius, beta=beta)[1]


# -------------------------------------------------------------------------------------------- render

_SILHOUETTE = {"fused": silhouette_fused, "fast": silhouette_fast, "faithful": silhouette_faithful}
_COLOUR = {"fused": colour_fused, "fast": colour_fast, "faithful": colour_faithful}


@functools.cache
def _auto_method() -> str:
    """The method "auto" stands for; logs the choice (and why the op is not used) on first call."""
    lib = loader.load("projection")
    if lib.module is None:
        _LOG.info("model.projection: method 'auto' uses the 'fast' TF form: %s", lib.reason)
        return "fast"
    if tf.config.list_physical_devices("GPU") and not lib.cuda:
        _LOG.info("model.projection: method 'auto' uses the 'fast' TF form: the Projection op was built without "
                  "its CUDA kernel and TensorFlow sees a GPU (see `python -m losses.ops.build`)")
        return "fast"
    kernels = "CPU and CUDA kernels" if lib.cuda else "CPU kernel"
    _LOG.info("model.projection: method 'auto' uses the custom op Projection (%s)", kernels)
    return "fused"


def resolve_method(method: str) -> str:
    """The concrete form ("fused", "fast" or "faithful") that ``method`` selects; ValueError if unknown."""
    if method not in METHODS:
        raise ValueError(f"model/projection.py: method must be one of {METHODS}, got {method!r}")
    return _auto_method() if method == "auto" else method


def silhouette(xyz, pose, image_size: int = camera.BASE_IMAGE_SIZE, method: str = "auto",
               sigma_sq: float = SIGMA_SQ) -> tf.Tensor:
    """The soft mask (§5.3) alone of a cloud seen from a pose (as `render(...)["mask"]`).

    Args:
        xyz: float tensor [B, N, 3], world coordinates.
        pose: float tensor [B, 2] = (azimuth, elevation) in radians.
        image_size: H = W.  method: "auto", "fused", "fast" or "faithful".  sigma_sq: σ² in px².

    Returns:
        [B, H, W], dtype of xyz.
    """
    method = resolve_method(method)
    return _SILHOUETTE[method](camera.project(xyz, pose, image_size), image_size, sigma_sq)


def render(xyz, rgb, pose, image_size: int = camera.BASE_IMAGE_SIZE, method: str = "auto",
           sigma_sq: float = SIGMA_SQ) -> dict[str, tf.Tensor]:
    """Project a coloured cloud for a pose: soft mask (§5.3) and colour image (§5.4).

    Args:
        xyz: float tensor [B, N, 3], world coordinates.
        rgb: float tensor [B, N, 3], colours in (0, 1).
        pose: float tensor [B, 2] = (azimuth, elevation) in radians.
        image_size: H = W.
        method: "auto" (default: "fused" when the op is available, else "fast"), "fused", "fast" or
            "faithful" (the baseline's dense form).
        sigma_sq: σ² of the silhouette in px².

    Returns:
        {"mask": [B, H, W], "image": [B, H, W, 3], "uvw": [B, N, 3]}, dtype of xyz.
    """
    method = resolve_method(method)
    uvw = camera.project(xyz, pose, image_size)
    if method == "fused":
        mask, image = project_fused(uvw, rgb, image_size, sigma_sq)
    else:
        mask, image = _SILHOUETTE[method](uvw, image_size, sigma_sq), _COLOUR[method](uvw, rgb, image_size)
    return {"mask": mask, "image": image, "uvw": uvw}
