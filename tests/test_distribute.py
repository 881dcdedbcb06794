"""tf.distribute: the step on two (logical CPU) replicas is the step on one device, up to float32 round-off.

Logical devices must be configured before TensorFlow initialises, so the comparison runs in a fresh
Python process (tests/scripts/two_replicas.py): the same seed, batches and configuration (run.sh weights,
tiny size) train three steps under the default strategy and under MirroredStrategy over /cpu:0 and /cpu:1
(B = 2: one sample per replica).

What is guaranteed, and why no more. The two runs compute the same step from bit-identical weights, but not
the same float32 operations: one device runs every kernel on a batch of 2, each replica on a batch of 1, and
a convolution or matrix product (oneDNN or Eigen) picks its blocking, and so its order of summation, by
shape; every mean over the batch is summed in another order too (over 2·H·W pixels at once, or over H·W per
replica and then across replicas). So the first step's losses and summed gradients agree to float32
round-off, no better (measured on an AVX-512 EPYC: losses 5e-7, gradients 1e-5 relative (normwise per
variable), with oneDNN on or off). Adam then divides each gradient element by its own magnitude: the
first update of an element is lr·g/(|g| + ε/√(1−β2)), about ±lr whatever |g| is, so an element whose
gradient is itself at round-off level (a cancellation) moves by up to lr in either direction, and the two
runs' weights can differ there by up to 2·lr after one step, and by more after several (the old form of
this test bounded the share of such elements after three steps; it failed on other CPUs, whose kernels round
differently). So the test checks: bit-identical starting weights; the first step's losses and gradients to
float32 round-off; and every weight after the first step exactly as far from the other run's as Adam's
update of the two measured gradients puts it (plus the float32 rounding of the update itself), so that the
whole weight difference is explained by the gradients' round-off. The later steps start from weights that
differ that way, so their losses are only checked to 1e-3 (measured: 2e-5), which still catches a replica
that misses an update or reads another replica's rows.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.objective import LOSS_NAMES
from model.optimizer import ADAM_BETA2, ADAM_EPSILON
from model.trainer import make_strategy, parse_strategy_mode

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SCRIPT = REPO / "tests" / "scripts" / "two_replicas.py"
LR, BETA1 = 1e-3, 0.9  # the script's learning rate and the default beta_1


def _first_update(m: np.ndarray) -> np.ndarray:
    """The first Adam update lr_t·m/(√v + ε) (model.optimizer.FusedAdam) in float64, from the first moment m
    (float32, = (1 − β1)·g as ResourceApplyAdam rounds it: 1 − β1 in float32)."""
    one_minus_beta1 = float(np.float32(1.0) - np.float32(BETA1))
    g = m.astype(np.float64) / one_minus_beta1
    v = (1.0 - float(np.float32(ADAM_BETA2))) * g * g
    lr_t = LR * np.sqrt(1.0 - ADAM_BETA2) / (1.0 - BETA1)
    return lr_t * m.astype(np.float64) / (np.sqrt(v) + ADAM_EPSILON)


def test_two_replicas_match_one_device_to_round_off(tiny_dataset, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_dataset), str(tmp_path)], cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["one"]["replicas"] == 1 and result["two"]["replicas"] == 2
    assert all(result["one"]["applied"]) and all(result["two"]["applied"])
    first_one, first_two = result["one"]["losses"][0], result["two"]["losses"][0]
    for name in LOSS_NAMES:
        assert first_two[name] == pytest.approx(first_one[name], rel=1e-5, abs=1e-7), name
    for one, two in zip(result["one"]["losses"][1:], result["two"]["losses"][1:]):
        for name in LOSS_NAMES:
            assert two[name] == pytest.approx(one[name], rel=1e-3, abs=1e-6), name

    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    count = len([k for k in one.files if k.startswith("w0_")])
    assert count > 0 and sorted(one.files) == sorted(two.files)
    for i in range(count):
        np.testing.assert_array_equal(two[f"w0_{i}"], one[f"w0_{i}"])  # the same starting point
        g_one, g_two = (run[f"m1_{i}"].astype(np.float64) for run in (one, two))
        assert np.linalg.norm(g_two - g_one) <= 1e-4 * np.linalg.norm(g_one), f"gradient of variable {i}"
        explained = np.abs(_first_update(two[f"m1_{i}"]) - _first_update(one[f"m1_{i}"]))
        rounding = 1e-6 * LR + 2.0 * np.spacing(np.abs(one[f"w1_{i}"])).astype(np.float64)
        moved = np.abs(two[f"w1_{i}"].astype(np.float64) - one[f"w1_{i}"])
        assert (moved <= explained + rounding).all(), \
            f"variable {i}: weights differ by {moved.max():.3g}, Adam on the gradients explains {explained.max():.3g}"


def test_default_strategy_without_gpu_or_tf_config(monkeypatch):
    """'none' is always the default strategy; 'auto' picks it on a machine without GPUs or TF_CONFIG."""
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none") is tf.distribute.get_strategy()
    if not tf.config.list_logical_devices("GPU"):
        assert make_strategy("auto").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="auto"):
        make_strategy("mirrored")


def test_strategy_modes():
    assert [parse_strategy_mode(m) for m in ("auto", "none", "gpu", "gpu:3", "cpu:2")] == \
        [("auto", None), ("none", None), ("gpu", None), ("gpu", 3), ("cpu", 2)]
    for bad in ("cpu", "cpu:0", "gpu:x", "tpu:2", "cpu:-1", ""):
        with pytest.raises(ValueError, match="none of auto, none, gpu, gpu:N, cpu:N"):
            parse_strategy_mode(bad)


def test_single_machine_modes_refuse_what_they_cannot_do(monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(ValueError, match="TF_CONFIG is set"):
        make_strategy("cpu:2")
    monkeypatch.delenv("TF_CONFIG")
    gpus = len(tf.config.list_logical_devices("GPU"))
    with pytest.raises(ValueError, match=f"TensorFlow sees {gpus} GPU"):
        make_strategy(f"gpu:{gpus + 1}")
