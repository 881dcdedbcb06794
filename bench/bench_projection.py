"""Benchmark of the point-cloud projection (model/projection.py): fast vs faithful, forward + backward.

One measurement = silhouette + colour image of B clouds of N points at H×W px (``projection.render``), a
scalar loss on both, and its gradient w.r.t. xyz, rgb and pose, inside a ``tf.function`` (graph mode, or
XLA with ``jit_compile=True``). Each (configuration, method, mode) runs in a fresh Python process so that
peak memory is its own:

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

Run: ``python -m bench.bench_projection`` (a few minutes on 2 CPU cores).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = ((2, 1024, 64), (2, 4096, 128))  # (B, N, image size); the first is the baseline's size (§5)
METHODS = ("fast", "faithful")
MODES = ("graph", "xla")


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"bench/bench_projection.py: {field} not found in /proc/self/status (Linux only)")


def measure(batch: int, n_points: int, image_size: int, method: str, mode: str, min_seconds: float) -> dict:
    """Time and memory of one configuration, in the calling process (call it in a fresh one)."""
    import numpy as np
    import tensorflow as tf

    from model import projection

    rng = np.random.default_rng(0)
    xyz = tf.constant(rng.uniform(-0.4, 0.4, (batch, n_points, 3)), tf.float32)
    rgb = tf.constant(rng.uniform(0.0, 1.0, (batch, n_points, 3)), tf.float32)
    pose = tf.constant(rng.uniform(-1.0, 1.0, (batch, 2)), tf.float32)

    @tf.function(jit_compile=(mode == "xla"))
    def step(xyz, rgb, pose):
        with tf.GradientTape() as tape:
            tape.watch([xyz, rgb, pose])
            out = projection.render(xyz, rgb, pose, image_size, method)
            loss = tf.reduce_sum(out["mask"]) + tf.reduce_sum(out["image"])
        return loss, tape.gradient(loss, [xyz, rgb, pose])

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


def run_worker(batch, n_points, image_size, method, mode, min_seconds) -> dict:
    """Runs :func:`measure` in a fresh interpreter and returns its result."""
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true", TF_CPP_MIN_LOG_LEVEL="3")
    args = json.dumps([batch, n_points, image_size, method, mode, min_seconds])
    done = subprocess.run([sys.executable, "-m", "bench.bench_projection", "--worker", args], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench/bench_projection.py: worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per measurement (≥ 3 runs)")
    parser.add_argument("--memory-limit-gb", type=float, default=4.0,
                        help="skip the faithful form where its extrapolated peak RSS exceeds this")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*json.loads(args.worker))))
        return

    results = {}
    faithful_mb_per_element = {}
    print(f"{'B':>2} {'N':>5} {'px':>4} {'method':>9} {'mode':>5} {'ms/call':>10} {'peak RSS MB':>12} "
          f"{'alloc MB':>9}")
    for batch, n_points, size in CONFIGS:
        elements = batch * n_points * size * size
        for method in METHODS:
            for mode in MODES:
                key = (batch, n_points, size, method, mode)
                if method == "faithful" and mode in faithful_mb_per_element:
                    predicted_gb = faithful_mb_per_element[mode] * elements / 1024
                    if predicted_gb > args.memory_limit_gb:
                        print(f"{batch:>2} {n_points:>5} {size:>4} {method:>9} {mode:>5}  skipped: predicted peak "
                              f"RSS {predicted_gb:.1f} GB > --memory-limit-gb {args.memory_limit_gb:g}")
                        continue
                result = results[key] = run_worker(batch, n_points, size, method, mode, args.min_seconds)
                if method == "faithful":
                    faithful_mb_per_element.setdefault(mode, result["peak_rss_mb"] / elements)
                print(f"{batch:>2} {n_points:>5} {size:>4} {method:>9} {mode:>5} {result['seconds'] * 1e3:>10.1f} "
                      f"{result['peak_rss_mb']:>12.1f} {_fmt(result['allocator_peak_mb'], '9.1f')}", flush=True)

    print("\nratios faithful / fast (same configuration, same mode, same run):")
    for (batch, n_points, size, method, mode), fast in results.items():
        faithful = results.get((batch, n_points, size, "faithful", mode))
        if method != "fast" or faithful is None:
            continue
        alloc = (None if fast["allocator_peak_mb"] is None
                 else faithful["allocator_peak_mb"] / max(fast["allocator_peak_mb"], 1e-3))
        print(f"  B={batch} N={n_points} {size}px {mode:>5}: time {faithful['seconds'] / fast['seconds']:.0f}x, "
              f"peak RSS {faithful['peak_rss_mb'] / max(fast['peak_rss_mb'], 1e-3):.0f}x, "
              f"allocator peak {_fmt(alloc, '.0f')}x")


if __name__ == "__main__":
    main()
