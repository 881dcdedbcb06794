"""Tests of model/monitor.py: the collapse monitor (dead units, across-image spread) and its logging."""

import csv

import keras
import numpy as np
import pytest

from model import monitor
from model.recon_net import build_recon_net
from model.run_logging import MONITOR_CSV, RunLogger


def _images(n=8, seed=0):
    return np.random.default_rng(seed).random((n, 64, 64, 3)).astype(np.float32)


def test_xyz_spread_golden_and_properties():
    base = np.random.default_rng(1).normal(size=(50, 3))
    assert monitor.xyz_spread(np.stack([base] * 4)) == 0.0
    # two clouds base ± d (d a constant offset): the std across them is |d_axis| per axis, i.e.
    # sqrt(mean_axis d_axis^2) RMS, over the RMS radius of the mean cloud (= base)
    d = np.array([0.3, 0.0, 0.4])
    radius = np.sqrt(np.mean(np.sum((base - base.mean(0)) ** 2, axis=1)))
    expected = np.sqrt(np.mean(d ** 2)) / radius
    assert monitor.xyz_spread(np.stack([base + d, base - d])) == pytest.approx(expected, rel=1e-12)
    # invariant to a common translation, scale-free
    clouds = np.stack([base + d, base - d, base])
    assert monitor.xyz_spread(clouds + 5.0) == pytest.approx(monitor.xyz_spread(clouds), rel=1e-12)
    assert monitor.xyz_spread(3.0 * clouds) == pytest.approx(monitor.xyz_spread(clouds), rel=1e-12)


def test_a_net_with_a_dead_bottleneck_is_reported_collapsed():
    keras.utils.set_random_seed(0)
    net = build_recon_net(dense_init="he")
    alive = monitor.CollapseMonitor(net, _images()).measure()
    assert alive["dead/s5"] < 0.5 and alive["xyz_spread"] > monitor.COLLAPSED_SPREAD
    assert set(alive) == {f"{k}/{n}" for k in ("dead", "spread") for n in monitor.RELU_LAYERS} | {"xyz_spread"}
    assert "COLLAPSED" not in monitor.summary_line(alive)
    # kill every unit of s5 (the baseline's structure bottleneck): nothing of the image reaches the cloud
    kernel, bias = net.get_layer("s5").get_weights()
    net.get_layer("s5").set_weights([kernel, np.full_like(bias, -1e6)])
    dead = monitor.CollapseMonitor(net, _images()).measure()
    assert dead["dead/s5"] == 1.0 and dead["spread/s5"] == 0.0 and dead["spread/s6"] == 0.0
    assert dead["xyz_spread"] == 0.0
    assert dead["dead/s4"] == alive["dead/s4"]  # the layers before are untouched
    assert "COLLAPSED" in monitor.summary_line(dead)


def test_convolution_units_are_channels():
    keras.utils.set_random_seed(0)
    net = build_recon_net()
    kernel, bias = net.get_layer("s1").get_weights()
    bias[:5] = -1e6  # 5 of the 32 channels never fire
    net.get_layer("s1").set_weights([kernel, bias])
    stats = monitor.CollapseMonitor(net, _images()).measure()
    assert stats["dead/s1"] == pytest.approx(5 / 32)


def test_probe_set_needs_two_images():
    with pytest.raises(ValueError, match="at least 2 images"):
        monitor.CollapseMonitor(build_recon_net(), _images(1))


def test_monitor_rows_go_to_csv_a_resume_drops_rows_past_its_checkpoint_and_a_new_run_starts_afresh(tmp_path):
    stats = {"dead/s5": 0.25, "xyz_spread": 0.1, "grad/s1": 2.0}
    logger = RunLogger(tmp_path, 0)
    for step in (100, 200, 300):
        logger.write_monitor(step, {**stats, "dead/s5": step / 1000})
    logger.close()
    logger = RunLogger(tmp_path, 200)  # resumed from the checkpoint of step 200: the row of 300 goes
    logger.write_monitor(300, stats)
    logger.close()
    rows = list(csv.DictReader((tmp_path / MONITOR_CSV).open()))
    assert [int(r["step"]) for r in rows] == [100, 200, 300]
    assert [float(r["dead/s5"]) for r in rows] == [0.1, 0.2, 0.25]
    assert set(rows[0]) == {"step", "dead/s5", "xyz_spread", "grad/s1"}
    RunLogger(tmp_path, 0).close()  # a new run in the same directory
    assert not (tmp_path / MONITOR_CSV).exists()
