"""Chamfer forward+backward: custom op vs the pure-TF backend `tf` vs tensorflow_graphics (baseline §7.4).

    python -m bench.bench_chamfer [--repeats 5] [--configs 32x1024 8x2048 1x16384 1x65536]

Each (implementation, B, N = M) runs in a fresh subprocess: one warm-up call (tracing, XLA compilation), then
`repeats` timed calls of a tf.function returning chamfer_loss and its gradient with respect to both clouds.
Prints the median wall time, the ratios against the op measured in the same run, and the process's peak
resident memory (ru_maxrss, which includes TensorFlow itself: the "idle" row is a process that imported TF and
ran the op once on 4 points); on a GPU also the device's peak memory. tensorflow_graphics builds the full
[B, N, M, 3] difference tensor and is skipped where that tensor alone would exceed TFG_MAX_BYTES.
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

IMPLEMENTATIONS = ("op", "tf", "tfg")
DEFAULT_CONFIGS = ("32x1024", "8x2048", "1x16384", "1x65536")
TFG_MAX_BYTES = 2**31  # 2 GiB for the [B, N, M, 3] float32 difference tensor


def _loss_and_grad(impl: str):
    import tensorflow as tf

    if impl == "tfg":
        from tensorflow_graphics.nn.loss import chamfer_distance

        def loss_fn(a, b):
            return tf.reduce_mean(chamfer_distance.evaluate(a, b))
    else:
        from losses.chamfer import chamfer_loss

        def loss_fn(a, b):
            return chamfer_loss(a, b, backend=impl)

    @tf.function
    def step(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = loss_fn(a, b)
        return loss, tape.gradient(loss, [a, b])

    return step


def worker(impl: str, batch: int, n: int, repeats: int) -> dict:
    """Times one implementation at one size in this process; returns the figures as a dict."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.uniform(-0.5, 0.5, (batch, n, 3)).astype(np.float32))
    b = tf.constant(rng.uniform(-0.5, 0.5, (batch, n, 3)).astype(np.float32))
    step = _loss_and_grad(impl)
    step(a, b)[0].numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, grads = step(a, b)
        loss.numpy(), grads[0].numpy()
        times.append(time.perf_counter() - start)
    result = {"median_ms": 1e3 * float(np.median(times)),
              "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if tf.config.list_physical_devices("GPU"):
        result["gpu_peak_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return result


def _run_worker(impl: str, batch: int, n: int, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_chamfer", "--worker", impl, str(batch), str(n), str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_chamfer", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="BxN, N = M")
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "B", "N", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, batch, n, repeats = args.worker
        print(json.dumps(worker(impl, int(batch), int(n), int(repeats))))
        return

    import tensorflow as tf

    from losses.chamfer import available_backends
    from losses.ops import loader

    lib = loader.load()
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"Chamfer forward+backward, median of {args.repeats} after one warm-up, fresh process per row; "
          f"device {device}; TF {tf.__version__}; op: "
          f"{'loaded (' + ('CPU+CUDA' if lib.cuda else 'CPU') + ' kernels)' if lib.module else lib.reason}")
    if "op" not in available_backends():
        print("the op is unavailable; its rows are skipped")
    idle = _run_worker("op" if lib.module else "tf", 1, 4, 1)
    print(f"idle process (TF imported, one call on 4 points): peak RSS {idle.get('max_rss_mib', float('nan')):.0f}"
          " MiB")
    header = f"{'B x N':>10} {'impl':>5} {'median ms':>10} {'vs op':>8} {'peak RSS MiB':>13}"
    print(header + (f" {'GPU peak MiB':>13}" if device == "GPU" else ""))
    for config in args.configs:
        batch, n = (int(x) for x in config.split("x"))
        rows = {}
        for impl in IMPLEMENTATIONS:
            if impl == "op" and lib.module is None:
                continue
            if impl == "tfg" and batch * n * n * 3 * 4 > TFG_MAX_BYTES:
                print(f"{config:>10} {impl:>5}   skipped: its [B, N, M, 3] difference tensor alone needs "
                      f"{batch * n * n * 12 / 2**30:.1f} GiB")
                continue
            rows[impl] = _run_worker(impl, batch, n, args.repeats)
            r = rows[impl]
            if "error" in r:
                print(f"{config:>10} {impl:>5}   failed: {r['error']}")
                continue
            ratio = r["median_ms"] / rows["op"]["median_ms"] if "median_ms" in rows.get("op", {}) else float("nan")
            line = f"{config:>10} {impl:>5} {r['median_ms']:>10.1f} {ratio:>7.1f}x {r['max_rss_mib']:>13.0f}"
            print(line + (f" {r['gpu_peak_mib']:>13.0f}" if "gpu_peak_mib" in r else ""), flush=True)


if __name__ == "__main__":
    main()
