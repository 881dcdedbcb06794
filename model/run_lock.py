"""One training process per run directory: an exclusive lock on ``<exp>/train.lock``.

train.py takes it before it writes anything into ``--exp`` and holds it until it exits. The lock is the
operating system's (``flock``), tied to the open file: a process that ends in any way, SIGKILL included,
releases it, so a killed run never leaves it stuck; a second process finds it taken and stops with a
message naming the holder (process id, host and start time, written into the file by the holder).
"""

import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_FILE = "train.lock"


class RunInUseError(RuntimeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """The lock of one run directory (a context manager; :meth:`acquire` creates the directory).

    Args:
        exp_dir: the run directory.
    """

    def __init__(self, exp_dir):
        self.path = Path(exp_dir) / LOCK_FILE
        self._file = None

    def acquire(self) -> "RunLock":
        """Takes the lock without waiting.

        Raises:
            RunInUseError: another process holds it (the message names it).
            OSError: the directory or the lock file cannot be written (read-only, full, not a folder).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not written its name yet"
            file.close()
            raise RunInUseError(f"{self.path.parent} is in use by another training process ({holder}): wait "
                                "for it to end, or give another --exp") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        """Gives the lock back (the file stays: deleting it would race with a process opening it)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
