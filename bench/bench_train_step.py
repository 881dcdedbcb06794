"""Training steps per second of the baseline configuration: the step before and after issue 12, side by side.

    python -m bench.bench_train_step [--batch_size 2] [--n_proj 4] [--steps 5] [--rounds 3] [--faithful]
    python -m bench.bench_train_step --batch_size 32 --peak      # also the share of the CPU's float32 peak

The baseline's run.sh configuration (baseline §9: N_PROJ = 4, N = 1024, every run.sh loss with its weight,
pose net trained) on a fixed synthetic batch (uniform-noise image, a disc as mask; the cost does not depend
on the content). One Trainer per variant, all built, traced and warmed up (two untimed steps) in the same
process, then `rounds` alternating blocks of `steps` timed steps each, so that load changes on a shared
machine hit every variant alike; the median steps/s of each, and its ratio to the reference:

    reference         --projection fast  --adam keras   (the step before the fused op and the fused Adam)
    fused projection  --projection fused --adam keras
    fused Adam        --projection fast  --adam fused
    default           --projection auto  --adam fused   (what train.py runs: the op when it is built)
    faithful          --projection faithful --adam keras  (with --faithful; about 15 s a step at B = 2)

With --peak, the dense float32 work of a step is counted on its traced graph (every Conv2D, its two
backprop ops, MatMul and BatchMatMul, forward and backward: 2 FLOPs per multiply-add; element-wise work is
left out, so the share is slightly understated), and the CPU's attainable float32 peak is measured in the
same process as the best of several large matrix products (tf.linalg.matmul, 4096²); each variant's
GFLOP/s is then given as a share of that peak.
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

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
#: name -> (projection, adam); the first is the reference of every ratio.
VARIANTS = {"reference": ("fast", "keras"), "fused projection": ("fused", "keras"), "fused Adam": ("fast", "fused"),
            "default": ("auto", "fused")}
FAITHFUL = {"faithful": ("faithful", "keras")}
#: Matrix side of the peak measurement and the number of products timed.
PEAK_SIZE, PEAK_REPEATS = 4096, 5


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


def _op_flops(op) -> int:
    """FLOPs (2 per multiply-add) of one convolution or matrix-product op with static shapes, else 0."""
    if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
        if op.get_attr("data_format") != b"NHWC":
            raise NotImplementedError(f"bench_train_step: {op.name} is not NHWC")
        # The forward convolution's output and filter: output (Conv2D) or out_backprop (both backprops).
        out = op.outputs[0].shape if op.type == "Conv2D" else op.inputs[2].shape
        kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
        return 2 * out.num_elements() * kernel[0] * kernel[1] * kernel[2]
    if op.type == "MatMul":
        a = op.inputs[0].shape
        depth = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * op.outputs[0].shape.num_elements() * depth
    if op.type in ("BatchMatMul", "BatchMatMulV2"):
        a = op.inputs[0].shape
        depth = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * op.outputs[0].shape.num_elements() * depth
    return 0


def step_flops(trainer: Trainer, batch: dict) -> int:
    """Dense FLOPs of one training step: every convolution and matrix product of its traced graph (forward,
    backward, and the functions it calls, e.g. the branches of the optimiser's tf.cond)."""
    graph = trainer._step_fn.get_concrete_function(trainer.distribute(batch)).graph
    functions = {tf.compat.as_str(f.name): f for f in graph._functions.values()}  # noqa: SLF001  nested graphs
    seen, total, pending = set(), 0, [graph]
    while pending:
        current = pending.pop()
        for op in current.get_operations():
            total += _op_flops(op)
            for attr in op.node_def.attr.values():
                name = attr.func.name
                if name and name in functions and name not in seen:
                    seen.add(name)
                    pending.append(functions[name].graph)
    return total


def matmul_peak_gflops() -> float:
    """Best GFLOP/s of PEAK_REPEATS float32 products of two PEAK_SIZE² matrices (tf.linalg.matmul)."""
    a = tf.random.stateless_uniform([PEAK_SIZE, PEAK_SIZE], seed=[0, 1])
    b = tf.random.stateless_uniform([PEAK_SIZE, PEAK_SIZE], seed=[2, 3])
    product = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    product(a, b).numpy()
    best = float("inf")
    for _ in range(PEAK_REPEATS):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * PEAK_SIZE**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per variant")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--n_proj", type=int, default=4)
    parser.add_argument("--faithful", action="store_true", help="also time the faithful projection (slow)")
    parser.add_argument("--peak", action="store_true", help="count each step's FLOPs and measure the float32 "
                                                          "matmul peak in the same process")
    args = parser.parse_args()

    batch = synthetic_batch(args.batch_size)
    variants = {**VARIANTS, **(FAITHFUL if args.faithful else {})}
    trainers = {}
    for name, (projection, adam) in variants.items():
        start = time.perf_counter()
        config = TrainConfig(n_proj=args.n_proj, projection=projection, adam=adam, **RUN_SH)
        trainers[name] = Trainer(config, args.batch_size)
        trainers[name].train_step(batch)
        print(f"{name:>16}: --projection {projection} --adam {adam}; build + trace + first step "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    for trainer in trainers.values():
        _timed(trainer, batch, 2)
    rates = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            rates[name].append(_timed(trainer, batch, args.steps))
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
              else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    print(f"device: {device}; B={args.batch_size}, N_PROJ={args.n_proj}, N=1024, H=W=64, run.sh losses; "
          f"median of {args.rounds} alternating blocks of {args.steps} steps")
    reference = np.median(rates["reference"])
    for name, values in rates.items():
        print(f"{name:>16}: {np.median(values):8.2f} steps/s  {np.median(values) / reference:5.2f}x the reference  "
              f"(blocks: {', '.join(f'{v:.2f}' for v in values)})")
    if args.peak:
        peak = matmul_peak_gflops()
        print(f"float32 peak, best of {PEAK_REPEATS} matmuls {PEAK_SIZE}x{PEAK_SIZE}: {peak:.1f} GFLOP/s")
        for name, trainer in trainers.items():
            flops = step_flops(trainer, batch)
            achieved = flops * np.median(rates[name]) / 1e9
            print(f"{name:>16}: {flops / 1e9:.2f} GFLOP per step (convolutions and matrix products), "
                  f"{achieved:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of the matmul peak")


if __name__ == "__main__":
    main()
