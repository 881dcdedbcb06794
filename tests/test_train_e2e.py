"""End-to-end tests of train.py in subprocesses: the run directory, determinism, SIGKILL and resume.

Tiny runs (N = 256 points, P = 2, B = 2) of the run.sh configuration on the tiny_dataset fixture.
"""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model import checkpointing
from model.objective import LOSS_NAMES
from model.run_logging import BASELINE_COLUMNS
from model.trainer import load_for_inference

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _args(data_dir, exp, **overrides):
    flags = {"data_dir": data_dir, "exp": exp, "categ": "all", "N_PTS": 256, "N_PROJ": 2, "batch_size": 2,
             "lr": 1e-3, "seed": 3, "print_n": 1, "save_n": 10, "save_model_n": 10, "N_ITERS": 20}
    flags.update(overrides)
    return [sys.executable, "train.py", "--flagfile=presets/baseline_run.flags"] + [
        f"--{name}={value}" for name, value in flags.items()]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _train(*args, **overrides):
    proc = subprocess.run(_args(*args, **overrides), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _losses(exp):
    with open(Path(exp) / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(row[name]) for name in LOSS_NAMES] for row in rows]), rows


def _optimiser_iterations(path: str, optimiser: str) -> int:
    keys = [k for k, _ in tf.train.list_variables(path) if k.startswith(optimiser) and "iterations" in k]
    assert len(keys) == 1, keys
    return int(tf.train.load_checkpoint(path).get_tensor(keys[0]))


def test_run_directory_and_same_seed_same_losses(tiny_dataset, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _train(tiny_dataset, first)
    _train(tiny_dataset, second)

    # Same seed, same machine: the same 20 steps of every loss (baseline §8 logs, print_n = 1).
    a, rows = _losses(first)
    b, _ = _losses(second)
    assert a.shape == (20, len(LOSS_NAMES)) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert [int(row["step"]) for row in rows] == list(range(1, 21))
    assert all(float(row["steps_per_sec"]) > 0 for row in rows)

    # logs.txt in the baseline's layout: %06d, 8 × %.4f, %04d minutes.
    lines = (first / "logs.txt").read_text().splitlines()
    assert lines[0] == ", ".join(["Iteration"] + [name for name, _ in BASELINE_COLUMNS] + ["Time"])
    assert len(lines) == 21
    assert re.fullmatch(r"000020(, -?\d+\.\d{4}){8}, \d{4}", lines[-1]), lines[-1]
    assert float(lines[-1].split(", ")[1]) == pytest.approx(a[-1, LOSS_NAMES.index("loss_total")], abs=1e-4)

    # The collapse monitor, every print interval: dead units and spread per layer, cloud spread, gradients.
    monitor_rows = list(csv.DictReader((first / "monitor.csv").open()))
    assert [int(row["step"]) for row in monitor_rows] == list(range(1, 21))
    assert {"dead/s5", "spread/s5", "xyz_spread", "grad/s1", "grad/s8"} <= set(monitor_rows[0])
    assert all(0.0 <= float(row["dead/s5"]) <= 1.0 and float(row["grad/s1"]) > 0 for row in monitor_rows)

    # TensorBoard scalars, renders of sample 0 and clouds every save_n steps, flags of the run.
    events = list((first / "logs").glob("events.out.tfevents.*"))
    tags = {v.tag for e in events for ev in tf.compat.v1.train.summary_iterator(str(e)) for v in ev.summary.value}
    assert set(LOSS_NAMES) | {"steps_per_sec", "monitor/dead/s5", "monitor/xyz_spread"} <= tags
    for it in (0, 10):
        images = list((first / "log_proj_images").glob(f"{it}_*.png"))
        assert len(images) == 2 + 2 * 2, images            # input + mask, P = 2 renders × (colour + mask)
        assert len(list((first / "log_proj_pcl").glob(f"{it}_*_pcl.npy"))) == 2
    cloud = np.load(next((first / "log_proj_pcl").glob("10_*_pcl.npy")))
    assert cloud.shape == (256, 3) and np.isfinite(cloud).all()
    flagfile = (first / "flags.txt").read_text().splitlines()
    assert "--N_PTS=256" in flagfile and "--affinity_loss" in flagfile and "--lambda_3d=10000.0" in flagfile

    # Checkpoints (keep 2) and load_for_inference.
    ckpts = sorted(p.name for p in (first / "checkpoints").glob("ckpt-*.index"))
    assert ckpts == ["ckpt-10.index", "ckpt-20.index"]
    recon, pose_net, run = load_for_inference(first)
    assert run.train.n_points == 256 and run.train.n_proj == 2 and run.data_dir == str(tiny_dataset)
    assert run.categories is None and run.split == "train"
    image = tf.zeros([1, 64, 64, 3])
    assert recon(image)["xyz"].shape == (1, 256, 3) and pose_net(image)["pose"].shape == (1, 2)
    recon10, _, _ = load_for_inference(first, step=10)
    assert not np.allclose(recon10(image)["xyz"], recon(image)["xyz"])
    with pytest.raises(FileNotFoundError, match=r"available steps: \[10, 20\]"):
        load_for_inference(first, step=5)
    with pytest.raises(FileNotFoundError, match="config.json nor .*flags.json"):
        load_for_inference(tmp_path)


def test_sigkill_then_restart_resumes(tiny_dataset, tmp_path):
    """Kill -9 during training; the restart resumes from the newest checkpoint with its step counter and
    optimiser state, and finishes."""
    exp = tmp_path / "run"
    proc = subprocess.Popen(_args(tiny_dataset, exp, N_ITERS=100000, print_n=5, save_model_n=5, save_n=100000),
                            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            state = tf.train.get_checkpoint_state(str(exp / "checkpoints"))
            if state and checkpointing.checkpoint_step(state.model_checkpoint_path) >= 10:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-4000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    path = checkpointing.checkpoint_path(exp)
    step = checkpointing.checkpoint_step(path)
    assert step >= 10 and step % 5 == 0
    assert _optimiser_iterations(path, "optim_recon") == step == _optimiser_iterations(path, "optim_pose")

    done = _train(tiny_dataset, exp, N_ITERS=step + 3, print_n=5, save_model_n=5, save_n=100000)
    assert f"resumed from {path}: step {step}, optimiser iterations recon {step} / pose {step}" in done.stderr
    final = checkpointing.checkpoint_path(exp)
    assert checkpointing.checkpoint_step(final) == step + 3
    assert _optimiser_iterations(final, "optim_recon") == step + 3
    assert int(tf.train.load_checkpoint(final).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == step + 3
    assert (exp / "logs.txt").read_text().count("Iteration") == 1   # resumed runs append, no new header
