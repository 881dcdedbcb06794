"""Collapse monitor: does the reconstruction still depend on the image?

Shape legend: P probe images, H = W image size, N points.

A reconstruction net whose ReLU units stop firing for every image outputs the same cloud whatever the image
(the units are "dead": they pass no signal and receive no gradient, so nothing revives them); the cloud is
then the biases of the layers behind them. Under the baseline's run.sh settings this happens within the
first hundred steps (README, "Why training collapses"), and the losses alone do not show it. The monitor
measures it on a fixed probe set (the first P training images), for every ReLU layer of the structure branch
(s1-s7) and of the colour branch (c1-c6):

* ``dead/<layer>``: the share of the layer's units that output 0 (or less) for every probe image; for a
  convolution a unit is a channel, dead when it is 0 at every position of every probe image;
* ``spread/<layer>``: the mean over the layer's units of the standard deviation across probe images of the
  unit's output (a convolution's spatially averaged), i.e. how much the layer's output depends on the image;

and for the predicted clouds:

* ``xyz_spread``: the RMS over points and axes of the standard deviation across probe images of xyz,
  divided by the RMS radius of the mean cloud about its centroid: 0 exactly when every image gives the same
  cloud; measured on the shared real cars (experiments.collapse): 0.004-0.023 at the end of the runs that
  collapsed, 0.056-0.23 for those whose clouds follow the image.

train.py measures every print interval and writes the values, with the mean norm of the recon loss's gradient
w.r.t. the kernels of s1, s4, s5 and s8 over the interval (``grad/<layer>``, model/trainer.py), to
``<exp>/monitor.csv`` and TensorBoard (model/run_logging.py); :func:`summary_line` is what the log shows.
"""

import keras
import numpy as np
import tensorflow as tf

#: ReLU layers of the reconstruction net (model/recon_net.py, baseline §3), in network order.
RELU_LAYERS = ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "c1", "c2", "c3", "c4", "c5", "c6")
#: Below this xyz_spread the cloud is reported as independent of the image: measured on the shared real cars
#: (experiments.collapse), the runs whose clouds collapsed ended at 0.004-0.023 and those that follow the
#: image at 0.056-0.23; a fixed cloud scores 0.
COLLAPSED_SPREAD = 0.03
#: Probe images train.py measures on by default.
DEFAULT_PROBE_IMAGES = 32


class CollapseMonitor:
    """Dead units and across-image spread of the reconstruction net on a fixed probe set.

    Args:
        recon_net: the model of model/recon_net.py (its layers are read, never changed).
        probe_images: float32 ``[P, H, W, 3]`` in [0, 1], P >= 2.
    """

    def __init__(self, recon_net: keras.Model, probe_images):
        probe = tf.convert_to_tensor(probe_images, tf.float32)
        if probe.shape.rank != 4 or probe.shape[0] < 2:
            raise ValueError(f"model/monitor.py: the probe set needs at least 2 images [P, H, W, 3], got "
                             f"shape {probe.shape}")
        self._probe = probe
        outputs = {name: recon_net.get_layer(name).output for name in RELU_LAYERS}
        outputs["xyz"] = recon_net.get_layer("xyz").output
        self._model = keras.Model(recon_net.input, outputs)

    def measure(self) -> dict[str, float]:
        """``dead/<layer>`` and ``spread/<layer>`` for every layer of RELU_LAYERS, and ``xyz_spread``."""
        out = {name: value.numpy() for name, value in self._model(self._probe, training=False).items()}
        stats = {}
        for name in RELU_LAYERS:
            units = out[name].reshape(out[name].shape[0], -1, out[name].shape[-1])  # [P, positions, units]
            stats[f"dead/{name}"] = float(np.mean(units.max(axis=(0, 1)) <= 0.0))
            stats[f"spread/{name}"] = float(np.mean(units.mean(axis=1).std(axis=0)))
        stats["xyz_spread"] = xyz_spread(out["xyz"])
        return stats


def xyz_spread(xyz: np.ndarray) -> float:
    """How much clouds differ across images, relative to their size (module docstring).

    Args:
        xyz: float ``[P, N, 3]`` the clouds predicted for P images.

    Returns:
        RMS over points and axes of the std across the P clouds, divided by the RMS distance of the mean
        cloud's points to its centroid (0 for identical clouds).
    """
    xyz = np.asarray(xyz, np.float64)
    mean = xyz.mean(axis=0)
    radius = np.sqrt(np.mean(np.sum((mean - mean.mean(axis=0)) ** 2, axis=-1)))
    return float(np.sqrt(np.mean(xyz.var(axis=0))) / max(radius, 1e-12))


def summary_line(stats: dict[str, float]) -> str:
    """One log line: dead share of every layer, the bottleneck's spread, the cloud spread, and a warning
    when the cloud no longer depends on the image."""
    dead = " ".join(f"{name} {100 * stats[f'dead/{name}']:.0f}%" for name in RELU_LAYERS)
    grads = " ".join(f"{key[5:]} {value:.3g}" for key, value in stats.items() if key.startswith("grad/"))
    line = (f"monitor: dead units {dead}; s5 spread {stats['spread/s5']:.4f}; "
            f"xyz spread {stats['xyz_spread']:.4f}" + (f"; gradient norms {grads}" if grads else ""))
    if stats["xyz_spread"] < COLLAPSED_SPREAD:
        line += (" -- COLLAPSED: every image gives the same cloud (README, 'Why training collapses'; "
                 "e.g. --dense_init=he, a smaller --lambda_3d)")
    return line
