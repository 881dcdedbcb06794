"""Input checks shared by the layers: image sizes and point clouds, with errors that name the caller.

Shape legend: N points; clouds are row arrays ``[N, 3]``.
"""

import numpy as np


def check_image_size(image_size, where: str) -> None:
    """Raises ValueError unless ``image_size`` (H = W in pixels) is a positive int (bool excluded).

    Args:
        image_size: the value to check.
        where: the caller, named in the error (e.g. "geometry/camera.py intrinsics").
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"{where}: image_size must be a positive int, got {image_size!r}")


def check_cloud(points, where: str, name: str = "cloud") -> np.ndarray:
    """A non-empty, finite ``[N, 3]`` cloud as float64 (NumPy).

    Args:
        points: array-like ``[N, 3]``.
        where: the caller, named in the error (e.g. "metrics").
        name: the argument, named in the error.

    Returns:
        float64 ``[N, 3]``.

    Raises:
        ValueError: another shape, no point, or a NaN / Inf coordinate.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise ValueError(f"{where}: {name} must be a non-empty [N, 3] cloud, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{where}: {name} contains non-finite coordinates")
    return points.astype(np.float64)
