"""What the training loop costs on top of its step: the real `jgen.run.train` (in-memory source, the
tf.data pipeline, prefetch, logging, the non-finite bookkeeping) against the bare jitted step on one
fixed device batch, in one process, with JAX's asynchronous dispatch on (as on a GPU or TPU).
Goal (issue 18): loop time per step / bare step time <= 1.05.

  python benchmarks/loop_overhead.py            # mnist5k DCGAN at batch 64 and the CIFAR-10 U-Net at batch 4
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.timing import timed, write_results  # noqa: E402
from jgen import host  # noqa: E402

# (recipe, overrides): the CIFAR-10 U-Net reads the offline digits as 32x32 RGB, so nothing is downloaded
CASES = [("dcgan_mnist5k", ["train.batch_size=64"]),
         ("ddpm_cifar10", ["train.batch_size=4", "data.source=builtin:mnist5k:train", "data.random_flip=false",
                           "optim.warmup_steps=0"])]


def bare_step_seconds(config):
    import jax
    import jax.numpy as jnp

    from jgen.families import get_family
    from jgen.sharding import batch_sharding, make_mesh, replicated
    from jgen.train.step import init_state, jit_train_step

    family, mesh = get_family(config.family), make_mesh()
    state = init_state(family, config, jax.random.PRNGKey(0), replicated(mesh))
    s, c, b = config.data.image_size, config.data.channels, config.train.batch_size
    batch = {"image": jax.device_put(jax.random.uniform(jax.random.PRNGKey(1), (b, s, s, c), minval=-1, maxval=1),
                                     batch_sharding(mesh)),
             "label": jax.device_put(jnp.zeros((b,), jnp.int32), batch_sharding(mesh))}
    step = jit_train_step(family, config, mesh)
    holder = [state]

    def one(_):
        holder[0], metrics = step(holder[0], batch)
        return metrics
    return timed(one, None, repeats=5, inner=20)


def loop_seconds(config, steps: int, window: int):
    """Seconds per step of jgen.run.train, from its own log windows after the first (which compiles)."""
    from jgen.config import apply_overrides
    from jgen.run import train

    with tempfile.TemporaryDirectory() as workdir:
        cfg = apply_overrides(config, [f"train.steps={steps}", f"train.log_every={window}", "train.sample_every=0",
                                       f"train.ckpt_every={steps}", "sample.num=4"])
        train(cfg, workdir)
        rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    rates = sorted(r["steps_per_sec"] for r in rows[1:])
    return 1.0 / rates[len(rates) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="loop steps per case (default 300)")
    p.add_argument("--window", type=int, default=50, help="steps per timed log window (default 50)")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    host.configure()
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", True)  # the host may run ahead, as on accelerators
    from jgen.config import apply_overrides, load_config

    rows = []
    for recipe, overrides in CASES:
        config = apply_overrides(load_config(recipe), overrides)
        bare = bare_step_seconds(config)
        loop = loop_seconds(config, a.steps, a.window)
        rows.append(dict(case=f"{recipe} b{config.train.batch_size}", bare_ms=bare * 1e3, loop_ms=loop * 1e3,
                         ratio=loop / bare))
        print(rows[-1], flush=True)
    lines = ["| case | bare step ms | loop ms per step | loop / bare |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['bare_ms']:.1f} | {r['loop_ms']:.1f} | {r['ratio']:.3f} |" for r in rows]
    heading = (f"Training loop overhead, {os.cpu_count()} CPU cores, jax {jax.__version__}, async dispatch on, "
               f"{time.strftime('%Y-%m-%d')} (`python benchmarks/loop_overhead.py`)")
    write_results(a.out, "loop-overhead", heading, "\n".join(lines), rows)


if __name__ == "__main__":
    main()
