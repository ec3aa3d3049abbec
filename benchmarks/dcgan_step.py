"""DCGAN train step on XLA:CPU: transposed convolutions as lax.conv_transpose ('before') against the
phase form jgen uses ('after', jgen.nn.conv.conv_transpose_phases), with PyTorch eager on the twin
networks beside them when torch is installed. One process, variants alternated, images/s (median of
timed windows) and ratios.

Run: python benchmarks/dcgan_step.py [--batch 64]
"""

import argparse
import os
import platform
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.timing import timed, write_results  # noqa: E402
from jgen import host  # noqa: E402
from jgen.config import apply_overrides, load_config  # noqa: E402
from jgen.families import gan  # noqa: E402
from jgen.nn.conv import conv_transpose_phases, conv_transpose_reference  # noqa: E402
from jgen.train.step import init_state, train_step  # noqa: E402


def jgen_step(config, batch):
    """(step, state, batch) for one jitted GAN train step."""
    state = init_state(gan, config, jax.random.PRNGKey(0))
    s, c = config.data.image_size, config.data.channels
    images = {"image": jax.random.uniform(jax.random.PRNGKey(1), (batch, s, s, c), minval=-1.0, maxval=1.0)}
    step = jax.jit(partial(train_step, gan, config))

    def run(state):
        return step(state, images)[0]
    return run, state


def torch_step(config, batch):
    """The same step in PyTorch eager: the twins' DCGAN step (pytorch/examples' loop plus jgen's EMA)."""
    import torch

    from benchmarks.twins.dcgan_torch import TorchDiscriminator, TorchGenerator
    from benchmarks.twins.steps import DCGANStep

    torch.manual_seed(0)
    m, s, c = config.model, config.data.image_size, config.data.channels
    step = DCGANStep(TorchGenerator(s, c, m.latent_dim, m.ngf), TorchDiscriminator(s, c, m.ndf), config)
    real = torch.rand(batch, c, s, s) * 2 - 1
    return (lambda _: step(real)), None


def main():
    host.configure()  # the CPU host settings the `jgen` command applies
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch = None
    rows = []

    # The layer PERF_NOTES measured: 64x8x8x128 -> 64x16x16x64, forward and backward.
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 8, 8, 128))
    w = 0.05 * jax.random.normal(jax.random.PRNGKey(1), (4, 4, 128, 64))
    for name, f in (("before", conv_transpose_reference), ("after", conv_transpose_phases)) * 2:
        g = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1)))
        rows.append(dict(what="ConvTranspose 4x4 s2 64x8x8x128 -> 16x16x64, fwd+bwd", impl=name,
                         ms=1e3 * timed(g, x, w), images=64))

    for cfg in ("dcgan_mnist5k", "dcgan_cifar10"):
        base = load_config(cfg)
        what = f"{cfg} train step (G+D, Adam), batch {args.batch}"
        variants = [("before", "transpose"), ("after", "subpixel")] * 2
        if torch is not None:
            variants += [("torch eager", None)] * 2
        for name, upsample in variants:
            if upsample is None:
                run, state = torch_step(base, args.batch)
                ms = 1e3 * timed(run, state, sync=lambda out: out.item())
            else:
                run, state = jgen_step(apply_overrides(base, [f"model.upsample={upsample}"]), args.batch)
                ms = 1e3 * timed(run, state)
            rows.append(dict(what=what, impl=name, ms=ms, images=args.batch))
            print(rows[-1], flush=True)

    table = {}
    for r in rows:
        table.setdefault(r["what"], {}).setdefault(r["impl"], []).append(r)
    lines = ["| what | before ms | before images/s | after ms | after images/s | after / before speed "
             "| torch eager ms | jgen after / torch speed |", "|---|---|---|---|---|---|---|---|"]
    for what, v in table.items():
        n = v["after"][0]["images"]
        before = np.median([r["ms"] for r in v["before"]])
        after = np.median([r["ms"] for r in v["after"]])
        t = np.median([r["ms"] for r in v["torch eager"]]) if "torch eager" in v else None
        tcol = f"{t:.1f} | {t / after:.2f}" if t else "- | -"
        lines.append(f"| {what} | {before:.1f} | {n / before * 1e3:.0f} | {after:.1f} | {n / after * 1e3:.0f} "
                     f"| {before / after:.2f}x | {tcol} |")
    heading = (f"DCGAN train step on XLA:CPU ({os.cpu_count()} cores, {platform.machine()}, jax {jax.__version__}"
               f"{', torch ' + torch.__version__ if torch else ''})\n\n`python benchmarks/dcgan_step.py "
               f"--batch {args.batch}`. before: lax.conv_transpose; after: the phase convolutions "
               f"(what jgen runs). Medians of 5 windows of 5 steps, each variant measured twice, alternating.")
    write_results(args.out, "dcgan", heading, "\n".join(lines), rows)


if __name__ == "__main__":
    main()
