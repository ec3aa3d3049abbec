"""The one timer the benchmarks share: median of repeated windows after a warm-up call."""

import time

import numpy as np


def timed(fn, *args, repeats=5, inner=5, sync=None):
    """Median seconds per call of fn(*args); `sync(out)` waits for the result (default: JAX's)."""
    if sync is None:
        import jax
        sync = jax.block_until_ready
    sync(fn(*args))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        sync(out)
        runs.append((time.perf_counter() - t0) / inner)
    return float(np.median(runs))
