"""Builds the custom ops from source: ``python -m losses.ops.build [--cuda auto|on|off] [--force]``.

Two libraries (:data:`LIBRARIES`): ``NnDistance`` (nearest neighbours, losses/chamfer.py) and ``Projection`` /
``ProjectionGrad`` (the fused silhouette and colour renders, model/projection.py). Output:
``losses/ops/_build/<name>.so`` (git-ignored) plus ``build_stamp.json``, which records a fingerprint of the
sources, the TensorFlow version and flags, the compiler and the CUDA decision. A second run with the same
fingerprint does nothing, so ``install.sh`` can call it every time.

The CPU kernels (``*_op.cc``) are always built, by the host C++ compiler with the compile and link flags that
``tf.sysconfig`` reports (they carry the C++ standard and the ``_GLIBCXX_USE_CXX11_ABI`` setting that must
match TensorFlow's). The CUDA kernels (``*_kernel.cu``) are added when ``--cuda auto`` (the default) finds
``nvcc``, a CUDA build of TensorFlow with nvcc's CUDA major version, and a GPU that TensorFlow can use;
otherwise the reason for skipping them is printed. ``--cuda on`` builds them regardless (for example on a build
host without a GPU) and fails if it cannot. nvcc compiles only the .cu files, which include no TensorFlow
header (TF >= 2.15 headers do not parse under nvcc, tensorflow issue 62081); the TF-facing registration stays
in the .cc files built by the host compiler. The toolkit's CUDA runtime is linked statically and kept private,
so the libraries also load on machines without CUDA libraries.

Exit status: 0 when the libraries are up to date or were built, 1 with the compiler's message when a compile fails.
"""

if __name__ in ("__main__", "__mp_main__"):  # a CLI (or its spawned worker): TensorFlow imported quietly first
    import runtime.quiet_tensorflow  # noqa: F401

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OPS_DIR = Path(__file__).resolve().parent
BUILD_DIR = OPS_DIR / "_build"
STAMP_NAME = "build_stamp.json"


@dataclasses.dataclass(frozen=True)
class Library:
    """One op library: ``<name>.so`` from a TF-facing .cc file and, with CUDA, a .cu file.

    Attributes:
        name: library name, also the argument of ``losses.ops.loader.load``.
        op_source: the .cc file (op registration, CPU kernels, GPU op wrappers), built by the host compiler.
        kernel_source: the .cu file (CUDA kernels behind plain launch functions), built by nvcc.
        headers: headers the two include (part of the fingerprint).
        cuda_define: macro that enables the GPU op wrappers in op_source.
    """

    name: str
    op_source: str
    kernel_source: str
    headers: tuple[str, ...]
    cuda_define: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.so"


LIBRARIES = (
    Library("nn_distance", "nn_distance_op.cc", "nn_distance_kernel.cu", ("nn_distance_cuda.h",),
            "NN_DISTANCE_WITH_CUDA"),
    Library("projection", "projection_op.cc", "projection_kernel.cu", ("projection_cuda.h", "projection_math.h"),
            "PROJECTION_WITH_CUDA"),
)
SOURCES = tuple(name for lib in LIBRARIES for name in (lib.op_source, *lib.headers, lib.kernel_source))

# -O3 for the vectorised loops; no contraction into fused multiply-adds so that the CPU and CUDA kernels
# (nvcc --fmad=false) round every distance the same way and pick the same neighbour.
CXX_FLAGS = ("-shared", "-fPIC", "-O3", "-ffp-contract=off",
             "-Wno-deprecated-declarations", "-Wno-interference-size", "-Wno-psabi")
NVCC_FLAGS = ("-c", "-O3", "-std=c++17", "--fmad=false", "-Xcompiler", "-fPIC")
# Used by --cuda on when TensorFlow sees no GPU to take the architecture from.
NVCC_DEFAULT_ARCH = "-arch=all-major"


class BuildError(RuntimeError):
    """A compile or link step of the custom op failed; the message carries the command and its output."""


def sources_digest() -> str:
    """SHA-256 of the ops' source files (the loader compares it to the stamp to detect a stale library)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode())
        digest.update((OPS_DIR / name).read_bytes())
    return digest.hexdigest()


def find_cxx() -> str | None:
    """Path of the host C++ compiler: the first of g++, c++, clang++ on PATH."""
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def nvcc_cuda_version(nvcc: str) -> str:
    """CUDA release of nvcc, e.g. "12.5" (from `nvcc --version`)."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"release (\d+\.\d+)", out)
    if match is None:
        raise BuildError(f"losses.ops.build: cannot read the CUDA release from `{nvcc} --version`:\n{out}")
    return match.group(1)


def cuda_skip_reason(nvcc: str | None) -> str | None:
    """Why the CUDA kernel cannot be built and used here, or None when it can.

    Args:
        nvcc: path of nvcc, or None when it is not on PATH.
    """
    import tensorflow as tf

    if nvcc is None:
        return "nvcc not found on PATH"
    if not tf.test.is_built_with_cuda():
        return f"TensorFlow {tf.__version__} is not a CUDA build"
    tf_cuda = tf.sysconfig.get_build_info().get("cuda_version", "unknown")
    nvcc_cuda = nvcc_cuda_version(nvcc)
    if nvcc_cuda.split(".")[0] != tf_cuda.split(".")[0]:
        return (f"nvcc is CUDA {nvcc_cuda} but TensorFlow {tf.__version__} was built with CUDA {tf_cuda} "
                "(the major versions must match)")
    if not tf.config.list_physical_devices("GPU"):
        return ("TensorFlow sees no GPU (no driver, or the CUDA libraries of tensorflow[and-cuda] are missing); "
                "pass --cuda on to build the kernel anyway")
    return None


def _gpu_arch_flags() -> list[str]:
    """nvcc architecture flags for the GPUs TensorFlow sees (SASS plus PTX), else NVCC_DEFAULT_ARCH."""
    import tensorflow as tf

    capabilities = set()
    for gpu in tf.config.list_physical_devices("GPU"):
        major, minor = tf.config.experimental.get_device_details(gpu)["compute_capability"]
        capabilities.add(f"{major}{minor}")
    if not capabilities:
        return [NVCC_DEFAULT_ARCH]
    return [f"-gencode=arch=compute_{cc},code=[sm_{cc},compute_{cc}]" for cc in sorted(capabilities)]


def _tool_version(tool: str) -> str:
    """First line of `tool --version` (part of the fingerprint: a new compiler triggers a rebuild)."""
    result = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else tool


def fingerprint(cxx: str, nvcc: str | None) -> str:
    """Hash of everything the library depends on: sources, this recipe, TF version and flags, compilers, CUDA.

    Args:
        cxx: host compiler path.
        nvcc: nvcc path when the CUDA kernel is built, else None.
    """
    import tensorflow as tf

    recipe = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    parts = [sources_digest(), recipe, tf.__version__, *tf.sysconfig.get_compile_flags(),
             *tf.sysconfig.get_link_flags(), *CXX_FLAGS, _tool_version(cxx)]
    if nvcc is not None:
        parts += ["cuda", _tool_version(nvcc), *NVCC_FLAGS, *_gpu_arch_flags()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def read_stamp(out_dir: Path | None = None) -> dict | None:
    """The stamp of the last successful build in out_dir (default BUILD_DIR), or None."""
    try:
        return json.loads((Path(out_dir or BUILD_DIR) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_up_to_date(out_dir: Path, want: str) -> bool:
    """True when out_dir holds every library, built with fingerprint `want`."""
    stamp = read_stamp(out_dir)
    return (stamp is not None and stamp.get("fingerprint") == want
            and all((out_dir / lib.file_name).is_file() for lib in LIBRARIES))


def _run(cmd: list[str], step: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"losses.ops.build: {step} failed (exit {result.returncode}):\n  {' '.join(cmd)}\n"
                         f"{result.stdout}{result.stderr}")


def _cuda_library_flags(nvcc: str) -> list[str]:
    """The -L flags nvcc itself links with (read from `nvcc --dryrun`, which works for wrapper scripts too)."""
    result = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                            capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("#$ LIBRARIES="):
            return [flag.strip('"') for flag in line.split("=", 1)[1].split()
                    if flag.startswith('"-L') and not flag.rstrip('"').endswith("stubs")]
    raise BuildError(f"losses.ops.build: cannot find the CUDA library folder in `{nvcc} --dryrun`")


def _compile(lib: Library, cxx: str, nvcc: str | None, tmp: Path, library: Path) -> None:
    """Compiles one library's sources into `library` (CPU kernels, plus the CUDA kernels when nvcc is given)."""
    import tensorflow as tf

    extra_objects, defines, cuda_libs = [], [], []
    if nvcc is not None:
        kernel_obj = tmp / Path(lib.kernel_source).with_suffix(".o").name
        _run([nvcc, *NVCC_FLAGS, *_gpu_arch_flags(), str(OPS_DIR / lib.kernel_source), "-o", str(kernel_obj)],
             f"nvcc compile of {lib.kernel_source}")
        extra_objects = [str(kernel_obj)]
        defines = [f"-D{lib.cuda_define}"]
        # The toolkit's static CUDA runtime, linked before TensorFlow (whose framework library exports a CUDA
        # runtime stub) and kept private to this library.
        cuda_libs = [*_cuda_library_flags(nvcc), "-lcudart_static", "-Wl,--exclude-libs,libcudart_static.a",
                     "-ldl", "-lrt", "-lpthread"]
    _run([cxx, *CXX_FLAGS, *defines, *tf.sysconfig.get_compile_flags(), str(OPS_DIR / lib.op_source),
          *extra_objects, "-o", str(library), *cuda_libs, *tf.sysconfig.get_link_flags()],
         f"{Path(cxx).name} compile of {lib.op_source}")


def build(out_dir: Path | None = None, cuda: str = "auto", force: bool = False) -> Path:
    """Builds every op library into out_dir unless they are up to date; prints what it does.

    Args:
        out_dir: output folder, created when missing; default BUILD_DIR (git-ignored).
        cuda: "auto" (build the CUDA kernel when cuda_skip_reason finds nothing against it), "on" or "off".
        force: rebuild even when the fingerprint matches.

    Returns:
        The output folder.

    Raises:
        BuildError: no C++ compiler, nvcc missing with cuda="on", or a failed compile.
    """
    import tensorflow as tf

    cxx = find_cxx()
    if cxx is None:
        raise BuildError("losses.ops.build: no C++ compiler (g++, c++ or clang++) on PATH; install g++")
    nvcc = shutil.which("nvcc")
    if cuda == "on":
        if nvcc is None:
            raise BuildError("losses.ops.build: --cuda on but nvcc is not on PATH")
    elif cuda == "off":
        print("losses.ops.build: CUDA kernel skipped: --cuda off")
        nvcc = None
    else:
        reason = cuda_skip_reason(nvcc)
        if reason is not None:
            print(f"losses.ops.build: CUDA kernel skipped: {reason}")
            nvcc = None
    want = fingerprint(cxx, nvcc)
    out_dir = Path(out_dir or BUILD_DIR)
    names = ", ".join(lib.file_name for lib in LIBRARIES)
    if not force and is_up_to_date(out_dir, want):
        print(f"losses.ops.build: {names} are up to date (sources, TensorFlow and compilers unchanged)")
        return out_dir
    kernels = "CPU and CUDA kernels" if nvcc else "CPU kernels"
    print(f"losses.ops.build: compiling the {kernels} of {names} against TensorFlow {tf.__version__} ...")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = [Path(tmp) / lib.file_name for lib in LIBRARIES]
        for lib, path in zip(LIBRARIES, staged):
            _compile(lib, cxx, nvcc, Path(tmp), path)  # a failure here leaves the previous build intact
        (out_dir / STAMP_NAME).unlink(missing_ok=True)  # no stamp while the libraries are half replaced
        for lib, path in zip(LIBRARIES, staged):
            os.replace(path, out_dir / lib.file_name)  # atomic: a process that loaded the old file keeps its copy
    stamp = {"fingerprint": want, "sources_sha256": sources_digest(), "tf_version": tf.__version__,
             "cuda": nvcc is not None}
    (out_dir / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
    print(f"losses.ops.build: built {names} in {out_dir}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m losses.ops.build", description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", choices=("auto", "on", "off"), default="auto",
                        help="build the CUDA kernels: auto (when nvcc, a CUDA TensorFlow and a GPU are present), "
                             "on, off")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--out", type=Path, help="output folder (default: losses/ops/_build)")
    args = parser.parse_args(argv)
    try:
        build(args.out, cuda=args.cuda, force=args.force)
    except BuildError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
