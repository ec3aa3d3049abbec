"""bfloat16 compute and gradient accumulation against float32: DDPM train-step time and XLA's memory plan.

For each variant of one U-Net config (default: the CIFAR-10 DDPM at a small batch, or --config/--set),
jits the real `train_step` and reports: median seconds per step (timed windows after warm-up, variants
alternated so drift hits all alike), images/s, and the compiled program's temporary (activation)
bytes from `compiled.memory_analysis()`: the peak working memory XLA plans, exact and repeatable.

Run: python benchmarks/precision.py [--batch 16] [--config configs/ddpm_cifar10.py] [--set KEY=VALUE ...]
"""

import argparse
import os
import platform
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.timing import timed, write_results  # noqa: E402
from jgen import host  # noqa: E402
from jgen.config import apply_overrides, load_config  # noqa: E402
from jgen.families import diffusion  # noqa: E402
from jgen.train.step import init_state, train_step  # noqa: E402

VARIANTS = [("float32", 1), ("bfloat16", 1), ("float32", 4)]


def compiled_step(config, batch):
    state = init_state(diffusion, config, jax.random.PRNGKey(0))
    step = jax.jit(lambda s, b: train_step(diffusion, config, s, b), donate_argnums=0)
    compiled = step.lower(state, batch).compile()
    return state, compiled


def main():
    host.configure()  # the CPU host settings the `jgen` command applies
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "ddpm_cifar10.py"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    base = apply_overrides(load_config(args.config), args.set + [f"train.batch_size={args.batch}"])
    size, ch = base.data.image_size, base.data.channels
    rng = np.random.default_rng(0)
    batch = {"image": np.float32(rng.uniform(-1, 1, (args.batch, size, size, ch))),
             "label": np.zeros(args.batch, np.int32)}
    runs = {}
    for dtype, accum in VARIANTS:
        config = apply_overrides(base, [f"train.compute_dtype={dtype}", f"train.grad_accum={accum}"])
        state, compiled = compiled_step(config, batch)
        mem = compiled.memory_analysis()
        runs[(dtype, accum)] = dict(holder=[state], compiled=compiled, temp=mem.temp_size_in_bytes, times=[])

    def one(run):
        run["holder"][0], metrics = run["compiled"](run["holder"][0], batch)
        return metrics

    for _ in range(args.repeats):  # alternate the variants window by window
        for run in runs.values():
            run["times"].append(timed(one, run, repeats=1, inner=3))
    rows = []
    ref = runs[VARIANTS[0]]
    for (dtype, accum), run in runs.items():
        sec = float(np.median(run["times"]))
        rows.append(dict(compute_dtype=dtype, grad_accum=accum, batch=args.batch, step_s=sec,
                         images_per_s=args.batch / sec, temp_mib=run["temp"] / 2**20,
                         speed_vs_f32=float(np.median(ref["times"])) / sec, memory_vs_f32=run["temp"] / ref["temp"]))
    lines = ["| compute | grad_accum | batch | s/step | images/s | XLA temp memory (MiB) | speed vs float32 | "
             "memory vs float32 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['compute_dtype']} | {r['grad_accum']} | {r['batch']} | {r['step_s']:.3f} | "
                     f"{r['images_per_s']:.1f} | {r['temp_mib']:.0f} | {r['speed_vs_f32']:.2f}x | "
                     f"{r['memory_vs_f32']:.2f}x |")
    device = jax.devices()[0]
    text = (f"{device.device_kind} ({platform.machine()}, {os.cpu_count()} cores), jax {jax.__version__}; "
            f"{os.path.basename(args.config)} {' '.join(args.set)}, `train_step` jitted, "
            f"median of {args.repeats} alternated windows of 3 steps.\n\n" + "\n".join(lines))
    name = "bf16" if device.platform == "cpu" else f"{device.platform}-bf16"
    write_results(os.path.join(ROOT, "benchmarks", "results"), name,
                  "bfloat16 compute and gradient accumulation vs float32 (DDPM train step)", text, rows)


if __name__ == "__main__":
    main()
