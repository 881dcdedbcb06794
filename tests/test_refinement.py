"""Tests of evaluation/refinement.py (test-time refinement on one image): it lowers the image's own objective,
never touches the networks it was given, a step of learning rate 0 predicts exactly what the given networks
predict, and bad settings give clear errors."""

import numpy as np
import pytest

from evaluation.predictions import iterate_split
from evaluation.refinement import TERMS, Refiner
from model import trainer
from model.config import TrainConfig

# The baseline's run.sh weights (presets/baseline_run.flags) with its learning rate, pose net trained.
RUN_SH = TrainConfig(lr=5e-4, lambda_ae=100.0, lambda_ae_mask=100.0, lambda_mask_fwd=1e-4, lambda_mask_bwd=1e-4,
                     lambda_3d=1e4, lambda_pose=1.0, affinity_loss=True, optimise_pose=True, n_proj=4)


@pytest.fixture(scope="module")
def example(tiny_dataset):
    batch = next(iterate_split(tiny_dataset, "test", 1, ("uniform",), progress=False))
    return batch["image"][0], batch["mask"][0], batch["pose"][0]


@pytest.fixture(scope="module")
def networks():
    return trainer.build_networks(64, 1024, 128)


def test_refinement_lowers_the_images_own_objective_and_leaves_the_given_networks_alone(example, networks):
    image, mask, _ = example
    recon_net, pose_net = networks
    before = [w.copy() for w in recon_net.get_weights() + pose_net.get_weights()]
    refiner = Refiner(recon_net, pose_net, RUN_SH, steps=15)
    refined = refiner.refine(image, mask)
    history = dict(zip(TERMS, refiner.history.T))
    assert refiner.history.shape == (16, len(TERMS))
    assert history["recon_loss"][-1] < 0.9 * history["recon_loss"][0]
    assert (100 * history["loss_ae"] + 100 * history["loss_mask"])[-1] < (100 * history["loss_ae"]
                                                                          + 100 * history["loss_mask"])[0]
    after = recon_net.get_weights() + pose_net.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    original = recon_net(image[None], training=False)["xyz"].numpy()[0]
    assert refined["xyz"].shape == (1024, 3) and not np.allclose(refined["xyz"], original)
    # A second image starts again from the given weights: the same image gives the same result.
    np.testing.assert_allclose(refiner.refine(image, mask)["xyz"], refined["xyz"], atol=1e-5)
    assert len(refiner.first_last) == 2


def test_a_step_of_learning_rate_zero_predicts_what_the_given_networks_predict(example, networks):
    image, mask, _ = example
    recon_net, pose_net = networks
    refined = Refiner(recon_net, pose_net, TrainConfig(lr=0.0, optimise_pose=True), steps=1).refine(image, mask)
    out = recon_net(image[None], training=False)
    np.testing.assert_allclose(refined["xyz"], out["xyz"].numpy()[0], atol=1e-6)
    np.testing.assert_allclose(refined["rgb"], out["rgb"].numpy()[0], atol=1e-6)
    np.testing.assert_allclose(refined["pose"], pose_net(image[None], training=False)["pose"].numpy()[0], atol=1e-6)


def test_a_gt_pose_run_refines_at_the_given_pose_and_needs_one(example, networks):
    image, mask, pose = example
    refiner = Refiner(*networks, TrainConfig(lr=1e-4, use_gt_pose=True), steps=1)
    np.testing.assert_array_equal(refiner.refine(image, mask, pose)["pose"], pose)
    with pytest.raises(ValueError, match="--use_gt_pose"):
        refiner.refine(image, mask)
    with pytest.raises(ValueError, match="refine_steps"):
        Refiner(*networks, RUN_SH, steps=0)
