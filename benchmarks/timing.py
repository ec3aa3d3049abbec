"""What the benchmarks share: one timer (median of repeated windows after a warm-up call), one results
writer, and `jgen`, the command line as a user runs it."""

import os
import subprocess
import sys
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

    print(text)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"cpu{os.cpu_count()}-{name}-{time.strftime('%Y-%m-%d')}")
    with open(stem + ".md", "w") as f:
        f.write(f"# {heading}\n\n{text}\n")
    with open(stem + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    return stem


def jgen(*args) -> str:
    """Runs `python -m jgen.cli ARGS` from the repository root and returns its stdout; a
    failure stops the benchmark with the command and the end of its stderr."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "jgen.cli", *map(str, args)], cwd=root, capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode:
        raise SystemExit(f"jgen {' '.join(map(str, args))} failed: {proc.stderr[-2000:]}")
    return proc.stdout
