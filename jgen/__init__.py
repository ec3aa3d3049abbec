"""jgen: deep image generators in JAX/Flax (diffusion, GANs, VAEs)."""

import os
import sys

__version__ = "0.1.0"

# Two XLA:CPU options, read when the first backend starts (so they must be in XLA_FLAGS before then);
# a user's own choice of either option wins, and neither changes any value.
# - YNNPACK takes single dots and convolutions by default; XLA's own (Eigen) kernels run jgen's
#   training steps faster on CPU: on 2 cores the mnist5k U-Net step takes 106 ms against 127, the
#   beta-VAE step 55 ms against 65 (benchmarks/results/cpu2-perf-2026-11-27.md). No effect off CPU.
# - The cse_barrier_expander pass removes optimisation barriers early; jgen's convolution gradients
#   place barriers on CPU so that weight-gradient transposes read stored activations
#   (jgen.nn.conv.materialised).
for _option, _value in (("--xla_cpu_experimental_ynn_fusion_type", "-individual_dot,-individual_convolution"),
                        ("--xla_disable_hlo_passes", "cse_barrier_expander")):
    if _option not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_option}={_value}").strip()


def _keep_host_memory() -> None:
    """Two process-wide host settings for XLA:CPU, unless JGEN_HOST_DEFAULTS=0 or the user set them.

    XLA:CPU allocates all of an execution's temporaries as one block (57 MB for the offline U-Net
    step, more for the CelebA beta-VAE). glibc serves such blocks with a fresh mmap and unmaps them
    on free, so every step page-faulted ~14,000 zeroed pages: 35-55 ms of kernel time per step on
    2 cores. Freed memory is kept instead (no trimming, no mmap for large blocks), and executions
    run on the calling thread (synchronous dispatch), whose heap glibc grows once and reuses;
    allocations on XLA's worker threads land in per-thread arenas that glibc still unmaps.
    Measured on 2 cores: U-Net step 91-106 -> 82-88 ms, beta-VAE CelebA 90-116 -> 69-76 ms.
    The cost is that the process keeps its peak host memory until it exits.
    """
    if os.environ.get("JGEN_HOST_DEFAULTS", "1") == "0":
        return
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" not in os.environ:
        if "jax" in sys.modules:
            sys.modules["jax"].config.update("jax_cpu_enable_async_dispatch", False)
        else:  # read when jax is imported; importing it here would slow `jgen --help`
            os.environ["JAX_CPU_ENABLE_ASYNC_DISPATCH"] = "false"
    if not any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc (macOS, musl): nothing to tune
            return
        libc.mallopt(-4, 0)  # M_MMAP_MAX: large blocks come from the heap
        libc.mallopt(-1, 2 ** 31 - 1)  # M_TRIM_THRESHOLD: freed memory stays with the process


_keep_host_memory()
