"""Training steps on one device and on two logical CPU devices (tests/test_distribute.py runs this).

    python tests/scripts/two_replicas.py DATA_DIR OUT_DIR     # with the repository on PYTHONPATH

Logical devices must be configured before TensorFlow initialises, hence a fresh process. The same seed,
batches and configuration (run.sh weights, tiny size, B = 2: one sample per replica) train three steps
under the default strategy ("one") and under MirroredStrategy over /cpu:0 and /cpu:1 ("two"). Prints one
JSON line ({"one"|"two": {"replicas", "losses", "applied"}}) and writes OUT_DIR/{one,two}.npz with, per
trainable variable i of both nets (recon first): ``w0_i`` before the first step, ``w1_i`` after it and
``m1_i``, Adam's first moment after it (= (1 − β1)·g, which gives back the first step's summed gradient g).
"""

import json
import sys

import numpy as np
import tensorflow as tf

STEPS = 3


def main(data_dir: str, out_dir: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from data.tfrecords import make_dataset
    from model.config import TrainConfig
    from model.trainer import Trainer

    ds = make_dataset(data_dir, "train", 2, shuffle=True, seed=0)
    batches = [{k: v.numpy() for k, v in b.items()} for b, _ in zip(ds, range(STEPS))]
    config = TrainConfig(n_points=256, n_proj=3, lr=1e-3, lambda_ae=100.0, lambda_ae_mask=100.0,
                         lambda_mask_fwd=1e-4, lambda_mask_bwd=1e-4, lambda_3d=1e4, lambda_pose=1.0,
                         affinity_loss=True, optimise_pose=True, seed=7)
    result = {}
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        trainer = Trainer(config, 2, strategy)
        variables = trainer.recon_net.trainable_variables + trainer.pose_net.trainable_variables
        momentums = [v for opt in (trainer.optim_recon, trainer.optim_pose) for v in opt.variables
                     if v.path.endswith("_momentum")]
        assert len(momentums) == len(variables)
        arrays = {f"w0_{i}": v.numpy() for i, v in enumerate(variables)}
        steps = [trainer.train_step(batches[0])]
        arrays.update({f"w1_{i}": v.numpy() for i, v in enumerate(variables)})
        arrays.update({f"m1_{i}": v.numpy() for i, v in enumerate(momentums)})
        steps += [trainer.train_step(batch) for batch in batches[1:]]
        result[name] = {"replicas": strategy.num_replicas_in_sync,
                        "losses": [{k: float(v) for k, v in losses.items()} for losses, _, _ in steps],
                        "applied": [status["applied"] for _, status, _ in steps]}
        np.savez(f"{out_dir}/{name}.npz", **arrays)
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
