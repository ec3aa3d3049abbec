"""Importing jgen changes nothing in the process; jgen.host.configure() applies the CPU host settings.

Observed from outside, in fresh interpreters: the environment after importing every jgen module, and
the kernel's count of page faults when a large block is allocated, written and freed a second time
(glibc maps fresh zeroed pages for each large block unless told to keep freed memory)."""

import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# TensorFlow and TFDS set a few variables of their own when imported (TF2_BEHAVIOR, KMP_*, ...):
# they are imported first, so what is compared is what jgen's own modules add.
IMPORT_ALL = """
import importlib, os, pkgutil, sys
import tensorflow, tensorflow_datasets, orbax.checkpoint, flax, optax, mlxtend.data
before = dict(os.environ)
import jgen
names = [m.name for m in pkgutil.walk_packages(jgen.__path__, "jgen.")]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
import jax
print(len(names), changed, jax.config.values["jax_cpu_enable_async_dispatch"])
"""

PROBE = """
import ctypes, importlib, pkgutil, resource, sys
import jax, jgen
for m in pkgutil.walk_packages(jgen.__path__, "jgen."):
    importlib.import_module(m.name)
if sys.argv[1] == "configure":
    import jgen.host
    jgen.host.configure()
print("async", jax.config.values["jax_cpu_enable_async_dispatch"])
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]

def faults_of_a_block(n):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_a_block(64 << 20)
print(faults_of_a_block(64 << 20))
"""

_HOST_KEYS = ("JAX_CPU_ENABLE_ASYNC_DISPATCH", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "JGEN_HOST_DEFAULTS",
              "XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")


def _thp_always():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


# The fault counts below assume glibc and 4 KiB pages: with transparent huge pages always on, a fresh
# block takes one fault per 2 MiB and the "fresh pages" side of each comparison cannot be seen.
_GLIBC_4K_PAGES = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" or _thp_always(),
    reason="counts glibc's page faults at 4 KiB pages")


def _python(code, *args, **env):
    env = {k: v for k, v in dict(os.environ, **env).items() if k not in _HOST_KEYS or k in env}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()


def test_importing_every_module_leaves_the_environment_and_jax_as_they_were():
    count, rest = _python(IMPORT_ALL)[-1].split(" ", 1)
    changed, async_dispatch = rest.rsplit(" ", 1)
    assert int(count) >= 30  # every module of the package was imported
    assert changed == "[]" and async_dispatch == "True"


@_GLIBC_4K_PAGES
def test_configure_keeps_freed_large_blocks_and_import_does_not():
    pages = (64 << 20) // 4096
    out = _python(PROBE, "import")  # imported, not configured: glibc's default, fresh pages per block
    assert int(out[-1]) > pages // 2 and "async True" in out
    out = _python(PROBE, "configure")  # the freed block is kept, as for XLA:CPU's temporaries
    assert int(out[-1]) < 100 and "async False" in out  # and synchronous dispatch is asked for
    out = _python(PROBE, "configure", JGEN_HOST_DEFAULTS="0")  # the opt-out
    assert int(out[-1]) > pages // 2 and "async True" in out


# An XLA:CPU computation whose temporaries (three 64 MB activations of a 2**18-row batch) outgrow the 64 MB
# heap of a glibc thread arena: the minor page faults of a call, once warm, against its temporaries' pages.
XLA_PROBE = """
import resource
import jgen.host
jgen.host.configure()  # before jax is imported, as the `jgen` command calls it
import jax, jax.numpy as jnp

def loss(w, x):
    return jnp.sum(jnp.tanh(jnp.tanh(x @ w) @ w))

step = jax.jit(jax.grad(loss))
w, x = jnp.full((64, 64), 0.01), jnp.ones((1 << 18, 64))
pages = step.lower(w, x).compile().memory_analysis().temp_size_in_bytes // 4096
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(step(w, x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(jax.config.values["jax_cpu_enable_async_dispatch"], pages, sorted(faults[2:])[1])
"""


def test_a_misspelt_dispatch_variable_is_one_line_and_exit_2(monkeypatch, capsys):
    from jgen.cli import main

    monkeypatch.setenv("JAX_CPU_ENABLE_ASYNC_DISPATCH", "maybe")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("JGEN_HOST_DEFAULTS", raising=False)
    assert main(["train", "--config", "configs/flow_mnist5k_cfg.py", "--workdir", "/nonexistent/never"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "jgen: error: JAX_CPU_ENABLE_ASYNC_DISPATCH='maybe': expected true or false"]


@_GLIBC_4K_PAGES
def test_a_step_with_temporaries_past_64_mb_reuses_them_after_configure():
    """Synchronous dispatch runs the step on the main thread, whose arena keeps the freed block; JAX reads
    no environment variable for that flag, so configure() must set it even before jax is imported."""
    asynchronous, pages, faults = _python(XLA_PROBE)[-1].split()
    assert asynchronous == "False" and int(pages) > (64 << 20) // 4096
    assert int(faults) < int(pages) // 20
    for env in ({"JGEN_HOST_DEFAULTS": "0"}, {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "true"}):
        # glibc's default, or kept memory but the step on a worker thread: fresh pages at every call
        asynchronous, pages, faults = _python(XLA_PROBE, **env)[-1].split()
        assert asynchronous == "True" and int(faults) > int(pages) // 2, env


def test_configure_does_nothing_off_cpu():
    out = _python("import os, jgen.host as h; print(h.configure(), os.environ.get('XLA_FLAGS'))",
                  JAX_PLATFORMS="cuda")
    assert out[-1] == "False None"


def test_library_errors_reach_stderr_as_one_line_each():
    """After quiet_library_errors(): a background thread's exception, even one with no message, is one
    jgen line; tensorstore's reports into a closed event loop (unraisable or uncaught) print nothing."""
    code = """
import sys, threading
from jgen import host
host.quiet_library_errors()
def fail():
    raise RuntimeError()
t = threading.Thread(target=fail, name="writer")
t.start(); t.join()
sys.unraisablehook(type("U", (), dict(exc_type=RuntimeError, exc_value=RuntimeError("Event loop is closed"),
                                      exc_traceback=None, err_msg=None, object=None))())
sys.excepthook(RuntimeError, RuntimeError("Event loop is closed"), None)
host.error_line("error: the verdict")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == ["jgen: background thread writer: RuntimeError: ", "jgen: error: the verdict"]
