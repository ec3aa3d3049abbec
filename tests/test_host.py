"""jgen's process-wide host settings (jgen/__init__.py), observed from outside: the kernel's count of
page faults when a large block is allocated, written and freed a second time."""

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, resource, sys
if sys.argv[1] == "jgen":
    import jax, jgen
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


def _second_block_faults(mode: str, **env):
    """(page faults of the second 64 MiB block, the output's lines)"""
    env = {k: v for k, v in dict(os.environ, **env).items()  # not what this process's `import jgen` set
           if k not in ("JAX_CPU_ENABLE_ASYNC_DISPATCH", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")}
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1]), proc.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings")
def test_a_freed_large_block_is_reused_without_new_page_faults():
    pages = (64 << 20) // 4096
    assert _second_block_faults("plain")[0] > pages // 2  # glibc maps fresh zeroed pages for each block
    faults, out = _second_block_faults("jgen")  # jgen keeps the freed block, as for XLA:CPU's temporaries
    assert faults < 100 and "async False" in out  # and runs executions on the calling thread
    faults, out = _second_block_faults("jgen", JGEN_HOST_DEFAULTS="0")  # the opt-out
    assert faults > pages // 2 and "async True" in out
