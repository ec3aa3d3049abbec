"""Process-wide host settings for training on CPUs, applied by the `jgen` command and the benchmarks.

A library must not change the process that imports it, so none of this runs at `import jgen`;
`configure()` is called by `jgen.cli.main` (once its arguments are parsed) and by `benchmarks/`,
before JAX starts a backend, and does nothing unless the run will be on the CPU. Set
JGEN_HOST_DEFAULTS=0 to opt out.
"""

import importlib.util
import os
import sys

# Two XLA:CPU options, read when the first backend starts; a user's own choice of either wins, and
# neither changes any value.
# - YNNPACK takes single dots and convolutions by default; XLA's own (Eigen) kernels run jgen's
#   training steps faster on CPU: on 2 cores the mnist5k U-Net step takes 106 ms against 127, the
#   beta-VAE step 55 ms against 65 (benchmarks/results/cpu2-perf-2026-11-27.md).
# - The cse_barrier_expander pass removes optimisation barriers early; jgen's convolution gradients
#   place barriers on CPU so that weight-gradient transposes read stored activations
#   (jgen.nn.conv.materialised).
XLA_CPU_OPTIONS = (("--xla_cpu_experimental_ynn_fusion_type", "-individual_dot,-individual_convolution"),
                   ("--xla_disable_hlo_passes", "cse_barrier_expander"))


_TRUE, _FALSE = ("1", "y", "yes", "t", "true", "on"), ("0", "n", "no", "f", "false", "off")


def platform() -> str:
    """The platform JAX will pick, decided without starting a backend: JAX_PLATFORMS when set, else
    'gpu' or 'tpu' when their plugin is installed, else 'cpu'."""
    chosen = os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip().lower()
    if chosen:
        return "gpu" if chosen in ("cuda", "rocm") else chosen
    if any(importlib.util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin")):
        return "gpu"
    return "tpu" if importlib.util.find_spec("libtpu") else "cpu"


def configure() -> bool:
    """Applies the CPU host settings; returns whether it did (False off CPU or with JGEN_HOST_DEFAULTS=0).
    Raises ValueError for a JAX_CPU_ENABLE_ASYNC_DISPATCH that is neither true nor false.
    On every platform it first quiets TensorFlow's C++ logs (TF_CPP_MIN_LOG_LEVEL=2, TF_ENABLE_ONEDNN_OPTS=0
    unless set).

    XLA:CPU allocates all of an execution's temporaries as one block (57 MB for the offline U-Net
    step, 1.9 GB for benchmarks/run.py's DiT at batch 64). glibc serves such blocks with a fresh mmap
    and unmaps them on free, so every step page-faults its temporaries afresh: 35-55 ms of kernel time
    a U-Net step, ~800 ms a DiT step, on 2 cores. Two settings together keep the block instead:
    - JAX's synchronous CPU dispatch: a single-device computation whose inputs are ready runs on the
      calling thread, so its block comes from the main thread's glibc arena. Dispatched
      asynchronously it runs on one of XLA's worker threads, whose arenas map any block over 64 MB
      afresh whatever mallopt says.
    - glibc keeps freed memory (no mmap for large blocks, no trimming).
    Measured on 2 cores (benchmarks/results/cpu2-sync-dispatch-2026-12-07.md), against the same code
    with the flag left on (until 2026-12-07 it was, whenever jax was imported after this call): the
    DiT train step 0.87-0.98x -> 1.14-1.25x torch eager at the same peak memory; the whole main job
    trained in the same time (15 min 37 s against 15 min 38 s, back to back), the GAN steps within
    run-to-run drift. The costs: the process keeps its peak host memory until it exits, and the
    Python loop no longer runs ahead of the CPU.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow only feeds data; keep its C++ logs quiet
    # TensorFlow announces its oneDNN kernels at import (through absl, past TF_CPP_MIN_LOG_LEVEL), before
    # jgen's own output and errors. jgen computes nothing with TensorFlow (it writes TensorBoard files and
    # reads TFDS metadata), so turning those kernels off changes no number jgen produces.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if os.environ.get("JGEN_HOST_DEFAULTS", "1") == "0" or platform() != "cpu":
        return False
    for option, value in XLA_CPU_OPTIONS:
        if option not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {option}={value}").strip()
    # A JAX flag, not a state: JAX reads no environment variable for it, so it is set through jax.config
    # (importing jax, ~1 s: the `jgen` command calls this after parsing its arguments, so --help stays quick).
    # JAX reads it when it creates the CPU client: called after that, it changes nothing for this process.
    # The variable is jgen's: set, it wins, spelled as JAX spells booleans.
    import jax

    word = os.environ.get("JAX_CPU_ENABLE_ASYNC_DISPATCH", "false").strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError(f"JAX_CPU_ENABLE_ASYNC_DISPATCH={word!r}: expected true or false")
    jax.config.update("jax_cpu_enable_async_dispatch", word in _TRUE)
    if not any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
        _keep_freed_memory()
    return True


def _keep_freed_memory() -> None:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    libc.mallopt(-4, 0)  # M_MMAP_MAX: large blocks come from the heap
    libc.mallopt(-1, 2 ** 31 - 1)  # M_TRIM_THRESHOLD: freed memory stays with the process


def hide_gpus_from_tensorflow() -> None:
    """TensorFlow only reads TFDS metadata and writes TensorBoard; the accelerators belong to JAX, so it
    must not claim their memory. jgen.data.sources calls it before a TFDS source opens."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow's devices are initialised already (hidden by an earlier call)
        pass


def enable_compile_cache() -> None:
    """Persist XLA executables between runs (JGEN_COMPILE_CACHE, default ~/.cache/jgen/xla; empty to
    disable): a re-run or resume skips the 10 s+ compile."""
    import jax

    cache = os.environ.get("JGEN_COMPILE_CACHE", os.path.expanduser("~/.cache/jgen/xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)


class _OneLine:
    """Library log records (Orbax's background writers) keep their message, lose the traceback wall;
    the failure itself reaches the user as jgen's one-line error."""

    def filter(self, record):
        if record.exc_info:
            record.msg = f"{first_line(record.getMessage())} ({record.exc_info[0].__name__})"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_library_errors() -> None:
    """The CLI's one-line errors, kept so: library log records and background-thread failures are
    reduced to one line each."""
    import logging
    import threading
    import warnings

    if getattr(sys.excepthook, "jgen", False):  # applied already (main() called again in one process)
        return
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("absl").addFilter(_OneLine())
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # echoes of Orbax's failures, one per write
    threading.excepthook = lambda a: error_line(f"background thread {a.thread.name if a.thread else ''}: "
                                                f"{a.exc_type.__name__}: {first_line(str(a.exc_value))[:200]}")
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited")
    # After a failed checkpoint write, tensorstore's completion callbacks keep reporting into Orbax's
    # closed event loop, as unraisable exceptions from its threads (and as uncaught ones): one failure,
    # dozens of identical tracebacks, written piece by piece while the main thread writes jgen's
    # verdict, which could then start mid-line. They are dropped.
    def closed_loop(e):
        return isinstance(e, RuntimeError) and "Event loop is closed" in str(e)

    default, default_unraisable = sys.excepthook, sys.unraisablehook

    def hook(t, v, tb):
        if not closed_loop(v):
            default(t, v, tb)
    hook.jgen = True
    sys.excepthook = hook
    sys.unraisablehook = lambda u: None if closed_loop(u.exc_value) else default_unraisable(u)


def first_line(text: str) -> str:
    """The first line of text, or '' for an empty message (RuntimeError() has one)."""
    return (text.splitlines() or [""])[0]


def error_line(message: str) -> None:
    """Writes `jgen: {message}` and its newline to stderr in one write (print() makes two), so that no
    other thread's output lands inside jgen's line."""
    sys.stderr.write(f"jgen: {message}\n")
    sys.stderr.flush()
