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


def write_results(out_dir, name, heading, text, rows):
    """Prints the markdown table and writes results/cpu<N>-<name>-<date>.{md,json}; returns the stem."""
    import json
    import os

    print(text)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"cpu{os.cpu_count()}-{name}-{time.strftime('%Y-%m-%d')}")
    with open(stem + ".md", "w") as f:
        f.write(f"# {heading}\n\n{text}\n")
    with open(stem + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    return stem
