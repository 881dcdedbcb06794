"""Camera of the baseline: world → camera frame and the pinhole projection to pixels (baseline §5.1–5.2).

Shape legend: B batch, N points, ``...`` any batch shape.

Conventions (baseline §5.1–5.2):
  * World frame = the baseline's render frame. The azimuth rotates about the world x axis, then the
    elevation about the y axis; the camera sits on +z at distance 2 looking toward −z, so visible
    points have z_cam ≈ −2.
  * Pixel coordinates: ``u`` indexes image ROWS and comes from x, ``v`` indexes image COLUMNS and comes
    from y; pixel (i, j) has its centre at (u, v) = (i, j). ``w = |z_cam|`` is the positive depth.
  * Intrinsics: focal 120 px and principal point 32 px at 64×64 (hard-coded in the baseline). Other
    image sizes scale both by ``image_size / 64`` (a deliberate generalisation; at 64 px the values are
    exactly the baseline's).
  * Angles in radians. Every function follows the dtype of its point input (float32 or float64).
"""

import tensorflow as tf

from geometry.checks import check_image_size

CAMERA_DISTANCE = 2.0  # baseline §5.1: d = d_min = 2
BASE_IMAGE_SIZE = 64  # baseline §5.2: the intrinsics below are for 64×64 images
BASE_FOCAL = 120.0  # baseline §5.2: K[0, 0] = K[1, 1]
BASE_CENTRE = 32.0  # baseline §5.2: −K[0, 2] = −K[1, 2]
ELEVATION_RANGE_DEG = (-20.0, 40.0)  # baseline §2.1, §7.9: elevations of the renders and of the random poses


def intrinsics(image_size: int) -> tuple[float, float]:
    """Focal length and principal point (pixels) for a square image (baseline §5.2, scaled).

    Args:
        image_size: side H = W of the image in pixels.

    Returns:
        (focal, centre): ``120 · s / 64`` and ``32 · s / 64`` for s = image_size; exactly (120.0, 32.0)
        at 64 px.
    """
    check_image_size(image_size, "geometry/camera.py intrinsics")
    scale = image_size / BASE_IMAGE_SIZE
    return BASE_FOCAL * scale, BASE_CENTRE * scale


def rotation_matrix(az, el) -> tf.Tensor:
    """World → camera rotation ``R_el(el) · R_az(az)`` (baseline §5.1).

    ``R_az`` rotates about x by the azimuth, ``R_el`` about y by the elevation.

    Args:
        az: float tensor of any shape ``[...]``, azimuth in radians.
        el: float tensor broadcastable with ``az``, elevation in radians.

    Returns:
        Tensor ``[..., 3, 3]`` (dtype of ``az``) acting on column vectors.
    """
    az = tf.convert_to_tensor(az)
    el = tf.cast(el, az.dtype)
    az, el = az + tf.zeros_like(el), el + tf.zeros_like(az)  # broadcast to a common shape
    zero, one = tf.zeros_like(az), tf.ones_like(az)
    ca, sa = tf.cos(az), tf.sin(az)
    ce, se = tf.cos(el), tf.sin(el)
    r_az = tf.stack([tf.stack([one, zero, zero], -1),
                     tf.stack([zero, ca, -sa], -1),
                     tf.stack([zero, sa, ca], -1)], -2)
    r_el = tf.stack([tf.stack([ce, zero, se], -1),
                     tf.stack([zero, one, zero], -1),
                     tf.stack([-se, zero, ce], -1)], -2)
    return tf.linalg.matmul(r_el, r_az)


def world2cam(xyz, az, el, distance: float = CAMERA_DISTANCE) -> tf.Tensor:
    """Points in the world frame → camera frame: ``R_el · R_az · p − (0, 0, d)`` (baseline §5.1).

    Args:
        xyz: float tensor ``[B, N, 3]``, world coordinates.
        az: float tensor ``[B]``, azimuth in radians (cast to the dtype of ``xyz``).
        el: float tensor ``[B]``, elevation in radians (cast to the dtype of ``xyz``).
        distance: camera distance d from the origin along +z.

    Returns:
        Tensor ``[B, N, 3]``, camera coordinates (visible points have z ≈ −d).
    """
    xyz = tf.convert_to_tensor(xyz)
    rot = rotation_matrix(tf.cast(az, xyz.dtype), tf.cast(el, xyz.dtype))  # [B, 3, 3]
    rotated = tf.linalg.matmul(xyz, rot, transpose_b=True)  # row-vector form of R · p
    return rotated - tf.constant([0.0, 0.0, distance], dtype=xyz.dtype)


def perspective_transform(xyz_cam, image_size: int = BASE_IMAGE_SIZE) -> tf.Tensor:
    """Camera coordinates → (u, v, w) pixel coordinates and depth (baseline §5.2).

    With ``K = [[f, 0, −c], [0, f, −c], [0, 0, 1]]`` and ``(a, b, c') = K · (x, y, z)``:
    ``u = a / |z| = (f·x − c·z) / |z|``, ``v = (f·y − c·z) / |z|``, ``w = |z|``; for z < 0 this is
    ``u = c + f·x/|z|``.

    Args:
        xyz_cam: float tensor ``[B, N, 3]``, camera coordinates (z < 0 in front of the camera).
        image_size: side of the square image; sets f and c through :func:`intrinsics`.

    Returns:
        Tensor ``[B, N, 3]`` = (u rows, v columns, w depth), same dtype as ``xyz_cam``.
    """
    focal, centre = intrinsics(image_size)
    x, y, z = tf.unstack(tf.convert_to_tensor(xyz_cam), axis=-1)
    depth = tf.abs(z)
    u = (focal * x - centre * z) / depth
    v = (focal * y - centre * z) / depth
    return tf.stack([u, v, depth], axis=-1)


def project(xyz, pose, image_size: int = BASE_IMAGE_SIZE) -> tf.Tensor:
    """World points → (u, v, w) for a pose: ``perspective_transform(world2cam(xyz, az, el))``.

    Args:
        xyz: float tensor ``[B, N, 3]``, world coordinates.
        pose: float tensor ``[B, 2]`` = (azimuth, elevation) in radians.
        image_size: side of the square image.

    Returns:
        Tensor ``[B, N, 3]`` = (u, v, w), dtype of ``xyz``.
    """
    pose = tf.convert_to_tensor(pose)
    return perspective_transform(world2cam(xyz, pose[..., 0], pose[..., 1]), image_size)
