"""The run directory's checkpoints and flag files.

Layout of ``<exp>`` (baseline §8, with the names of this project):

    flags.txt        absl flagfile of every flag of the run (``--flagfile=<exp>/flags.txt`` restores them)
    flags.json       the same as a JSON object (read only to convert a run from before config.json)
    config.json      the run's resolved configuration, what every loader reads (model/run_config.py)
    checkpoints/     ``ckpt-<step>`` of tf.train.Checkpoint(recon_net, pose_net, optim_recon, optim_pose,
                     step, rng); <step> = number of completed training steps

Checkpoints are written by tf.train.CheckpointManager: data files first (into ``<prefix>_temp/``, then
merged), then the ``checkpoint`` state file, so a process killed while saving leaves the previous checkpoint
as the latest one, and possibly a ``ckpt-<step>_temp`` folder, which the next start deletes
(:func:`remove_unfinished`).
"""

import json
import re
import shutil
from pathlib import Path

import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "ckpt"
FLAGS_TXT = "flags.txt"
FLAGS_JSON = "flags.json"
#: The baseline's Saver also kept one checkpoint every 2 hours beyond max_to_keep (§8).
KEEP_EVERY_N_HOURS = 2.0


def write_flags(exp_dir, flagfile_text: str, values: dict) -> None:
    """Write ``flags.txt`` (absl flagfile) and ``flags.json`` into the run directory."""
    exp = Path(exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    (exp / FLAGS_TXT).write_text(flagfile_text)
    (exp / FLAGS_JSON).write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")


def read_flags(exp_dir) -> dict:
    """The flags a run was trained with (``flags.json``).

    Raises:
        FileNotFoundError: ``exp_dir`` holds no flags.json (not a run directory of train.py).
        ValueError: a flags.json that is not a JSON object (damaged); the message names it.
    """
    path = Path(exp_dir) / FLAGS_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {exp_dir} is not a run directory written by train.py")
    try:
        values = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): it is damaged") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} holds a {type(values).__name__}, not the flags of a run")
    return values


def checkpoint_manager(checkpoint: tf.train.Checkpoint, exp_dir, keep: int) -> tf.train.CheckpointManager:
    """Keep-N manager of ``<exp>/checkpoints/ckpt-<step>``."""
    return tf.train.CheckpointManager(checkpoint, str(Path(exp_dir) / CHECKPOINT_DIR), max_to_keep=keep,
                                      keep_checkpoint_every_n_hours=KEEP_EVERY_N_HOURS,
                                      checkpoint_name=CHECKPOINT_NAME)


def remove_unfinished(exp_dir) -> list[str]:
    """Deletes the ``<prefix>_temp`` folders a process killed while saving left in ``<exp>/checkpoints``
    (call it only while holding the run's lock); returns their names."""
    removed = []
    for path in sorted((Path(exp_dir) / CHECKPOINT_DIR).glob(f"{CHECKPOINT_NAME}-*_temp")):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path.name)
    return removed


def save(manager: tf.train.CheckpointManager, step: int) -> str:
    """``manager.save`` of checkpoint ``step``; a write that fails (full disk, read-only or lost folder)
    raises OSError naming the checkpoint folder, whatever TensorFlow's error type.

    Returns:
        The prefix written.
    """
    try:
        return manager.save(checkpoint_number=step)
    except tf.errors.OpError as err:
        raise OSError(f"saving checkpoint {step} into {manager.directory} failed: {err.message}") from None


def checkpoint_step(path: str) -> int:
    """The step number of a checkpoint prefix ``.../ckpt-<step>``."""
    match = re.search(rf"{CHECKPOINT_NAME}-(\d+)$", str(path))
    if not match:
        raise ValueError(f"{path} is not a checkpoint prefix of the form .../{CHECKPOINT_NAME}-<step>")
    return int(match.group(1))


def checkpoint_path(exp_dir, step: int | None = None) -> str:
    """Prefix of the newest checkpoint of a run, or of the one saved at ``step``.

    Raises:
        FileNotFoundError: the run has no checkpoint (or none at ``step``; the message lists those present).
    """
    directory = Path(exp_dir) / CHECKPOINT_DIR
    state = tf.train.get_checkpoint_state(str(directory))
    if state is None or not state.model_checkpoint_path:
        raise FileNotFoundError(f"no checkpoint in {directory}: train first (train.py --exp={exp_dir})")
    if step is None:
        return state.model_checkpoint_path
    available = {checkpoint_step(p): p for p in state.all_model_checkpoint_paths}
    if step not in available:
        raise FileNotFoundError(f"no checkpoint of step {step} in {directory}; available steps: "
                                f"{sorted(available)}")
    return available[step]
