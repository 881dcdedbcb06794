"""TensorFlow's start-up noise is kept off the CLIs' stderr, and every other line kept (runtime/quiet_tensorflow.py;
tests/test_layering.py checks that every CLI imports it first)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import quiet_tensorflow
from runtime.quiet_tensorflow import has_nvidia_gpu, news

REPO = Path(__file__).resolve().parents[1]

#: What TensorFlow 2.21 prints when it starts on a CPU-only machine (TF_CPP_MIN_LOG_LEVEL unset).
START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796423694.101630   25708 port.cc:153] oneDNN custom operations are on. You may see slightly \
different numerical results due to floating-point round-off errors from different computation orders. To turn \
them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1796423694.101907   25708 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will \
not be used.
I0000 00:00:1796423694.142136   25708 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use \
available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, rebuild \
TensorFlow with the appropriate compiler flags.
E0000 00:00:1796423696.898394   25708 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed \
call to cuInit: UNKNOWN ERROR (303)
"""
#: Lines that are news and must stay.
NEWS = """\
E0000 00:00:1796423697.000000   25708 op_kernel.cc:1857] OP_REQUIRES failed at save_restore_v2_ops.cc:1: \
No space left on device
Traceback (most recent call last):
ValueError: something the user must read
"""
CUDA_LINES = [line for line in START_UP.splitlines(keepends=True) if "cuda" in line]


def test_start_up_noise_goes_and_news_stays():
    assert news((START_UP + NEWS).splitlines(keepends=True), nvidia_gpu=False) == NEWS.splitlines(keepends=True)


def test_cuda_lines_are_news_on_a_machine_with_an_nvidia_gpu():
    kept = news((START_UP + NEWS).splitlines(keepends=True), nvidia_gpu=True)
    assert kept == CUDA_LINES + NEWS.splitlines(keepends=True) and len(CUDA_LINES) == 2


@pytest.mark.parametrize("path, level, kept", [
    ("site-packages/tensorflow/python/checkpoint/functional_saver.py", logging.INFO, False),
    ("site-packages/tensorflow/python/checkpoint/functional_saver.py", logging.WARNING, True),
    ("model/trainer.py", logging.INFO, True),
])
def test_tensorflows_own_info_records_are_dropped(path, level, kept):
    record = logging.LogRecord("absl", level, os.path.join(os.sep, *path.split("/")), 1, "message", None, None)
    assert quiet_tensorflow._TensorFlowInfo().filter(record) == kept


@pytest.mark.slow
def test_a_cli_start_prints_no_noise_and_its_error(tmp_path):
    """eval.py on a folder that is no run: TensorFlow starts and probes the devices, the CLI fails; stderr holds
    the failure and none of TensorFlow's start-up lines."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "eval.py", f"--exp={tmp_path / 'nowhere'}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "is not a run directory written by train.py" in proc.stderr
    noise = ["absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "To enable the following"]
    if not has_nvidia_gpu():
        noise += ["cuInit", "cudart_stub", "cuda_platform"]
    assert [line for line in proc.stderr.splitlines() if any(n in line for n in noise)] == []
