"""A run's resolved configuration: what train.py records in ``<exp>/config.json`` and every loader reads.

``config.json`` (format 1)::

    {"format_version": 1,
     "train": {TrainConfig fields, the KRO loss's nested under "kro"},
     "data_dir": the data set trained on (resolved: the built-in sample's folder when --data_dir was empty),
     "categories": [category names] or null (every category of the data set),
     "split": the split trained on}

Everything that loads a run (model.trainer.load_for_inference, evaluation, predict.py, make_knn_list.py,
train.py resuming) reads it through :func:`load`, never through flag names. A run directory written before
config.json existed holds only ``flags.json`` (train.py's flags by name); :func:`load` converts it, here and
nowhere else, with the flag vocabulary of :func:`train_config_from_flag_values`, which common_flags.py uses
to build the configuration of a new run from parsed flags.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from data import build
from data.tfrecords import parse_categories
from losses.kro import KroConfig
from model import checkpointing
from model.config import TrainConfig

CONFIG_JSON = "config.json"
FORMAT_VERSION = 1

#: TrainConfig field -> the train.py flag (baseline §9 names) it is set from. ``neighbours`` is set from
#: ``--knn_list`` (a list given or not) and ``kro`` from KRO_CONFIG_FLAGS.
TRAIN_CONFIG_FLAGS = {
    "image_size": "H", "n_points": "N_PTS", "n_proj": "N_PROJ", "bottleneck": "bottleneck", "sigma_sq": "sigma_sq",
    "lr": "lr", "beta1": "beta1", "lambda_ae": "lambda_ae", "lambda_ae_pose": "lambda_ae_pose",
    "lambda_ae_mask": "lambda_ae_mask", "lambda_mask_fwd": "lambda_mask_fwd", "lambda_mask_bwd": "lambda_mask_bwd",
    "lambda_mask_pose": "lambda_mask_pose", "lambda_3d": "lambda_3d", "lambda_pose": "lambda_pose",
    "lambda_symm": "lambda_symm", "mask_loss": "loss", "affinity_loss": "affinity_loss",
    "affinity_form": "affinity_form", "cycle_mode": "_3d_loss_type", "include_last_render": "include_last_render",
    "pose_wrap": "pose_wrap", "symmetry_loss": "symmetry_loss", "symmetry_kind": "symmetry_kind",
    "weight_decay": "weight_decay", "dense_init": "dense_init", "use_gt_pose": "use_gt_pose", "optimise_pose": "optimise_pose",
    "use_gt_pcl": "use_gt_pcl", "gt_type": "gt_type", "lambda_gt": "lambda_gt", "use_mult_proj": "use_mult_proj",
    "projection": "projection", "chamfer_backend": "chamfer_backend", "adam": "adam", "seed": "seed",
    "max_nonfinite": "max_nonfinite",
}
#: KroConfig field -> the train.py flag it is set from.
KRO_CONFIG_FLAGS = {
    "enabled": "k_random_octant_loss", "weight": "lambda_kro", "min_k": "min_k", "max_k": "max_k",
    "variant": "kro_variant", "round_k": "kro_round_k", "squared": "kro_squared", "safe_norm": "kro_safe_norm",
    "cell_penalty": "kro_cell_penalty", "angle_weight": "kro_angle_weight",
}
#: The flag neighbours is set from.
NEIGHBOURS_FLAG = "knn_list"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of one training run.

    Attributes:
        train: the step's configuration.
        data_dir: the data set trained on.
        categories: category names trained on, or None for every category of the data set.
        split: the split trained on.
    """

    train: TrainConfig
    data_dir: str
    categories: tuple[str, ...] | None
    split: str


def train_config_from_flag_values(values: Mapping[str, object]) -> TrainConfig:
    """The TrainConfig that train.py's flags describe.

    Args:
        values: flag name -> value (parsed flags, or an old run's flags.json); a flag that is absent
            leaves its field at the default (which is the flag's default).

    Raises:
        ValueError: inconsistent values (TrainConfig's and KroConfig's checks).
    """
    def fields(names: Mapping[str, str]) -> dict:
        return {field: values[flag] for field, flag in names.items() if flag in values}

    return TrainConfig(**fields(TRAIN_CONFIG_FLAGS), neighbours=bool(values.get(NEIGHBOURS_FLAG)),
                       kro=KroConfig(**fields(KRO_CONFIG_FLAGS)))


def save(exp_dir, run: RunConfig) -> Path:
    """Writes ``<exp_dir>/config.json``; returns its path."""
    path = Path(exp_dir) / CONFIG_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"format_version": FORMAT_VERSION, "train": dataclasses.asdict(run.train), "data_dir": run.data_dir,
               "categories": None if run.categories is None else list(run.categories), "split": run.split}
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def load(exp_dir) -> RunConfig:
    """The configuration of a run: its config.json, or the conversion of its flags.json (older runs).

    Raises:
        FileNotFoundError: neither file (not a run directory of train.py).
        ValueError: a file that does not describe a valid configuration (the message names it).
    """
    path = Path(exp_dir) / CONFIG_JSON
    if path.is_file():
        return _from_config_json(path)
    try:
        values = checkpointing.read_flags(exp_dir)
    except FileNotFoundError:
        raise FileNotFoundError(f"neither {path} nor {Path(exp_dir) / checkpointing.FLAGS_JSON} found: "
                                f"{exp_dir} is not a run directory written by train.py") from None
    return _from_flags_json(values, Path(exp_dir) / checkpointing.FLAGS_JSON)


def _from_config_json(path: Path) -> RunConfig:
    try:
        content = json.loads(path.read_text())
        if content.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {content.get('format_version')!r}, expected {FORMAT_VERSION}")
        train = dict(content["train"])
        categories = content["categories"]
        return RunConfig(train=TrainConfig(**{**train, "kro": KroConfig(**train["kro"])}),
                         data_dir=content["data_dir"], split=content["split"],
                         categories=None if categories is None else tuple(categories))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid run configuration: {err}") from err


def _from_flags_json(values: dict, path: Path) -> RunConfig:
    """The RunConfig of an old run directory, from train.py's flags as its flags.json holds them."""
    missing = [name for name in ("H", "data_views", "data_dir", "categ", "split") if name not in values]
    if missing:
        raise ValueError(f"{path} lacks the flags {missing}, needed to rebuild the run's configuration")
    try:
        train = train_config_from_flag_values(values)
        categories = parse_categories(values["categ"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} does not describe a valid run configuration: {err}") from err
    data_dir = values["data_dir"] or str(build.builtin_out_dir(values["H"], values["data_views"]))
    return RunConfig(train=train, data_dir=data_dir, split=values["split"],
                     categories=None if categories is None else tuple(categories))
