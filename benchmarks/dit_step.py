"""The DiT's whole training gradient alone on this CPU: ms per call of jax.grad of mean(DiT(x, t, y)^2)
with respect to every parameter, jitted with jgen's host settings, for one checkout of jgen.

  python benchmarks/dit_step.py                          # batch 16, 28x28x1, patch 2, width 128, 6 blocks, 4 heads
  python /tmp/old/benchmarks/dit_step.py --depth 1       # another checkout times its own jgen
  python benchmarks/dit_step.py --batch 64 --hidden 192 --heads 3   # benchmarks/run.py's DiT shapes

Parameters are the DiT's initialisation plus 0.01, so that no zero-initialised layer hides a gradient. Used in
benchmarks/results/cpu2-dit-speed-2026-12-07.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.timing import timed  # noqa: E402
from jgen import host  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("batch", 16), ("patch", 2), ("hidden", 128), ("depth", 6), ("heads", 4)):
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    host.configure()
    import jax
    import jax.numpy as jnp

    from jgen.nn.dit import DiT

    model = DiT(patch_size=a.patch, hidden=a.hidden, depth=a.depth, heads=a.heads, out_ch=1, num_classes=10)
    x = jax.random.normal(jax.random.PRNGKey(0), (a.batch, 28, 28, 1))
    t, y = jnp.full((a.batch,), 500.0), jnp.arange(a.batch) % 10
    params = model.init(jax.random.PRNGKey(1), x, t, y)
    params = jax.tree.map(lambda w: w + 0.01, params)
    grad = jax.jit(jax.grad(lambda p: jnp.mean(model.apply(p, x, t, y) ** 2)))
    hlo = len(grad.lower(params).compile().as_text())
    ms = 1e3 * timed(grad, params, repeats=5, inner=2)
    print(f"jgen at {os.path.dirname(host.__file__)}: batch {a.batch}, "
          f"patch {a.patch}, width {a.hidden}, depth {a.depth}: {ms:.1f} ms a step, compiled HLO {hlo / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
