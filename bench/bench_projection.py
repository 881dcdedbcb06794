"""Benchmark of the point-cloud projection (model/projection.py): fused vs fast vs faithful, forward + backward.

One measurement = silhouette + colour image of B clouds of N points at H×W px (``projection.render``), a
scalar loss on both, and its gradient w.r.t. xyz, rgb and pose, inside a ``tf.function`` (graph mode, or
XLA with ``jit_compile=True``; the fused form is a custom op without an XLA kernel, so graph mode only).

Table: each (configuration, method, mode) runs in a fresh Python process so that peak memory is its own:

  * time: median wall time of one call after a warm-up call (tracing and compilation excluded);
  * peak RSS: the process's peak resident memory (VmHWM) minus its resident memory just before the first
    call (after importing TensorFlow and creating the inputs), so tracing, compilation and every tensor
    of the runs are included (in XLA mode this counts ~100 MB of compiler memory, which dominates the
    fast form's figure);
  * allocator peak: the TensorFlow CPU allocator's peak bytes during the timed calls (the workers run with
    ``TF_CPU_ALLOCATOR_USE_BFC=true`` so that the statistic exists); tensors only, and not XLA's own
    buffers, hence shown for graph mode only.

The faithful form is skipped where its memory, extrapolated from its measurement at the first (baseline)
configuration in proportion to B·N·H·W, would exceed ``--memory-limit-gb``; the script says so.

Ratios: the table's rows run one after the other, so on a shared machine their ratios carry the load
changes between them. The fused / fast ratio of the first configuration is therefore also measured in one
process, in alternating blocks, together with where the time goes: the camera alone (geometry/camera.project
and its gradient, which every form runs in TensorFlow) and the two images from given (u, v, w).

Run: ``python -m bench.bench_projection`` (a few minutes on 2 CPU cores).
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = ((2, 1024, 64), (2, 4096, 128))  # (B, N, image size); the first is the baseline's size (§5)
METHODS = ("fused", "fast", "faithful")
MODES = ("graph", "xla")
#: Parts timed side by side by :func:`breakdown`.
PARTS = ("fast render", "fused render", "camera alone", "fast images from uvw", "fused images from uvw")


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"bench/bench_projection.py: {field} not found in /proc/self/status (Linux only)")


def _inputs(batch: int, n_points: int):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    xyz = tf.constant(rng.uniform(-0.4, 0.4, (batch, n_points, 3)), tf.float32)
    rgb = tf.constant(rng.uniform(0.0, 1.0, (batch, n_points, 3)), tf.float32)
    pose = tf.constant(rng.uniform(-1.0, 1.0, (batch, 2)), tf.float32)
    return xyz, rgb, pose


def _with_gradient(loss_fn, jit_compile: bool = False):
    """tf.function returning loss_fn(*inputs) and its gradient w.r.t. every input."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def step(*inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = loss_fn(*inputs)
        return loss, tape.gradient(loss, inputs)

    return step


def _render_loss(image_size: int, method: str):
    import tensorflow as tf

    from model import projection

    def loss(xyz, rgb, pose):
        out = projection.render(xyz, rgb, pose, image_size, method)
        return tf.reduce_sum(out["mask"]) + tf.reduce_sum(out["image"])

    return loss


def measure(batch: int, n_points: int, image_size: int, method: str, mode: str, min_seconds: float) -> dict:
    """Time and memory of one configuration, in the calling process (call it in a fresh one)."""
    import tensorflow as tf

    xyz, rgb, pose = _inputs(batch, n_points)
    step = _with_gradient(_render_loss(image_size, method), jit_compile=(mode == "xla"))
    rss_before_kib = _proc_status_kib("VmRSS")
    step(xyz, rgb, pose)[0].numpy()  # warm-up: tracing, compilation, first run
    tf.config.experimental.reset_memory_stats("CPU:0")
    allocator_base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    times = []
    while len(times) < 3 or sum(times) < min_seconds:
        start = time.perf_counter()
        step(xyz, rgb, pose)[0].numpy()
        times.append(time.perf_counter() - start)
    allocator_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - allocator_base
    return {"seconds": statistics.median(times), "runs": len(times),
            "peak_rss_mb": (_proc_status_kib("VmHWM") - rss_before_kib) / 1024,
            "allocator_peak_mb": allocator_peak / 2**20 if mode == "graph" else None}


def breakdown(batch: int, n_points: int, image_size: int, rounds: int, calls: int) -> dict:
    """Median ms per call of each of PARTS, timed in alternating blocks of `calls` calls, `rounds` times."""
    import tensorflow as tf

    from geometry import camera
    from model import projection

    xyz, rgb, pose = _inputs(batch, n_points)
    uvw = camera.project(xyz, pose, image_size)

    def images_loss(method):
        def loss(uvw, rgb):
            if method == "fused":
                mask, image = projection.project_fused(uvw, rgb, image_size)
            else:
                mask, image = projection.silhouette_fast(uvw, image_size), projection.colour_fast(uvw, rgb, image_size)
            return tf.reduce_sum(mask) + tf.reduce_sum(image)
        return loss

    parts = {
        "fast render": (_with_gradient(_render_loss(image_size, "fast")), (xyz, rgb, pose)),
        "fused render": (_with_gradient(_render_loss(image_size, "fused")), (xyz, rgb, pose)),
        "camera alone": (_with_gradient(lambda x, p: tf.reduce_sum(camera.project(x, p, image_size))), (xyz, pose)),
        "fast images from uvw": (_with_gradient(images_loss("fast")), (uvw, rgb)),
        "fused images from uvw": (_with_gradient(images_loss("fused")), (uvw, rgb)),
    }
    times = {name: [] for name in parts}
    for step, args in parts.values():
        for _ in range(3):
            step(*args)[0].numpy()
    for _ in range(rounds):
        for name, (step, args) in parts.items():
            start = time.perf_counter()
            for _ in range(calls):
                step(*args)[0].numpy()
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def _run_worker(task: str, args: list, memory_env: bool) -> dict:
    """Runs a task of this module in a fresh interpreter and returns its JSON result."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if memory_env:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    done = subprocess.run([sys.executable, "-m", "bench.bench_projection", f"--{task}", json.dumps(args)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench/bench_projection.py: worker {task} {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--breakdown-worker", help=argparse.SUPPRESS)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per measurement (≥ 3 runs)")
    parser.add_argument("--memory-limit-gb", type=float, default=4.0,
                        help="skip the faithful form where its extrapolated peak RSS exceeds this")
    parser.add_argument("--rounds", type=int, default=15, help="alternating blocks of the side-by-side timing")
    parser.add_argument("--calls", type=int, default=20, help="calls per block of the side-by-side timing")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*json.loads(args.worker))))
        return
    if args.breakdown_worker:
        print(json.dumps(breakdown(*json.loads(args.breakdown_worker))))
        return

    from losses.ops import loader

    lib = loader.load("projection")
    print(f"{os.cpu_count()} CPU cores; Projection op: "
          f"{'loaded (' + ('CPU+CUDA' if lib.cuda else 'CPU') + ' kernels)' if lib.module else lib.reason}")
    methods = [m for m in METHODS if m != "fused" or lib.module is not None]
    results = {}
    faithful_mb_per_element = {}
    print(f"{'B':>2} {'N':>5} {'px':>4} {'method':>9} {'mode':>5} {'ms/call':>10} {'peak RSS MB':>12} "
          f"{'alloc MB':>9}")
    for batch, n_points, size in CONFIGS:
        elements = batch * n_points * size * size
        for method in methods:
            for mode in MODES:
                key = (batch, n_points, size, method, mode)
                if method == "fused" and mode == "xla":
                    print(f"{batch:>2} {n_points:>5} {size:>4} {method:>9} {mode:>5}  skipped: a custom op has no "
                          "XLA kernel")
                    continue
                if method == "faithful" and mode in faithful_mb_per_element:
                    predicted_gb = faithful_mb_per_element[mode] * elements / 1024
                    if predicted_gb > args.memory_limit_gb:
                        print(f"{batch:>2} {n_points:>5} {size:>4} {method:>9} {mode:>5}  skipped: predicted peak "
                              f"RSS {predicted_gb:.1f} GB > --memory-limit-gb {args.memory_limit_gb:g}")
                        continue
                result = results[key] = _run_worker("worker", [batch, n_points, size, method, mode,
                                                               args.min_seconds], memory_env=True)
                if method == "faithful":
                    faithful_mb_per_element.setdefault(mode, result["peak_rss_mb"] / elements)
                print(f"{batch:>2} {n_points:>5} {size:>4} {method:>9} {mode:>5} {result['seconds'] * 1e3:>10.1f} "
                      f"{result['peak_rss_mb']:>12.1f} {_fmt(result['allocator_peak_mb'], '9.1f')}", flush=True)

    print("\nratios of the table's rows (same configuration and mode; rows timed one after the other):")
    for (batch, n_points, size, method, mode), row in results.items():
        if method == "faithful":
            continue
        for other in ("fast", "faithful"):
            ref = results.get((batch, n_points, size, other, mode))
            if other == method or ref is None:
                continue
            alloc = (None if row["allocator_peak_mb"] is None
                     else ref["allocator_peak_mb"] / max(row["allocator_peak_mb"], 1e-3))
            print(f"  B={batch} N={n_points} {size}px {mode:>5}: {other} / {method}: time "
                  f"{ref['seconds'] / row['seconds']:.1f}x, peak RSS {ref['peak_rss_mb'] / max(row['peak_rss_mb'], 1e-3):.1f}x, "
                  f"allocator peak {_fmt(alloc, '.1f')}x")

    if lib.module is None:
        return
    batch, n_points, size = CONFIGS[0]
    parts = _run_worker("breakdown-worker", [batch, n_points, size, args.rounds, args.calls], memory_env=False)
    print(f"\nside by side in one process (B={batch}, N={n_points}, {size} px, graph mode, median of {args.rounds} "
          f"alternating blocks of {args.calls} calls), forward + backward:")
    for name in PARTS:
        print(f"  {name:>22}: {parts[name]:7.3f} ms")
    print(f"  fast / fused, whole render: {parts['fast render'] / parts['fused render']:.2f}x")
    print(f"  fast / fused, images from (u, v, w): "
          f"{parts['fast images from uvw'] / parts['fused images from uvw']:.2f}x")
    print(f"  camera alone: {100 * parts['camera alone'] / parts['fused render']:.0f}% of the fused render, "
          f"{100 * parts['camera alone'] / parts['fast render']:.0f}% of the fast one")


if __name__ == "__main__":
    main()
