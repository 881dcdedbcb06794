"""The run directory's reliability: one writer (model/run_lock.py), a killed save's leftovers, damaged files."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model import checkpointing, run_config
from model.run_lock import LOCK_FILE, RunInUseError, RunLock

REPO = Path(__file__).resolve().parents[1]


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunInUseError, match=f"run is in use by another training process \\(pid {os.getpid()} on "):
            RunLock(tmp_path / "run").acquire()
    RunLock(tmp_path / "run").acquire().release()  # given back


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    """SIGKILL gives no chance to clean up; the operating system releases the lock with the process."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom model.run_lock import RunLock\n"
                               f"lock = RunLock({str(tmp_path)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(600)"],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUseError, match=f"pid {holder.pid}"):
            RunLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        holder.kill()
        holder.stdout.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            RunLock(tmp_path).acquire().release()
            break
        except RunInUseError:
            assert time.monotonic() < deadline, "the lock of a killed process stayed taken"
            time.sleep(0.1)
    assert (tmp_path / LOCK_FILE).is_file()


def test_a_lock_that_cannot_be_written_raises_oserror(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        RunLock(tmp_path / "file" / "run").acquire()


def test_the_leftovers_of_a_killed_save_are_deleted(tmp_path):
    folder = tmp_path / checkpointing.CHECKPOINT_DIR
    (folder / "ckpt-7_temp").mkdir(parents=True)
    (folder / "ckpt-7_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    (folder / "ckpt-5.index").write_bytes(b"kept")
    assert checkpointing.remove_unfinished(tmp_path) == ["ckpt-7_temp"]
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-5.index"]
    assert checkpointing.remove_unfinished(tmp_path / "elsewhere") == []


@pytest.mark.parametrize("content", ["{\"H\": 64,", "[1, 2]"])
def test_a_damaged_flags_json_is_named(tmp_path, content):
    (tmp_path / checkpointing.FLAGS_JSON).write_text(content)
    with pytest.raises(ValueError, match="flags.json"):
        checkpointing.read_flags(tmp_path)
    with pytest.raises(ValueError, match="flags.json"):
        run_config.load(tmp_path)
