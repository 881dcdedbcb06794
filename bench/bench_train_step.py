"""Training steps per second of the baseline configuration, fast vs faithful projection (baseline §9, run.sh).

    python -m bench.bench_train_step [--steps 5] [--rounds 2] [--batch_size 2] [--n_proj 4]

The baseline's run.sh configuration (baseline §9: B = 2, N_PROJ = 4, N = 1024, every run.sh loss with
its weight, pose net trained) on a fixed synthetic batch (uniform-noise image, a disc as mask; the cost
does not depend on the content). Two Trainers, one per projection method, are built and traced in the
same process and warmed up by two untimed steps; then `rounds` alternating blocks of `steps` timed
steps each, so that load changes on a shared machine hit both alike. Prints the median steps/s of each method and the fast/faithful ratio.
"""

import argparse
import os
import platform
import time

import numpy as np
import tensorflow as tf

from model.config import TrainConfig
from model.trainer import Trainer

#: run.sh (baseline §9).
RUN_SH = dict(lr=5e-4, lambda_ae=100.0, lambda_ae_pose=1.0, lambda_ae_mask=100.0, lambda_mask_fwd=1e-4,
              lambda_mask_bwd=1e-4, lambda_mask_pose=1.0, lambda_3d=1e4, lambda_pose=1.0,
              affinity_loss=True, optimise_pose=True)


def synthetic_batch(batch_size: int, image_size: int = 64) -> dict:
    """Noise images [B, H, W, 3] and a centred disc of radius H/4 as masks [B, H, W]."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:image_size, :image_size]
    disc = ((rows - image_size / 2) ** 2 + (cols - image_size / 2) ** 2 < (image_size / 4) ** 2)
    return {"image": rng.random((batch_size, image_size, image_size, 3), np.float32),
            "mask": np.repeat(disc[None].astype(np.float32), batch_size, axis=0),
            "pose": np.zeros((batch_size, 2), np.float32)}


def _timed(trainer: Trainer, batch: dict, steps: int) -> float:
    """steps/s over `steps` steps (each step's results are fetched, as the training loop does)."""
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=2, help="alternating blocks per method")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--n_proj", type=int, default=4)
    args = parser.parse_args()

    batch = synthetic_batch(args.batch_size)
    trainers = {}
    for method in ("fast", "faithful"):
        start = time.perf_counter()
        trainers[method] = Trainer(TrainConfig(n_proj=args.n_proj, projection=method, **RUN_SH), args.batch_size)
        trainers[method].train_step(batch)
        print(f"{method:>8}: build + trace + first step {time.perf_counter() - start:.1f} s", flush=True)
    for trainer in trainers.values():
        _timed(trainer, batch, 2)
    rates = {method: [] for method in trainers}
    for _ in range(args.rounds):
        for method, trainer in trainers.items():
            rates[method].append(_timed(trainer, batch, args.steps))
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
              else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    print(f"device: {device}; B={args.batch_size}, N_PROJ={args.n_proj}, N=1024, H=W=64, run.sh losses")
    for method, values in rates.items():
        print(f"{method:>8}: {np.median(values):8.2f} steps/s  (blocks: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"fast / faithful: {np.median(rates['fast']) / np.median(rates['faithful']):.1f}x")


if __name__ == "__main__":
    main()
