"""GroupNorm and the offline-default U-Net step on XLA:CPU: Flax's GroupNorm against jgen's.

jgen normalises with reductions over H, W first and channel groups second, and a hand-written
backward pass, because XLA:CPU is slow on one reduction over a [B, HW, G, C/G] view. Both variants
are timed in one process, alternating, and reported as ratios. Run: python benchmarks/groupnorm_step.py
"""

import argparse
import math
import os
import platform
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jgen.nn.layers as layers
import jgen.nn.unet as unet
from jgen.config import load_config
from jgen.families.diffusion import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.timing import timed, write_results  # noqa: E402


def flax_group_norm(channels, groups, name=None):
    return nn.GroupNorm(num_groups=math.gcd(groups, channels), epsilon=1e-6, name=name)


def step_fn(config, batch):
    model = make_model(config)
    x = jnp.zeros((batch, 28, 28, 1))
    t = jnp.zeros((batch,), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), x, t)
    tx = optax.adam(1e-3)

    @jax.jit
    def step(p, o):
        loss, g = jax.value_and_grad(lambda p: jnp.mean(jnp.square(model.apply(p, x, t) - x)))(p)
        u, o = tx.update(g, o)
        return optax.apply_updates(p, u), o
    return step, (params, tx.init(params))


def main():
    from jgen import host

    host.configure()  # the CPU host settings the `jgen` command applies
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    rows = []
    for shape in [(32, 28, 28, 64), (32, 14, 14, 64)]:
        x = jax.random.normal(jax.random.PRNGKey(0), shape)
        ours, theirs = layers.GroupNorm(32), nn.GroupNorm(32, epsilon=1e-6)
        p = theirs.init(jax.random.PRNGKey(0), x)
        for name, m in (("jgen", ours), ("flax", theirs)):
            f = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(m.apply(p, x)))))
            rows.append(dict(what=f"GroupNorm(32) fwd+bwd {shape}", impl=name, ms=1e3 * timed(f, x)))
    config = load_config("ddpm_mnist5k")
    original = layers.group_norm
    for name, gn in (("jgen", original), ("flax", flax_group_norm)) * 2:  # alternate, twice
        layers.group_norm = unet.group_norm = gn  # the U-Net and its blocks both call group_norm
        step, state = step_fn(config, args.batch)
        rows.append(dict(what=f"mnist5k U-Net train step, batch {args.batch}", impl=name, ms=1e3 * timed(step, *state)))
    layers.group_norm = unet.group_norm = original

    table = {}
    for r in rows:
        table.setdefault(r["what"], {}).setdefault(r["impl"], []).append(r["ms"])
    lines = ["| what | jgen ms | flax ms | flax / jgen |", "|---|---|---|---|"]
    for what, v in table.items():
        a, b = np.median(v["jgen"]), np.median(v["flax"])
        lines.append(f"| {what} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    heading = (f"GroupNorm on XLA:CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
               f"jax {jax.__version__})")
    write_results(args.out, "groupnorm", heading, "\n".join(lines), rows)


if __name__ == "__main__":
    main()
