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


def dit_grad(batch, patch=2, hidden=128, depth=6, heads=4):
    """The jitted gradient of mean(DiT(x, t, y)^2) over 28x28x1 digits-shaped noise, with its parameters
    (the initialisation plus 0.01) and its inputs (x, t, y). jgen.nn.dit is read when this is called, so
    a caller that has replaced one of its pieces (benchmarks/dit_ablate.py) gets the replaced DiT."""
    import jax
    import jax.numpy as jnp

    from jgen.nn import dit

    model = dit.DiT(patch_size=patch, hidden=hidden, depth=depth, heads=heads, out_ch=1, num_classes=10)
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, 28, 28, 1))
    t, y = jnp.full((batch,), 500.0), jnp.arange(batch) % 10
    params = jax.tree.map(lambda w: w + 0.01, model.init(jax.random.PRNGKey(1), x, t, y))
    return jax.jit(jax.grad(lambda p: jnp.mean(model.apply(p, x, t, y) ** 2))), params, (x, t, y)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("batch", 16), ("patch", 2), ("hidden", 128), ("depth", 6), ("heads", 4)):
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    host.configure()
    grad, params, _ = dit_grad(a.batch, a.patch, a.hidden, a.depth, a.heads)
    hlo = len(grad.lower(params).compile().as_text())
    ms = 1e3 * timed(grad, params, repeats=5, inner=2)
    print(f"jgen at {os.path.dirname(host.__file__)}: batch {a.batch}, "
          f"patch {a.patch}, width {a.hidden}, depth {a.depth}: {ms:.1f} ms a step, compiled HLO {hlo / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
