"""tf.distribute: the step on two (logical CPU) replicas equals the step on one device.

Logical devices must be configured before TensorFlow initialises, so the comparison runs in a fresh
Python process (tests/scripts/two_replicas.py): the same seed, batches and configuration (run.sh weights,
tiny size) train three steps under the default strategy and under MirroredStrategy over /cpu:0 and /cpu:1
(B = 2: one sample per replica); the losses and the resulting weights must agree to float32 round-off.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.objective import LOSS_NAMES
from model.trainer import make_strategy

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SCRIPT = REPO / "tests" / "scripts" / "two_replicas.py"


def test_two_replicas_match_one_device(tiny_dataset, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_dataset), str(tmp_path)], cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["one"]["replicas"] == 1 and result["two"]["replicas"] == 2
    assert all(result["one"]["applied"]) and all(result["two"]["applied"])
    for one, two in zip(result["one"]["losses"], result["two"]["losses"]):
        for name in LOSS_NAMES:
            assert two[name] == pytest.approx(one[name], rel=1e-4, abs=1e-6), name
    # Weights: Adam's update lr·m̂/√v̂ is ±lr for any gradient, however small, so an element whose
    # gradient is at round-off level may move differently (by at most 2·lr per step); all but 0.1 %
    # of the 5.3M elements must agree to float32 round-off (measured: 0.02 %).
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert len(one.files) == len(two.files) > 0
    a = np.concatenate([one[k].ravel() for k in one.files])
    b = np.concatenate([two[k].ravel() for k in one.files])
    assert np.mean(~np.isclose(b, a, rtol=1e-4, atol=1e-6)) < 1e-3


def test_default_strategy_without_gpu_or_tf_config(monkeypatch):
    """'none' is always the default strategy; 'auto' picks it on a machine without GPUs or TF_CONFIG."""
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none") is tf.distribute.get_strategy()
    if not tf.config.list_logical_devices("GPU"):
        assert make_strategy("auto").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="auto"):
        make_strategy("mirrored")
