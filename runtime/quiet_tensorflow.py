"""TensorFlow imported with its start-up noise kept off stderr, every other line kept.

Importing TensorFlow and its first look at the devices print lines from C++ on stderr before any logging
setting applies (``TF_CPP_MIN_LOG_LEVEL`` does not reach them), on every start of every program::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. You may see slightly different ...
    I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 00:00:... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU ...
    To enable the following instructions: AVX2 AVX512F ..., in other operations, rebuild TensorFlow ...
    E0000 00:00:... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... (303)

Importing this module imports TensorFlow and lists its physical devices (which probes CUDA; it does not
initialise the runtime, so logical devices can still be configured afterwards) with the process's stderr
(file descriptor 2) sent to a temporary file, then writes back every captured line that is not noise
(:func:`news`): the lines above are noise on a machine without an NVIDIA GPU; where there is one, a CUDA
line is news (a GPU that TensorFlow cannot use) and is kept. TensorFlow's own informational messages after
the start are off too (each run prints some, e.g. "TFRecordDataset `buffer_size` is unspecified" or, at
every checkpoint, "Sharding callback duration"): its C++ log through ``TF_CPP_MIN_LOG_LEVEL=1`` unless the
variable is set, its Python modules' INFO records (on the ``tensorflow`` logger, or on ``absl``'s from a file
of the TensorFlow package) filtered out; warnings and errors all stay. Every CLI of the project imports it first,
before anything imports TensorFlow::

    if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned workers): TensorFlow imported quietly
        import runtime.quiet_tensorflow  # noqa: F401

(``__mp_main__`` is the name a spawned worker process gives the CLI's module when it imports it again.)
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

#: Lines that are noise on any machine (matched against the whole line).
NOISE = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\..*"),
    re.compile(r"I\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized .*"),
    re.compile(r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."),
)
#: Lines of TensorFlow's CUDA probing: noise where the machine has no NVIDIA GPU, news where it has one.
CUDA_PROBING = (
    re.compile(r"[IWE]\d{4} [\d:. ]+\d+ cuda\w*\.cc:\d+\] .*"),
    re.compile(r"[IWE]\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] .*"),
    re.compile(r".*TF-TRT Warning: Could not find TensorRT.*"),
)


class _TensorFlowInfo(logging.Filter):
    """Drops the INFO (and lower) records logged from TensorFlow's own Python files."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}tensorflow{os.sep}" not in record.pathname


def has_nvidia_gpu() -> bool:
    """Whether the machine shows an NVIDIA GPU to its kernel (a device node or a driver entry)."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or any(Path("/proc/driver/nvidia/gpus").glob("*"))


def news(lines, nvidia_gpu: bool) -> list[str]:
    """The lines (with their line ends) that are not noise (module docstring)."""
    noise = NOISE if nvidia_gpu else NOISE + CUDA_PROBING
    return [line for line in lines if not any(p.fullmatch(line.rstrip("\r\n")) for p in noise)]


@contextlib.contextmanager
def _stderr_captured():
    """Sends file descriptor 2 (C++ and Python alike) to a temporary file; yields that file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def start() -> None:
    """Imports TensorFlow and probes its devices with the noise kept off stderr (once per process)."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    captured = []
    try:
        with _stderr_captured() as capture:
            try:
                import tensorflow as tf

                for logger in (tf.get_logger(), logging.getLogger("absl")):
                    logger.addFilter(_TensorFlowInfo())
                tf.config.list_physical_devices()
            finally:
                capture.seek(0)
                captured = capture.read().decode(errors="replace").splitlines(keepends=True)
    finally:  # also when the import fails: what it printed explains why
        sys.stderr.write("".join(news(captured, has_nvidia_gpu())))
        sys.stderr.flush()

start()
