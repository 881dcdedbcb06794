"""Correctness and speed of the CUDA kernels of both custom ops, without TensorFlow (nvcc + PyTorch + a GPU).

    python -m bench.bench_cuda_kernels [--arch sm_90] [--repeats 20] [--skip-timing]

Needs nvcc on PATH and PyTorch with a CUDA GPU; when one is missing it says which and exits with status 2
before compiling anything. TensorFlow is not used: each kernel is reached through the plain C launch
functions of its header (losses/ops/nn_distance_cuda.h, projection_cuda.h), which the TF ops call too.

1. nvcc compiles losses/ops/nn_distance_kernel.cu and projection_kernel.cu into shared libraries (the flags
   of losses.ops.build, -shared instead of -c; --arch defaults to the GPU's own) loaded with ctypes; the
   kernels run on PyTorch CUDA tensors, on PyTorch's current stream.
2. NnDistance: the indices must equal, exactly, a float32 brute force on the CPU (numpy, difference form
   ((dx·dx + dy·dy) + dz·dz) without fused multiply-adds, lowest index on ties), on random clouds of sizes that
   do not fill the kernel's 256-thread blocks and on integer grids full of ties; timed against torch.cdist +
   argmin on the GPU (query blocks bounded to 2^28 distances).
3. Projection: the forward and backward launch functions, float32 and float64, against a dense PyTorch port of
   the faithful form (baseline §5.3-5.4, model/projection.py silhouette_faithful and colour_faithful) run in
   float64 on the CPU with autograd: values within 1e-5 and gradients within 1e-4 (relative to the largest
   gradient when above 1) in float32, 1e-9 in float64; on ties, points off the image and beyond the far depth,
   empty and one-point clouds, one-image batches and random clouds. Timed (forward + backward, float32)
   against the same dense port on the GPU, the PyTorch equivalent of the baseline's renderer.

Prints one line per check and exits with status 1 if any fails.
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import argparse
import ctypes
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from losses.ops import build

#: §5.3-5.4 constants, as model/projection.py defines them (tests/test_cuda_kernels.py holds them equal; this
#: module may not import model.projection, which needs TensorFlow).
SIGMA_SQ, BETA, DEPTH_SHIFT, MAX_DEPTH, SOFTMAX_EPS, RENORM_EPS = 0.4, 100.0, 1.0, 10.0, 1e-5, 1e-8
WELL_RADIUS = 1
SPLAT_RADIUS = 4  # model.projection.splat_radius(SIGMA_SQ)
#: Bound on the distances torch.cdist computes at once in the NnDistance timing.
CDIST_BLOCK = 2**28


def requirements_missing() -> str | None:
    """What this harness lacks on this machine (nvcc, PyTorch, a CUDA GPU), or None."""
    if shutil.which("nvcc") is None:
        return "nvcc is not on PATH"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (install a CUDA build of torch)"
    if not torch.cuda.is_available():
        build_kind = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return f"PyTorch {torch.__version__} ({build_kind}) sees no CUDA GPU"
    return None


def compile_kernels(arch: str, out_dir: Path) -> dict:
    """nvcc-compiled shared library of each op's .cu file, loaded with ctypes: {library name: CDLL}."""
    flags = [flag for flag in build.NVCC_FLAGS if flag != "-c"]
    libraries = {}
    for lib in build.LIBRARIES:
        out = out_dir / f"{lib.name}_kernel.so"
        cmd = ["nvcc", "-shared", *flags, f"-arch={arch}", str(build.OPS_DIR / lib.kernel_source), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bench_cuda_kernels: nvcc failed:\n  {' '.join(cmd)}\n{done.stdout}{done.stderr}")
        libraries[lib.name] = ctypes.CDLL(str(out))
    _declare(libraries)
    return libraries


def _declare(libraries: dict) -> None:
    """argtypes/restype of every launch function (const char* on error, NULL on success)."""
    p, i, d = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_double)
    nn = libraries["nn_distance"].NnDistanceCudaLaunch
    nn.argtypes, nn.restype = [p, i, i, i, p, p, p], ctypes.c_char_p
    for suffix in ("F32", "F64"):
        forward = getattr(libraries["projection"], f"ProjectionForwardCuda{suffix}")
        forward.argtypes, forward.restype = [p, i, i, i, i, i, i, d] + [p] * 5, ctypes.c_char_p
        backward = getattr(libraries["projection"], f"ProjectionBackwardCuda{suffix}")
        backward.argtypes, backward.restype = [p, i, i, i, i, i, i, d] + [p] * 9, ctypes.c_char_p


def _stream():
    import torch

    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def _ptr(tensor):
    assert tensor.is_contiguous() and tensor.is_cuda
    return ctypes.c_void_p(tensor.data_ptr())


def _check(err) -> None:
    if err is not None:
        raise RuntimeError(f"bench_cuda_kernels: launch failed: {err.decode()}")


def cuda_time_ms(fn, repeats: int) -> float:
    """Median GPU time of fn() (CUDA events on the current stream) after one warm-up call."""
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------- NnDistance


def nn_cuda(lib, query, target):
    """NnDistanceCudaLaunch: int32 [B, n] nearest indices of query [B, n, 3] in target [B, m, 3] (CUDA)."""
    import torch

    index = torch.empty(query.shape[:2], dtype=torch.int32, device=query.device)
    _check(lib.NnDistanceCudaLaunch(_stream(), query.shape[0], query.shape[1], target.shape[1], _ptr(query),
                                    _ptr(target), _ptr(index)))
    return index


def nn_brute_force(query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """float32 brute force, as the kernels compute: ((dx·dx + dy·dy) + dz·dz), first index of the minimum."""
    out = np.empty(query.shape[:2], np.int64)
    for b in range(query.shape[0]):
        for start in range(0, query.shape[1], 512):
            d = query[b, start:start + 512, None, :] - target[b, None, :, :]
            out[b, start:start + 512] = ((d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]) + d[..., 2] * d[..., 2]).argmin(-1)
    return out


def check_nn_distance(lib) -> list[tuple[str, bool, str]]:
    import torch

    rng = np.random.default_rng(0)
    cases = [(f"random {b}x{n} -> {m}", rng.normal(size=(b, n, 3)), rng.normal(size=(b, m, 3)))
             for b, n, m in ((1, 1, 1), (2, 1, 9), (3, 300, 1000), (2, 1000, 300), (4, 4097, 2049))]
    cases += [(f"integer grid (ties) {b}x{n} -> {m}", rng.integers(0, 4, (b, n, 3)), rng.integers(0, 4, (b, m, 3)))
              for b, n, m in ((2, 513, 77), (2, 77, 513), (1, 3000, 3000))]
    results = []
    for name, query, target in cases:
        query, target = query.astype(np.float32), target.astype(np.float32)
        got = nn_cuda(lib, torch.from_numpy(query).cuda(), torch.from_numpy(target).cuda()).cpu().numpy()
        want = nn_brute_force(query, target)
        wrong = int((got != want).sum())
        results.append((f"NnDistance {name}: indices equal the float32 brute force", wrong == 0,
                        f"{wrong} of {want.size} differ"))
    return results


def time_nn_distance(lib, repeats: int) -> list[str]:
    import torch

    lines = []
    for b, n in ((8, 16384), (1, 65536)):
        gen = torch.Generator(device="cuda").manual_seed(0)
        query = torch.randn(b, n, 3, device="cuda", generator=gen)
        target = torch.randn(b, n, 3, device="cuda", generator=gen)
        rows = max(1, CDIST_BLOCK // (b * n))

        def torch_nn():
            return torch.cat([torch.cdist(query[:, s:s + rows], target).argmin(-1) for s in range(0, n, rows)], 1)

        kernel = cuda_time_ms(lambda: nn_cuda(lib, query, target), repeats)
        reference = cuda_time_ms(torch_nn, repeats)
        agree = (nn_cuda(lib, query, target).long() == torch_nn()).float().mean().item()
        lines.append(f"NnDistance {b}x{n} -> {n}: kernel {kernel:.2f} ms ({b * n * n / kernel / 1e9:.2f} T pairs/s), "
                     f"torch.cdist + argmin {reference:.2f} ms: {reference / kernel:.1f}x; same index for "
                     f"{100 * agree:.3f}% of the queries (cdist's matrix-product form rounds differently)")
    return lines


# ----------------------------------------------------------------------------------------------- Projection


def dense_projection(uvw, rgb, size: int):
    """The faithful form in PyTorch, formula for formula (model/projection.py silhouette_faithful and
    colour_faithful): mask [B, H, W] and image [B, H, W, C] from uvw [B, N, 3] and rgb [B, N, C]."""
    import torch

    grid = torch.arange(size, dtype=uvw.dtype, device=uvw.device)
    rows, cols = grid[:, None], grid[None, :]  # [H, 1], [1, W]
    u, v, w = (uvw[..., k, None, None] for k in range(3))  # [B, N, 1, 1]
    kernel_u = torch.exp(-torch.square(u - rows) / (2.0 * SIGMA_SQ))  # [B, N, H, 1]
    kernel_v = torch.exp(-torch.square(v - cols) / (2.0 * SIGMA_SQ))  # [B, N, 1, W]
    mask = torch.tanh((kernel_u * kernel_v).sum(1))
    one, outside = torch.ones((), dtype=uvw.dtype), torch.full((), 10.0, dtype=uvw.dtype)
    well_u = torch.where(torch.abs(u - rows) <= WELL_RADIUS, one, outside)
    well_v = torch.where(torch.abs(v - cols) <= WELL_RADIUS, one, outside)
    d = torch.clamp(well_u * well_v * (w + DEPTH_SHIFT), 0.0, MAX_DEPTH)  # [B, N, H, W]
    prob = torch.softmax(BETA / (d + SOFTMAX_EPS), dim=1)
    in_well = (d != MAX_DEPTH).to(uvw.dtype)
    prob = prob * in_well
    prob = prob / (prob.sum(1, keepdim=True) + RENORM_EPS)
    image = (prob[..., None] * rgb[:, :, None, None, :]).sum(1)
    return mask, torch.where(in_well.sum(1)[..., None] > 0, image, torch.zeros_like(image))


def _params():
    return (ctypes.c_double * 6)(SIGMA_SQ, BETA, DEPTH_SHIFT, MAX_DEPTH, SOFTMAX_EPS, RENORM_EPS)


def projection_cuda(lib, uvw, rgb, size: int, grad_mask=None, grad_image=None):
    """Forward launch (and, with the incoming gradients, backward launch) on CUDA tensors:
    (mask, image) or (mask, image, grad_uvw, grad_rgb)."""
    import torch

    suffix = {torch.float32: "F32", torch.float64: "F64"}[uvw.dtype]
    batch, points, channels = rgb.shape
    sizes = (batch, points, channels, size, SPLAT_RADIUS, WELL_RADIUS)
    mask = torch.empty(batch, size, size, dtype=uvw.dtype, device=uvw.device)
    image = torch.empty(batch, size, size, channels, dtype=uvw.dtype, device=uvw.device)
    state = torch.empty(batch, size, size, 3, dtype=uvw.dtype, device=uvw.device)
    params = _params()
    _check(getattr(lib, f"ProjectionForwardCuda{suffix}")(_stream(), *sizes, params, _ptr(uvw), _ptr(rgb),
                                                            _ptr(mask), _ptr(image), _ptr(state)))
    if grad_mask is None:
        return mask, image
    grad_uvw, grad_rgb = torch.empty_like(uvw), torch.empty_like(rgb)
    _check(getattr(lib, f"ProjectionBackwardCuda{suffix}")(
        _stream(), *sizes, params, _ptr(uvw), _ptr(rgb), _ptr(mask), _ptr(image), _ptr(state), _ptr(grad_mask),
        _ptr(grad_image), _ptr(grad_uvw), _ptr(grad_rgb)))
    return mask, image, grad_uvw, grad_rgb


def _reference(uvw, rgb, size, grad_mask, grad_image):
    """Dense form in float64 on the CPU: mask, image and the gradients of ⟨grad_mask, mask⟩ + ⟨grad_image, image⟩."""
    import torch

    uvw = uvw.detach().cpu().double().requires_grad_(True)
    rgb = rgb.detach().cpu().double().requires_grad_(True)
    mask, image = dense_projection(uvw, rgb, size)
    loss = (grad_mask.cpu().double() * mask).sum() + (grad_image.cpu().double() * image).sum()
    grad_uvw, grad_rgb = torch.autograd.grad(loss, [uvw, rgb], allow_unused=True, materialize_grads=True)
    return [t.detach().numpy() for t in (mask, image, grad_uvw, grad_rgb)]


def _projection_cases(rng):
    def scene(batch, points, size, near=False):
        uv = rng.uniform(-6, size + 6, (batch, points, 2)) if not near else rng.uniform(3, 9, (batch, points, 2))
        return np.concatenate([uv, rng.uniform(1.5, 2.5, (batch, points, 1))], -1), size

    ties = np.array([[[10.0, 20.0, 2.0]] * 3 + [[11.0, 20.0, 2.0], [10.5, 21.5, 2.0], [10.5, 21.5, 2.01]]])
    outside = np.array([[[-30.0, 5.0, 2.0], [5.0, 40.0, 2.0], [3e9, -3e9, 2.0], [5.0, 5.0, 9.0], [5.0, 6.0, 2.0]]])
    return [("random clouds 2x1024, 64 px", *scene(2, 1024, 64)), ("crowded wells 3x200, 12 px", *scene(3, 200, 12, True)),
            ("ties in position and depth", ties, 32), ("off the image and beyond the far depth", outside, 16),
            ("one point", *scene(1, 1, 32)), ("one point per image, 3 images", *scene(3, 1, 32)),
            ("empty cloud", np.zeros((2, 0, 3)), 16)]


def check_projection(lib) -> list[tuple[str, bool, str]]:
    import torch

    rng = np.random.default_rng(1)
    results = []
    for name, uvw_np, size in _projection_cases(rng):
        batch, points = uvw_np.shape[:2]
        rgb_np = rng.uniform(0, 1, (batch, points, 3))
        grad_mask = torch.from_numpy(rng.normal(size=(batch, size, size)))
        grad_image = torch.from_numpy(rng.normal(size=(batch, size, size, 3)))
        want = _reference(torch.from_numpy(uvw_np), torch.from_numpy(rgb_np), size, grad_mask, grad_image)
        for dtype, value_tol, grad_tol in ((torch.float32, 1e-5, 1e-4), (torch.float64, 1e-9, 1e-9)):
            to = lambda x: torch.as_tensor(x).to(dtype).cuda().contiguous()  # noqa: E731
            uvw, rgb = to(uvw_np), to(rgb_np)
            got = projection_cuda(lib, uvw, rgb, size, to(grad_mask), to(grad_image))
            errors = []
            for label, g, w, tol in zip(("mask", "image", "d uvw", "d rgb"), got, want,
                                        (value_tol, value_tol, grad_tol, grad_tol)):
                scale = 1.0 if label in ("mask", "image") else max(1.0, float(np.abs(w).max(initial=0.0)))
                err = float(np.abs(g.cpu().double().numpy() - w).max(initial=0.0)) / scale
                if not err <= tol:
                    errors.append(f"{label} off by {err:.2e} > {tol:g}")
            # The colour image has no gradient in the image plane (§5.4): d u, d v come from the mask alone.
            mask_only = projection_cuda(lib, uvw, rgb, size, to(grad_mask), torch.zeros_like(to(grad_image)))
            if not torch.equal(mask_only[2][..., :2], got[2][..., :2]):
                errors.append("the colour image moved d u or d v")
            results.append((f"Projection {name} ({str(dtype).split('.')[-1]}): values and gradients equal the dense "
                            "form", not errors, "; ".join(errors) or "ok"))
    return results


def time_projection(lib, repeats: int) -> list[str]:
    import torch

    lines = []
    for batch, points, size in ((8, 1024, 64), (32, 1024, 64), (8, 4096, 128)):
        gen = torch.Generator(device="cuda").manual_seed(0)
        uv = torch.rand(batch, points, 2, device="cuda", generator=gen) * (size + 8) - 4
        uvw = torch.cat([uv, 1.5 + torch.rand(batch, points, 1, device="cuda", generator=gen)], -1).contiguous()
        rgb = torch.rand(batch, points, 3, device="cuda", generator=gen)
        grad_mask = torch.randn(batch, size, size, device="cuda", generator=gen)
        grad_image = torch.randn(batch, size, size, 3, device="cuda", generator=gen)
        kernel = cuda_time_ms(lambda: projection_cuda(lib, uvw, rgb, size, grad_mask, grad_image), repeats)
        dense_bytes = batch * points * size * size * 4 * 12  # the [B, N, H, W] tensors autograd keeps, roughly
        if dense_bytes > torch.cuda.mem_get_info()[0] / 2:
            lines.append(f"Projection B={batch} N={points} {size} px: kernel {kernel:.3f} ms (forward + backward); "
                         f"dense PyTorch form skipped (it would need about {dense_bytes / 2**30:.0f} GiB)")
            continue
        leaf_uvw, leaf_rgb = uvw.clone().requires_grad_(True), rgb.clone().requires_grad_(True)

        def dense():
            mask, image = dense_projection(leaf_uvw, leaf_rgb, size)
            return torch.autograd.grad((grad_mask * mask).sum() + (grad_image * image).sum(), [leaf_uvw, leaf_rgb])

        reference = cuda_time_ms(dense, max(3, repeats // 4))
        lines.append(f"Projection B={batch} N={points} {size} px, forward + backward: kernel {kernel:.3f} ms, dense "
                     f"PyTorch form {reference:.2f} ms: {reference / kernel:.0f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cuda_kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", help="nvcc -arch value (default: the GPU's, e.g. sm_90)")
    parser.add_argument("--repeats", type=int, default=20, help="timed launches per measurement")
    parser.add_argument("--skip-timing", action="store_true", help="only the correctness checks")
    args = parser.parse_args(argv)
    missing = requirements_missing()
    if missing:
        print(f"bench_cuda_kernels: cannot run here: {missing}. This harness needs nvcc and PyTorch with a CUDA "
              "GPU; it checks and times the CUDA kernels of losses/ops without TensorFlow.", file=sys.stderr)
        return 2
    import torch

    major, minor = torch.cuda.get_device_capability()
    arch = args.arch or f"sm_{major}{minor}"
    print(f"GPU: {torch.cuda.get_device_name()} (compute capability {major}.{minor}); PyTorch {torch.__version__}; "
          f"nvcc -arch={arch}")
    with tempfile.TemporaryDirectory() as tmp:
        libraries = compile_kernels(arch, Path(tmp))
        results = check_nn_distance(libraries["nn_distance"]) + check_projection(libraries["projection"])
        for name, ok, detail in results:
            print(f"{'PASS' if ok else 'FAIL'}  {name}" + ("" if ok else f": {detail}"), flush=True)
        if not args.skip_timing:
            for line in time_nn_distance(libraries["nn_distance"], args.repeats) + \
                    time_projection(libraries["projection"], args.repeats):
                print(line, flush=True)
    failed = sum(not ok for _, ok, _ in results)
    print(f"{len(results) - failed} of {len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
