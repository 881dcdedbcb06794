"""A run's configuration (model/run_config.py): config.json round trip, old runs with only flags.json."""

import json

import numpy as np
import pytest
import tensorflow as tf

from data import build
from losses.kro import KroConfig
from model import checkpointing, run_config
from model.config import TrainConfig
from model.run_config import RunConfig
from model.trainer import build_networks, load_for_inference

#: flags.json as train.py wrote it before config.json existed (every flag by name; written by hand here).
OLD_FLAGS = {
    "exp": "runs/old", "gpu": "1", "dataset": "shapenet_train", "use_gt_pose": False, "optimise_pose": True,
    "overfit": False, "load_model": False, "affinity_loss": True, "symmetry_loss": False, "loss": "bce_prob",
    "_3d_loss_type": "adj_model", "N_ITERS": 30, "batch_size": 2, "H": 64, "W": 64, "bottleneck": 128,
    "N_PTS": 256, "N_PROJ": 4, "categ": "car, chair", "sigma_sq": 0.4, "lr": 0.0005, "beta1": 0.9,
    "print_n": 10, "save_n": 10, "save_model_n": 10, "lambda_ae": 100.0, "lambda_ae_pose": 1.0,
    "lambda_ae_mask": 100.0, "lambda_mask_fwd": 0.0001, "lambda_mask_bwd": 0.0001, "lambda_mask_pose": 1.0,
    "lambda_3d": 10000.0, "lambda_pose": 1.0, "lambda_symm": 0.0, "use_mult_proj": False,
    "affinity_form": "closed", "include_last_render": False, "pose_wrap": True, "symmetry_kind": "main",
    "weight_decay": False, "k_random_octant_loss": True, "lambda_kro": 0.5, "max_k": 3, "min_k": 2,
    "kro_variant": "sound", "kro_round_k": False, "kro_squared": False, "kro_safe_norm": False,
    "kro_cell_penalty": "squared", "kro_angle_weight": 1.0, "use_gt_pcl": True, "gt_type": "area",
    "lambda_gt": 1.0, "projection": "fast", "chamfer_backend": "tf", "seed": 3, "data_dir": "",
    "data_views": 4, "split": "train", "knn_list": "lists/knn_list_chair.npy", "knn_ranks": 5,
    "max_nonfinite": 20, "keep_checkpoints": 2, "distribute": "auto",
}


def _write_old_run(exp, values=OLD_FLAGS):
    exp.mkdir(parents=True, exist_ok=True)
    (exp / checkpointing.FLAGS_JSON).write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")


def test_old_flags_json_converts_field_by_field(tmp_path):
    _write_old_run(tmp_path)
    run = run_config.load(tmp_path)
    expected_train = TrainConfig(
        n_points=256, n_proj=4, lr=5e-4, lambda_ae=100.0, lambda_ae_mask=100.0, lambda_mask_fwd=1e-4,
        lambda_mask_bwd=1e-4, lambda_3d=1e4, lambda_pose=1.0, mask_loss="bce_prob", affinity_loss=True,
        cycle_mode="adj_model", pose_wrap=True, optimise_pose=True, use_gt_pcl=True, gt_type="area",
        neighbours=True, projection="fast", chamfer_backend="tf", seed=3,
        kro=KroConfig(enabled=True, weight=0.5, min_k=2, max_k=3, variant="sound", cell_penalty="squared"))
    assert run == RunConfig(train=expected_train, data_dir=str(build.builtin_out_dir(64, 4)),
                            categories=("car", "chair"), split="train")


def test_config_json_round_trip_and_precedence(tmp_path):
    _write_old_run(tmp_path, {**OLD_FLAGS, "N_PTS": 512})
    written = RunConfig(train=TrainConfig(n_points=128, kro=KroConfig(enabled=True, variant="anchor_angle")),
                        data_dir="generated/datasets/real_64", categories=None, split="val")
    run_config.save(tmp_path, written)
    assert run_config.load(tmp_path) == written            # config.json wins over flags.json
    content = json.loads((tmp_path / run_config.CONFIG_JSON).read_text())
    assert content["train"]["kro"]["variant"] == "anchor_angle" and content["categories"] is None


def test_missing_or_broken_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"neither .*config\.json nor .*flags\.json"):
        run_config.load(tmp_path)
    _write_old_run(tmp_path / "old", {k: v for k, v in OLD_FLAGS.items() if k not in ("H", "categ")})
    with pytest.raises(ValueError, match=r"flags\.json lacks the flags \['H', 'categ'\]"):
        run_config.load(tmp_path / "old")
    _write_old_run(tmp_path / "bad", {**OLD_FLAGS, "kro_variant": "octree"})
    with pytest.raises(ValueError, match=r"flags\.json does not describe .*variant"):
        run_config.load(tmp_path / "bad")
    (tmp_path / run_config.CONFIG_JSON).write_text(json.dumps({"format_version": 1, "train": {"H": 64}}))
    with pytest.raises(ValueError, match=r"config\.json is not a valid run configuration"):
        run_config.load(tmp_path)


def test_old_run_directory_loads_for_inference(tmp_path):
    """A checkpoint beside a hand-written old-style flags.json restores into networks of its shape."""
    _write_old_run(tmp_path)
    recon_net, pose_net = build_networks(64, 256, 128)
    manager = checkpointing.checkpoint_manager(tf.train.Checkpoint(recon_net=recon_net, pose_net=pose_net),
                                               tmp_path, keep=1)
    manager.save(checkpoint_number=30)
    loaded, _, run = load_for_inference(tmp_path)
    image = tf.random.stateless_uniform([1, 64, 64, 3], [1, 2])
    np.testing.assert_array_equal(loaded(image)["xyz"], recon_net(image)["xyz"])
    assert run.train.n_points == 256 and run.categories == ("car", "chair")
