"""K-Random-Octant (KRO) loss of the follow-up study (mission.md "K Random Octant"; baseline §11.1).

Shape legend: B batch, N gt points, M predicted points (N and M may differ), K = max_k (static grid
side), C = K³ grid cells of which the first k per axis are used. Clouds are float ``[B, ·, 3]``.

The construction shared by every variant, per cloud:

1. the axis-aligned bounding box [lo, hi] is cut along each axis into k segments (equal for the study's
   KRO; random widths for ``random_partition``), giving k³ cells ordered x outermost, z innermost;
2. the anchor a_m of cell m is the cloud point nearest to the cell's centre;
3. the centre point o is the cloud point nearest to the bounding-box centre (lo + hi) / 2.

Variants (``variant=``):

* ``faithful`` — the authors' code (FORK ``get_k_random_octant_loss``): s(P) = Σ_m ‖a_m − o‖₂ over all
  k³ cells, empty cells included, anchors searched over the whole cloud, and the SIGNED
  ``loss = mean_b[s(gt_b) − s(pred_b)]``. Minimising it spreads the prediction without bound (scaling
  pred by α gives s(gt) − α·s(pred) → −∞). ``squared=True`` sums ‖a_m − o‖² instead, as the report's
  formula writes it. The code's ``tf.norm`` has a NaN gradient at 0, which every odd k hits (the middle
  cell's centre is the bbox centre, so its anchor is o itself); ``safe_norm=True`` removes that NaN,
  the default reproduces it.
* ``sound`` — bounded, scale-normalised per-cell comparison: s_m(P) = ‖a_m − o‖₂ / diag(P) with diag
  the bbox diagonal (so s_m ∈ [0, 1] and the loss is translation and scale invariant), anchors searched
  among the points inside their cell, cells empty in either cloud masked out, and
  ``loss = mean_b mean_{valid m} |s_m(gt) − s_m(pred)|`` (``cell_penalty="squared"``: squared). In
  [0, 1], finite with finite gradients on degenerate clouds (one point repeated, flat, micrometre scale).
* ``random_partition`` (study's future work) — ``sound`` with k randomly sized segments per axis
  (uniform spacings: the k − 1 cuts are uniform on the axis), the same fractions for gt_b and pred_b.
* ``anchor_angle`` (study's future work) — ``sound`` + ``angle_weight`` × the mean over valid cells
  and axes of |θ_i(gt) − θ_i(pred)| / π, θ_i the angle between a_m − o and axis i.

k is drawn by ``sample_k`` inside the compiled step; ``kro_loss`` accepts it as a tensor and masks a
static K³ grid, so one trace serves every k ≤ K (no Python loop over cells or batch; static shapes, so
XLA-compatible). Memory O(B·N·K³) for the nearest-point searches. Gradients reach
the clouds through the gathered anchor / centre points (the nearest-point searches are index searches
without gradient) and, for the normalised variants, through the bounding box.
"""

import dataclasses
import math

import tensorflow as tf

from geometry.nearest import nearest_index
from geometry.safe_ops import safe_divide, safe_norm

VARIANTS = ("faithful", "sound", "random_partition", "anchor_angle")
CELL_PENALTIES = ("abs", "squared")


def sample_k(max_k: int, min_k: int = 1, generator: tf.random.Generator | None = None,
             round_continuous: bool = False) -> tf.Tensor:
    """Draw the number of segments per axis, k, as a tensor (mission.md step 1).

    Drawn from ``generator`` each time it runs, so inside a ``tf.function`` every step gets a fresh k
    without retracing (the fork drew k once when building the graph, baseline §11.1).

    Args:
        max_k: largest k (``--max_k``).
        min_k: smallest k.
        generator: the step's ``tf.random.Generator`` (its state lives in the checkpoint).
        round_continuous: draw k = round(U(min_k, max_k)) like the fork's
            ``int(round(np.random.uniform(min_k, max_k)))`` (end values half as likely) instead of a
            uniform integer in [min_k, max_k].

    Returns:
        int32 scalar tensor in [min_k, max_k].
    """
    if generator is None:
        raise ValueError("losses.kro.sample_k: pass the step's tf.random.Generator")
    if not 1 <= min_k <= max_k:
        raise ValueError(f"losses.kro.sample_k: need 1 <= min_k <= max_k, got {min_k}, {max_k}")
    if round_continuous:
        u = generator.uniform([], float(min_k), float(max_k), dtype=tf.float32)
        return tf.cast(tf.round(u), tf.int32)
    return generator.uniform([], min_k, max_k + 1, dtype=tf.int32)


class _Partition:
    """Per-axis segments of the bounding box as fractions of its extent, on a static K-wide grid.

    Attributes:
        centres: float ``[B, 3, K]`` segment centres in [0, 1] (entries ≥ k unused).
        cuts: float ``[B, 3, K − 1]`` interior cuts; +inf beyond the k − 1 used ones.
        cell_valid: bool ``[C]``, True for the k³ cells (p, q, r < k), index m = p·K² + q·K + r.
    """

    def __init__(self, k: tf.Tensor, max_k: int, batch: tf.Tensor, dtype,
                 seed: tf.Tensor | None = None):
        seg = tf.range(max_k)
        seg_valid = seg < k                                                            # [K]
        if seed is None:
            widths = tf.ones([batch, 3, max_k], dtype)
        else:   # uniform spacings: normalised exponential draws (= k − 1 sorted uniform cuts);
            # minval > 0 keeps −log(u) finite
            u = tf.random.stateless_uniform([batch, 3, max_k], seed, minval=1e-6, maxval=1.0, dtype=dtype,
                                            alg="philox")       # same draws with and without XLA
            widths = -tf.math.log(u)
        widths = widths * tf.cast(seg_valid, dtype)
        widths = widths / tf.reduce_sum(widths, axis=-1, keepdims=True)               # [B, 3, K]
        right = tf.cumsum(widths, axis=-1)
        self.centres = right - widths / 2.0
        self.cuts = tf.where(seg[:-1] < k - 1, right[..., :-1], tf.constant(math.inf, dtype))
        self.max_k = max_k
        self.cell_valid = tf.reshape(seg_valid[:, None, None] & seg_valid[None, :, None]
                                     & seg_valid[None, None, :], [-1])

    def cell_centres(self, lo: tf.Tensor, hi: tf.Tensor) -> tf.Tensor:
        """Cell centres in world coordinates, float ``[B, C, 3]``, from bbox corners ``[B, 3]``."""
        return lo[:, None, :] + self._grid_fractions() * (hi - lo)[:, None, :]

    def _grid_fractions(self) -> tf.Tensor:
        """Fractional centre of every cell, ``[B, C, 3]``."""
        k = self.max_k
        cx = tf.broadcast_to(self.centres[:, 0, :, None, None], [tf.shape(self.centres)[0], k, k, k])
        cy = tf.broadcast_to(self.centres[:, 1, None, :, None], tf.shape(cx))
        cz = tf.broadcast_to(self.centres[:, 2, None, None, :], tf.shape(cx))
        return tf.reshape(tf.stack([cx, cy, cz], axis=-1), [-1, k * k * k, 3])

    def cell_of(self, points: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor) -> tf.Tensor:
        """Cell index m of every point, int32 ``[B, N]`` (a zero-extent axis puts all in segment 0)."""
        frac = safe_divide(points - lo[:, None, :], tf.broadcast_to((hi - lo)[:, None, :], tf.shape(points)))
        seg = tf.reduce_sum(tf.cast(frac[..., None] >= self.cuts[:, None, :, :], tf.int32), axis=-1)
        k = self.max_k
        return seg[..., 0] * k * k + seg[..., 1] * k + seg[..., 2]


def _cloud_anchors(points: tf.Tensor, partition: _Partition, in_cell: bool):
    """Anchors, centre point and bbox of one cloud.

    Args:
        points: float ``[B, N, 3]``.
        partition: the cells.
        in_cell: search each anchor among the points inside its cell (sound) or the whole cloud (faithful).

    Returns:
        anchors float ``[B, C, 3]``, centre point float ``[B, 3]``, occupied bool ``[B, C]``,
        bbox diagonal float ``[B]``.
    """
    lo = tf.reduce_min(points, axis=1)
    hi = tf.reduce_max(points, axis=1)
    centres = partition.cell_centres(lo, hi)                                     # [B, C, 3]
    n_cells = partition.max_k ** 3
    if in_cell:
        inside = tf.equal(tf.range(n_cells)[None, :, None], partition.cell_of(points, lo, hi)[:, None, :])
        occupied = tf.reduce_any(inside, axis=2)                                 # [B, C]
        anchor_idx = nearest_index(centres, points, inside)                      # inside: [B, C, N]
    else:
        occupied = tf.ones([tf.shape(points)[0], n_cells], tf.bool)
        anchor_idx = nearest_index(centres, points)
    anchors = tf.gather(points, anchor_idx, batch_dims=1)                        # [B, C, 3]
    centre_idx = nearest_index(((lo + hi) / 2.0)[:, None, :], points)[:, 0]      # [B]
    centre_point = tf.gather(points, centre_idx, batch_dims=1)                   # [B, 3]
    return anchors, centre_point, occupied, safe_norm(hi - lo)


def _faithful(gt, pred, partition: _Partition, squared: bool, safe: bool) -> tf.Tensor:
    """mean_b[s(gt) − s(pred)], s = Σ over the k³ cells of ‖a_m − o‖ (or its square)."""
    def score(points):
        anchors, centre, _, _ = _cloud_anchors(points, partition, in_cell=False)
        valid = partition.cell_valid[None, :, None]
        vec = tf.where(valid, anchors - centre[:, None, :], tf.ones_like(anchors))   # unused cells: ≠ 0
        if squared:
            dist = tf.reduce_sum(tf.square(vec), axis=-1)
        elif safe:
            dist = safe_norm(vec)
        else:
            dist = tf.norm(vec, axis=-1)                                          # FORK's tf.norm
        return tf.reduce_sum(dist * tf.cast(partition.cell_valid, dist.dtype), axis=-1)   # [B]
    return tf.reduce_mean(score(gt) - score(pred))


def _axis_angles(vec: tf.Tensor) -> tf.Tensor:
    """Angles in [0, π] between ``vec`` ``[..., 3]`` and the x, y, z axes, ``[..., 3]``; 0 for vec = 0."""
    nonzero = tf.reduce_any(tf.not_equal(vec, 0), axis=-1, keepdims=True)
    v = tf.where(nonzero, vec, tf.ones_like(vec))
    angles = []
    for axis in range(3):
        others = tf.concat([v[..., :axis], v[..., axis + 1:]], axis=-1)
        angles.append(tf.atan2(safe_norm(others), v[..., axis]))
    return tf.where(nonzero, tf.stack(angles, axis=-1), tf.zeros_like(vec))


def _sound(gt, pred, partition: _Partition, cell_penalty: str, angle_weight: float | None) -> tf.Tensor:
    """Scale-normalised per-cell comparison over cells occupied in both clouds (+ optional angles)."""
    gt_anchors, gt_centre, gt_occ, gt_diag = _cloud_anchors(gt, partition, in_cell=True)
    pr_anchors, pr_centre, pr_occ, pr_diag = _cloud_anchors(pred, partition, in_cell=True)
    gt_vec = gt_anchors - gt_centre[:, None, :]
    pr_vec = pr_anchors - pr_centre[:, None, :]
    diff = (safe_divide(safe_norm(gt_vec), gt_diag[:, None])
            - safe_divide(safe_norm(pr_vec), pr_diag[:, None]))               # [B, C]
    if cell_penalty == "abs":
        per_cell = tf.abs(diff)
    elif cell_penalty == "squared":
        per_cell = tf.square(diff)
    else:
        raise ValueError(f"losses.kro.kro_loss: unknown cell_penalty {cell_penalty!r} (expected one of "
                         f"{CELL_PENALTIES})")
    if angle_weight is not None:
        angle_gap = tf.abs(_axis_angles(gt_vec) - _axis_angles(pr_vec))       # [B, C, 3]
        per_cell = per_cell + angle_weight * tf.reduce_mean(angle_gap, axis=-1) / math.pi
    mask = tf.cast(gt_occ & pr_occ & partition.cell_valid[None, :], per_cell.dtype)
    per_cloud = safe_divide(tf.reduce_sum(per_cell * mask, axis=-1), tf.reduce_sum(mask, axis=-1))
    return tf.reduce_mean(per_cloud)


def _static_max_k(k, max_k: int | None) -> int:
    """The static grid side K: ``max_k``, or k itself when k is a Python int / constant tensor."""
    if max_k is None:
        max_k = tf.get_static_value(k)
        if max_k is None:
            raise ValueError("losses.kro.kro_loss: k is a tensor drawn at run time; pass max_k "
                             "(the static grid side, e.g. --max_k)")
    return int(max_k)


def _stateless_seed(seed) -> tf.Tensor:
    """A shape-[2] int32 stateless seed from an int or a tensor (e.g. ``generator.make_seeds(1)[:, 0]``)."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return tf.cast(seed, tf.int32)


def kro_loss(gt: tf.Tensor, pred: tf.Tensor, k, variant: str = "faithful", seed=None,
             max_k: int | None = None, squared: bool = False, safe_norm: bool = False,
             cell_penalty: str = "abs", angle_weight: float = 1.0) -> tf.Tensor:
    """KRO loss between a reference cloud and a prediction (mission.md; baseline §11.1).

    Args:
        gt: float ``[B, N, 3]`` reference cloud: the GT cloud, or the pseudo ground truth (the first
            reconstruction) when no GT is used, as the study did.
        pred: float ``[B, M, 3]`` predicted cloud.
        k: segments per axis: Python int, or int32 scalar tensor from ``sample_k`` (then ``max_k``).
        variant: "faithful", "sound", "random_partition" or "anchor_angle" (module docstring).
        seed: random_partition only: int or int32 ``[2]`` stateless seed (e.g.
            ``generator.make_seeds(1)[:, 0]`` inside the step).
        max_k: static upper bound of k (grid side K); defaults to k when k is static.
        squared: faithful only: sum squared anchor distances (the report's formula) instead of the
            code's unsquared ones.
        safe_norm: faithful only: zero instead of NaN gradient where an anchor is the centre point.
        cell_penalty: sound variants: "abs" or "squared" per-cell difference.
        angle_weight: anchor_angle only: weight of the angle regulariser.

    Returns:
        Scalar loss (faithful: unbounded, signed; other variants: in [0, 1 + angle_weight]).
    """
    if variant not in VARIANTS:
        raise ValueError(f"losses.kro.kro_loss: unknown variant {variant!r} (expected one of {VARIANTS})")
    gt = tf.convert_to_tensor(gt)
    pred = tf.convert_to_tensor(pred, gt.dtype)
    grid = _static_max_k(k, max_k)
    if isinstance(k, int) and not 1 <= k <= grid:
        raise ValueError(f"losses.kro.kro_loss: need 1 <= k <= max_k, got k={k}, max_k={grid}")
    k = tf.convert_to_tensor(k, tf.int32)
    if variant == "random_partition":
        if seed is None:
            raise ValueError("losses.kro.kro_loss: variant random_partition needs a seed")
        partition = _Partition(k, grid, tf.shape(gt)[0], gt.dtype, _stateless_seed(seed))
    else:
        partition = _Partition(k, grid, tf.shape(gt)[0], gt.dtype)
    if variant == "faithful":
        return _faithful(gt, pred, partition, squared, safe_norm)
    return _sound(gt, pred, partition, cell_penalty,
                  angle_weight if variant == "anchor_angle" else None)


@dataclasses.dataclass(frozen=True)
class KroConfig:
    """The KRO loss of one training run (``--k_random_octant_loss``, ``--lambda_kro``, ``--min_k``, ``--max_k``
    and the ``--kro_*`` flags), passed whole from the run's configuration to the step.

    Attributes:
        enabled: add the loss to the recon loss.
        weight: its weight there.
        min_k, max_k: k is drawn in [min_k, max_k] every step (:func:`sample_k`); max_k is the static grid side.
        variant: one of VARIANTS (:func:`kro_loss`).
        round_k: draw k = round(U(min_k, max_k)) like the fork (ends half as likely).
        squared: faithful: squared anchor distances (the report's formula).
        safe_norm: faithful: no NaN gradient where an anchor is the centre point.
        cell_penalty: sound variants: one of CELL_PENALTIES per-cell difference.
        angle_weight: anchor_angle: weight of the angle regulariser.
    """

    enabled: bool = False
    weight: float = 1.0
    min_k: int = 1
    max_k: int = 4
    variant: str = "faithful"
    round_k: bool = False
    squared: bool = False
    safe_norm: bool = False
    cell_penalty: str = "abs"
    angle_weight: float = 1.0

    def __post_init__(self):
        for name, allowed in (("variant", VARIANTS), ("cell_penalty", CELL_PENALTIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"KroConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 1 <= self.min_k <= self.max_k:
            raise ValueError(f"KRO needs 1 <= min_k <= max_k, got min_k={self.min_k}, max_k={self.max_k}")

    @property
    def needs_seed(self) -> bool:
        """The variant draws random cuts (random_partition): the step passes it a stateless seed."""
        return self.variant == "random_partition"

    def draw_k(self, generator: tf.random.Generator) -> tf.Tensor:
        """This step's k, an int32 scalar tensor (:func:`sample_k`)."""
        return sample_k(self.max_k, min_k=self.min_k, generator=generator, round_continuous=self.round_k)

    def loss(self, gt: tf.Tensor, pred: tf.Tensor, k: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """:func:`kro_loss` with this configuration (``seed`` is used only when :attr:`needs_seed`)."""
        return kro_loss(gt, pred, k, variant=self.variant, max_k=self.max_k,
                        seed=seed if self.needs_seed else None, squared=self.squared, safe_norm=self.safe_norm,
                        cell_penalty=self.cell_penalty, angle_weight=self.angle_weight)
