"""OURS-NN training: neighbour pairs in the data pipeline, the §7.7 terms in the step, the list CLI.

data/neighbours.py, model/objective.py, train.py --knn_list/--use_mult_proj, make_knn_list.py (baseline §2.7,
§6, §7.7).
The tiny_dataset fixture's train split holds 4 examples (2 cars, 2 chairs, one view each).
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from data import neighbours as dn
from data.knn_list import load_knn_list, save_knn_list
from make_knn_list import embed_images
from losses.image import affinity_loss, mask_loss
from model import checkpointing
from model.config import TrainConfig
from model.objective import compute_losses, forward
from model.projection import SIGMA_SQ, render
from model.recon_net import build_recon_net
from model.trainer import Trainer, build_networks

REPO = Path(__file__).resolve().parents[1]
TINY = dict(n_points=256, n_proj=2, lr=1e-3)
#: run.sh weights (baseline §9).
RUN_SH = dict(lambda_ae=100.0, lambda_ae_mask=100.0, lambda_mask_fwd=1e-4, lambda_mask_bwd=1e-4,
              lambda_3d=1e4, lambda_pose=1.0, affinity_loss=True, optimise_pose=True)


@pytest.fixture(scope="module")
def split(tiny_dataset):
    return dn.load_split(tiny_dataset, "train")


def _table(keys, k=2):
    """Each key followed by k others, in a rotation (so one other key is never listed when k = 2)."""
    n = len(keys)
    return np.array([[keys[i]] + [keys[(i + j) % n] for j in range(1, k + 1)] for i in range(n)])


@pytest.fixture(scope="module")
def knn_file(split, tmp_path_factory):
    path = tmp_path_factory.mktemp("knn") / "knn_list_test.npy"
    save_knn_list(path, _table(split.keys))
    return path


def _draws(pairs, data_dir, batches=24, **kwargs):
    ds = dn.paired_dataset(pairs, data_dir, "train", 2, **{"seed": 0, **kwargs})
    return [{k: v.numpy() for k, v in b.items()} for b, _ in zip(ds, range(batches))]


def _key(model_id, view):
    return f"{model_id.decode()}_{view}"


def test_pairs_are_listed_neighbours_of_the_split_never_self(tiny_dataset, split, knn_file):
    pairs = dn.load_pairs(knn_file, tiny_dataset, "train")
    listed = {row[0]: list(row[1:]) for row in load_knn_list(knn_file)}
    rows = {key: i for i, key in enumerate(split.keys)}
    seen = {key: set() for key in split.keys}
    for batch in _draws(pairs, tiny_dataset):
        for b in range(2):
            anchor = _key(batch["model_id"][b], batch["view"][b])
            other = _key(batch["model_id_2"][b], batch["view_2"][b])
            assert other in listed[anchor] and other != anchor
            seen[anchor].add(other)
            # image_2 / mask_2 are that neighbour's image and mask in the split.
            np.testing.assert_array_equal(np.rint(batch["image_2"][b] * 255), split.images[rows[other]])
            np.testing.assert_array_equal(batch["mask_2"][b], split.masks[rows[other]])
    assert all(seen[key] == set(listed[key]) for key in split.keys), seen    # every rank gets drawn


def test_draws_follow_the_seed_and_ranks(tiny_dataset, split, knn_file):
    pairs = dn.load_pairs(knn_file, tiny_dataset, "train")
    names = lambda draws: [d["model_id_2"].tolist() for d in draws]  # noqa: E731
    assert names(_draws(pairs, tiny_dataset, 8)) == names(_draws(pairs, tiny_dataset, 8))
    assert names(_draws(pairs, tiny_dataset, 8)) != names(_draws(pairs, tiny_dataset, 8, first_step=1000))
    # A run resumed at step 3 sees the batches (and draws) of the uninterrupted run from step 3 on.
    whole, resumed = _draws(pairs, tiny_dataset, 8), _draws(pairs, tiny_dataset, 5, first_step=3)
    for key in ("model_id", "view", "model_id_2", "view_2"):
        assert [b[key].tolist() for b in whole[3:]] == [b[key].tolist() for b in resumed], key
    nearest = dn.load_pairs(knn_file, tiny_dataset, "train", ranks=1)
    first = {row[0]: row[1] for row in load_knn_list(knn_file)}
    for batch in _draws(nearest, tiny_dataset, 6):
        assert [_key(m, v) for m, v in zip(batch["model_id_2"], batch["view_2"])] == \
               [first[_key(m, v)] for m, v in zip(batch["model_id"], batch["view"])]


def test_examples_without_a_row_are_left_out(tiny_dataset, split):
    table = _table(split.keys, k=1)
    table = np.concatenate([table[1:], table[1:2]])       # drop anchor 0; anchor 1 listed twice
    pairs = dn.resolve(table, split)
    assert pairs.anchors.tolist() == split.keys[1:].tolist()
    anchors = {_key(m, v) for b in _draws(pairs, tiny_dataset, 12) for m, v in zip(b["model_id"], b["view"])}
    assert anchors == set(split.keys[1:])


def test_missing_or_self_neighbours_raise_clear_errors(tiny_dataset, split, tmp_path):
    table = _table(split.keys)
    table[0, 2] = "deadbeef_7"
    save_knn_list(tmp_path / "knn.npy", table)
    with pytest.raises(ValueError, match=r"1 neighbours .*knn\.npy.*not examples of split 'train'.*deadbe"):
        dn.load_pairs(tmp_path / "knn.npy", tiny_dataset, "train")
    test_key = dn.load_split(tiny_dataset, "test").keys[0]
    table[0, 2] = test_key                                 # an example of another split is missing too
    with pytest.raises(ValueError, match=test_key):
        dn.resolve(table, split)
    table[0, 2] = table[0, 0]
    with pytest.raises(ValueError, match="list themselves"):
        dn.resolve(table, split)
    with pytest.raises(ValueError, match="none of the 1 anchors"):
        dn.resolve(np.array([["nothere_0", split.keys[0]]]), split)


def test_list_of_other_models_only():
    keys = np.array(["a_0", "a_1", "b_0", "c_0"])
    split = dn.SplitImages(keys=keys, model_ids=np.array(["a", "a", "b", "c"]), views=np.array([0, 1, 0, 0]),
                           images=None, masks=None)
    emb = np.array([[0.0], [0.1], [1.0], [3.0]])
    table = dn.knn_table_other_models(split, emb, 2, metric="l2")
    assert table.tolist() == [["a_0", "b_0", "c_0"], ["a_1", "b_0", "c_0"], ["b_0", "a_1", "a_0"],
                              ["c_0", "b_0", "a_1"]]
    with pytest.raises(ValueError, match="other models"):
        dn.knn_table_other_models(split, emb, 3, metric="l2")


def test_config_needs_neighbours_for_use_mult_proj():
    with pytest.raises(ValueError, match="use_mult_proj.*neighbour"):
        TrainConfig(use_mult_proj=True)


@pytest.fixture(scope="module")
def paired_batch(tiny_dataset, knn_file):
    pairs = dn.load_pairs(knn_file, tiny_dataset, "train")
    return _draws(pairs, tiny_dataset, 1)[0]


def _grads(config, nets, batch, poses_random):
    """recon_loss and pose_loss gradients (recon vars, pose vars) and the losses, eagerly."""
    recon_net, pose_net = nets
    zero = tf.zeros([], tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        out = forward(recon_net, pose_net, batch["image"], poses_random, None, image_size=64,
                      projection="fast", sigma_sq=SIGMA_SQ,
                      images_2=batch["image_2"] if config.neighbours else None)
        losses = compute_losses(config, batch, out, tf.zeros([], tf.int32), tf.zeros([2], tf.int64), zero,
                                zero)
    return (tape.gradient(losses["recon_loss"], recon_net.trainable_variables),
            tape.gradient(losses["pose_loss"], pose_net.trainable_variables), losses)


def test_nn_terms_enter_recon_loss_only_with_use_mult_proj(paired_batch):
    """§7.7/§7.8: with neighbour data but no --use_mult_proj the recon gradient is that of the plain
    objective; with it, it gains exactly the gradient of
    λ_ae_mask·L_mask2 + λ_fwd·L_fwd2 + λ_bwd·L_bwd2, L_*2 between mask_2 and xyz0 rendered at
    pose_net(image_2) (§6). The pose gradient never changes."""
    keras.utils.set_random_seed(0)
    nets = build_networks(64, 256, 128)
    batch = {k: tf.constant(paired_batch[k]) for k in ("image", "mask", "image_2", "mask_2")}
    poses = tf.constant([[[0.4, 0.2]], [[-1.0, 0.5]]], tf.float32)
    weights = dict(**TINY, lambda_ae=1.0, lambda_ae_mask=2.0, lambda_mask_fwd=1e-4, lambda_mask_bwd=3e-4,
                   lambda_3d=1.0, affinity_loss=True)
    plain = _grads(TrainConfig(**weights), nets, batch, poses)
    logged = _grads(TrainConfig(**weights, neighbours=True), nets, batch, poses)
    used = _grads(TrainConfig(**weights, neighbours=True, use_mult_proj=True), nets, batch, poses)

    recon_net, pose_net = nets
    with tf.GradientTape() as tape:
        mask_out_2 = render(recon_net(batch["image"])["xyz"], recon_net(batch["image"])["rgb"],
                            pose_net(batch["image_2"])["pose"], image_size=64)["mask"]
        fwd, bwd = affinity_loss(batch["mask_2"], mask_out_2)
        nn = [mask_loss(batch["mask_2"], mask_out_2), fwd, bwd]
        extra = 2.0 * nn[0] + 1e-4 * nn[1] + 3e-4 * nn[2]
    variables = recon_net.trainable_variables
    expected = [tf.zeros(v.shape) if g is None else g      # the colour branch gets no mask gradient
                for g, v in zip(tape.gradient(extra, variables), variables)]

    for name, value in zip(("loss_mask_2", "chamfer2d_fwd_2", "chamfer2d_bwd_2"), nn):
        assert float(plain[2][name]) == 0.0
        assert float(logged[2][name]) == pytest.approx(float(value), rel=1e-5) and float(value) > 0, name
    assert float(logged[2]["recon_loss"]) == pytest.approx(float(plain[2]["recon_loss"]), rel=1e-6)
    assert float(used[2]["recon_loss"]) == pytest.approx(float(plain[2]["recon_loss"]) + float(extra),
                                                         rel=1e-5)
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in expected)
    assert scale > 0
    for g_plain, g_logged, g_used, g_nn in zip(plain[0], logged[0], used[0], expected):
        np.testing.assert_allclose(g_logged, g_plain, atol=1e-6 * scale)
        np.testing.assert_allclose(g_used - g_plain, g_nn, atol=1e-4 * scale)
    for g_plain, g_used in zip(plain[1], used[1]):
        np.testing.assert_allclose(g_used, g_plain, atol=1e-7)


def test_trainer_step_logs_and_trains_the_nn_terms(paired_batch):
    trainer = Trainer(TrainConfig(**TINY, **RUN_SH, neighbours=True, use_mult_proj=True, seed=3), 2)
    losses, status, _ = trainer.train_step(paired_batch)
    # How the terms enter recon_loss is tested by derivatives in test_trainer.py.
    assert status["applied"] and losses["loss_mask_2"] > 0 and losses["chamfer2d_fwd_2"] > 0
    with pytest.raises(ValueError, match=r"lacks \['image_2', 'mask_2'\]"):
        trainer.train_step({k: v for k, v in paired_batch.items() if not k.endswith("_2")})


def test_embed_images_uses_enc_feat():
    net = build_recon_net(image_size=16, n_points=8, bottleneck=4)
    images = np.random.default_rng(1).random((5, 16, 16, 3)).astype(np.float32)
    feats = embed_images(net, images, batch_size=2)
    np.testing.assert_allclose(feats, net(images)["enc_feat"].numpy(), atol=1e-6)


def _run(args):
    proc = subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_train_with_knn_list_then_cli_lists_other_models(tiny_dataset, split, knn_file, tmp_path):
    """train.py --knn_list --use_mult_proj runs and logs loss_mask_2; make_knn_list.py on the run
    writes a list that load_knn_list reads back: every train image, its neighbours of other models."""
    exp = tmp_path / "run"
    _run(["train.py", "--flagfile=presets/baseline_run.flags", f"--data_dir={tiny_dataset}", f"--exp={exp}",
          "--categ=all", "--N_PTS=256", "--N_PROJ=2", "--batch_size=2", "--N_ITERS=3", "--print_n=1",
          "--save_n=10", f"--knn_list={knn_file}", "--use_mult_proj"])
    with open(exp / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(float(row["loss_mask_2"]) > 0 for row in rows)
    assert checkpointing.read_flags(exp)["knn_list"] == str(knn_file)

    out = tmp_path / "lists" / "knn_list_all.npy"
    proc = _run(["make_knn_list.py", f"--exp={exp}", f"--data_dir={tiny_dataset}", "--split=train",
                 "--k=2", f"--out={out}"])
    assert "4 anchors x 2 neighbours" in proc.stdout
    table = load_knn_list(out)
    assert table.shape == (4, 3) and sorted(table[:, 0]) == sorted(split.keys)
    model_of = dict(zip(split.keys, split.model_ids))
    assert all(model_of[n] != model_of[row[0]] for row in table for n in row[1:])
    assert dn.resolve(table, split).neighbours.shape == (4, 2)
