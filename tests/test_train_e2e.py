"""End-to-end tests of train.py in subprocesses: the run directory, determinism, SIGKILL and resume.

Tiny runs (N = 256 points, P = 2, B = 2) of the run.sh configuration on the tiny_dataset fixture.
"""

import csv
import json
import os
import re
import signal
import socket
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


def _train_until_killed(ready, poll_seconds: float, *args, **overrides) -> None:
    """Starts train.py (arguments as `_args`), sends it SIGKILL once ``ready()`` holds (polled every
    ``poll_seconds``, for at most 400 s) and checks that the kill, not an exit, ended it."""
    proc = subprocess.Popen(_args(*args, **overrides), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                break
            time.sleep(poll_seconds)
        assert proc.poll() is None, proc.stderr.read()[-4000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_then_restart_resumes(tiny_dataset, tmp_path):
    """Kill -9 during training; the restart resumes from the newest checkpoint with its step counter and
    optimiser state, and finishes."""
    exp = tmp_path / "run"

    def ten_steps_saved():
        state = tf.train.get_checkpoint_state(str(exp / "checkpoints"))
        return state and checkpointing.checkpoint_step(state.model_checkpoint_path) >= 10

    _train_until_killed(ten_steps_saved, 0.2, tiny_dataset, exp, N_ITERS=100000, print_n=5, save_model_n=5,
                        save_n=100000)

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


def _fails(*args, **overrides) -> subprocess.CompletedProcess:
    proc = subprocess.run(_args(*args, **overrides), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def all_train_dataset(tmp_path_factory):
    """Two models built with --split 100/0: an empty test split."""
    from data.build import build_dataset

    out = tmp_path_factory.mktemp("all_train")
    build_dataset(source="builtin", out_dir=out, views=1, image_size=64, n_points=1024, split="100/0",
                  max_models=1)
    return out


@pytest.mark.parametrize("case, overrides, message", [
    ("no data set", {"data_dir": "{tmp}/nowhere"}, "train.py: {tmp}/nowhere/index.json not found"),
    ("empty split", {"data_dir": "{all_train}", "split": "test"},
     "train.py: split 'test' of {all_train} is empty (built with --split 100/0)"),
    ("batch of 0", {"batch_size": 0}, "--batch_size=0"),
    ("negative weight", {"lambda_kro": -1}, "--lambda_kro=-1.0: a loss weight must be >= 0"),
    ("unknown devices", {"distribute": "tpu:2"}, "'tpu:2' is none of auto, none, gpu, gpu:N, cpu:N"),
    ("exp is a file", {"exp": "{tmp}/file"}, "--exp {tmp}/file is a file, not a run directory"),
    ("exp cannot be written", {"exp": "{tmp}/file/run"}, "train.py: cannot write the run directory --exp {tmp}/file/run"),
])
def test_bad_input_stops_with_a_clear_message_before_writing(tiny_dataset, all_train_dataset, tmp_path, case,
                                                             overrides, message):
    (tmp_path / "file").write_text("")
    fill = lambda text: str(text).format(tmp=tmp_path, all_train=all_train_dataset)  # noqa: E731
    flags = {"data_dir": tiny_dataset, "exp": tmp_path / "run", **{k: fill(v) for k, v in overrides.items()}}
    proc = _fails(flags.pop("data_dir"), flags.pop("exp"), **flags)
    assert fill(message) in proc.stderr, proc.stderr[-4000:]
    assert not (tmp_path / "run").exists()  # nothing written (flags.json was, before)


def test_one_writer_per_run_directory(tiny_dataset, tmp_path):
    """A second train.py on a run directory in use stops at once, naming the holder, and writes nothing."""
    from model.run_lock import RunLock

    exp = tmp_path / "run"
    with RunLock(exp):
        proc = _fails(tiny_dataset, exp)
    assert f"is in use by another training process (pid {os.getpid()} on" in proc.stderr
    assert sorted(p.name for p in exp.iterdir()) == ["train.lock"]


def test_resuming_a_damaged_run_configuration_is_refused(tiny_dataset, tmp_path):
    exp = tmp_path / "run"
    _train(tiny_dataset, exp, N_ITERS=2, save_model_n=2)
    (exp / "config.json").write_text('{"format_version": 1, "train": ')
    proc = _fails(tiny_dataset, exp, N_ITERS=4)
    assert f"train.py: cannot resume {exp}: {exp / 'config.json'} is not a valid run configuration" in proc.stderr


def test_a_kill_at_any_step_then_resume_gives_the_uninterrupted_losses(tiny_dataset, tmp_path):
    """Same seed, same machine: a run killed (SIGKILL) between two checkpoints and started again logs exactly the
    losses of the run that was never interrupted, one row per step: the rows the killed process wrote past its
    last checkpoint are dropped, the data order continues where the checkpoint left it (not reshuffled), and
    a half-written checkpoint's folder is deleted."""
    settings = dict(N_ITERS=12, print_n=1, save_model_n=4, save_n=100000)
    _train(tiny_dataset, tmp_path / "whole", **settings)
    whole, _ = _losses(tmp_path / "whole")

    exp = tmp_path / "killed"

    def six_steps_logged():  # past the checkpoint of step 4, before that of step 8
        return (exp / "losses.csv").is_file() and len((exp / "losses.csv").read_text().splitlines()) >= 7

    _train_until_killed(six_steps_logged, 0.05, tiny_dataset, exp, **settings)
    restored = checkpointing.checkpoint_step(checkpointing.checkpoint_path(exp))
    written = len((exp / "losses.csv").read_text().splitlines()) - 1
    assert written > restored, "the kill came at a checkpoint: nothing to drop"
    (exp / "checkpoints" / f"ckpt-{restored + 4}_temp").mkdir()  # as a kill during that save leaves it

    done = _train(tiny_dataset, exp, **settings)
    assert f"deleted ckpt-{restored + 4}_temp" in done.stderr
    resumed, rows = _losses(exp)
    assert [int(row["step"]) for row in rows] == list(range(1, 13))
    np.testing.assert_array_equal(resumed, whole)
    assert len((exp / "logs.txt").read_text().splitlines()) == 13


def test_distribute_cpu_2_trains_on_two_logical_devices(tiny_dataset, tmp_path):
    done = _train(tiny_dataset, tmp_path / "run", N_ITERS=2, save_model_n=2, distribute="cpu:2")
    assert "2 replica(s)" in done.stderr
    assert [int(row["step"]) for row in _losses(tmp_path / "run")[1]] == [1, 2]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_a_multi_worker_run_writes_from_the_chief_only(tiny_dataset, tmp_path):
    """Two workers (MultiWorkerMirroredStrategy over localhost, one CPU replica each) train one run directory:
    every step has one row in losses.csv and logs.txt, the checkpoints are the chief's, and the other worker
    leaves nothing there."""
    exp = tmp_path / "run"
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    procs = [subprocess.Popen(_args(tiny_dataset, exp, N_ITERS=4, save_model_n=2, save_n=2),
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**_env(), "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                      "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    try:
        errors = [proc.communicate(timeout=600)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    assert all("2 replica(s)" in error for error in errors)
    assert [int(row["step"]) for row in _losses(exp)[1]] == [1, 2, 3, 4]
    assert len((exp / "logs.txt").read_text().splitlines()) == 5
    assert sorted(p.name for p in (exp / "checkpoints").glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    assert sorted(p.name for p in exp.iterdir()) == sorted(
        ["checkpoints", "config.json", "flags.json", "flags.txt", "log_proj_images", "log_proj_pcl", "logs",
         "logs.txt", "losses.csv", "losses.png", "monitor.csv", "train.lock"])
