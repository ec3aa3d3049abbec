"""Where the DiT's whole training gradient loses to PyTorch on this CPU: the gradient step of
mean(DiT(x, t, y)^2) at benchmarks/run.py's DiT shapes (batch 64, 28x28x1, patch 2, width 192, 6 blocks,
3 heads), jgen's JAX (jitted, jgen's host settings) against the twin (benchmarks/twins/dit_torch.py,
eager, all cores), with the same part of every block taken out of both:

  full      the DiT as it is
  nocore    attention's core (softmax(q k^T) v) replaced by v, with the layout copies around it (jgen's
            head transposes; torch's copy of its output back to [B, T, D]); the qkv and proj Linears stay
  noattn    the attention branch replaced by its input (no qkv, core or proj)
  nomlp     the MLP branch removed (adaLN, LN, modulate, attention, gate stay)
  mlponly   each block is x + fc2(GELU(fc1(x))): no adaLN, LayerNorm, modulation or gates
  noblocks  embeddings and the final layer only

  python benchmarks/dit_ablate.py                  # every part, each in its own process (~6 min on 2 cores)
  python benchmarks/dit_ablate.py --part nocore    # one

The parts are taken out by replacing the block's pieces in this process only (the classes of
jgen.nn.dit and the twin), so both frameworks compute the same smaller network. Each process times JAX
and torch alternately, three rounds, and prints the medians (ms per step) and torch / JAX. Used in
benchmarks/results/cpu2-dit-parts-2026-12-07.md ("Third look").
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.dit_step import dit_grad  # noqa: E402
from benchmarks.timing import timed  # noqa: E402
from jgen import host  # noqa: E402

PARTS = ("full", "nocore", "noattn", "nomlp", "mlponly", "noblocks")


def take_out(part, dit, twin, nn, jnp, F):
    """Replaces pieces of jgen.nn.dit and the twin so that both compute the DiT without `part`."""
    if part == "nocore":
        dit.attention_heads_first = lambda q, k, v: v
        F.scaled_dot_product_attention = lambda q, k, v: v  # torch.nn.functional, in this process only
    elif part == "noattn":
        dit.Attention.__call__ = lambda self, x: x
        twin.Attention.forward = lambda self, x: x
    elif part in ("nomlp", "mlponly"):
        class Block(nn.Module):
            heads: int
            mlp_ratio: float = 4.0

            @nn.compact
            def __call__(self, x, c):
                d = x.shape[-1]
                x = dit.materialised(x)  # as DiTBlock stores the residual stream (on a CPU)
                if part == "mlponly":
                    h = dit.dense(int(d * self.mlp_ratio), name="fc1")(x)
                    return x + dit.dense(d, name="fc2")(nn.gelu(h, approximate=True))
                s1, sc1, g1 = jnp.split(dit.dense(6 * d, zero=True, name="adaLN_modulation")(nn.silu(c)), 6, -1)[:3]
                return x + g1[:, None] * dit.Attention(self.heads, name="attn")(dit.modulate(dit.layer_norm(x), s1, sc1))

        def torch_block(self, x, c):
            if part == "mlponly":
                return x + self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
            s1, sc1, g1 = self.adaLN_modulation(F.silu(c)).chunk(6, dim=1)[:3]
            return x + g1[:, None] * self.attn(twin._modulate(twin._ln(x), s1, sc1))
        dit.DiTBlock, twin.Block.forward = Block, torch_block
    elif part == "noblocks":
        dit.DiTBlock.__call__ = lambda self, x, c: x
        twin.Block.forward = lambda self, x, c: x


def one(part, batch=64):
    """Times the DiT without `part` in JAX and torch; prints one markdown row."""
    host.configure()
    import flax.linen as nn
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    from benchmarks.twins import dit_torch
    from jgen.nn import dit

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    take_out(part, dit, dit_torch, nn, jnp, F)
    grad, params, (x, t, y) = dit_grad(batch, hidden=192, depth=6, heads=3)
    net = dit_torch.TorchDiT(1, 28, patch_size=2, hidden=192, depth=6, heads=3, out_ch=1, num_classes=10)
    xt, tt, yt = (torch.tensor(np.asarray(a)) for a in (x.transpose(0, 3, 1, 2), t, y))

    def torch_step():
        net.zero_grad(set_to_none=True)
        (net(xt, tt, yt) ** 2).mean().backward()

    ms = {"jax": [], "torch": []}
    for _ in range(3):
        ms["jax"].append(1e3 * timed(grad, params, repeats=3, inner=2))
        ms["torch"].append(1e3 * timed(torch_step, repeats=3, inner=2, sync=lambda out: None))
    j, tq = float(np.median(ms["jax"])), float(np.median(ms["torch"]))
    print(f"| {part} | {j:.0f} | {tq:.0f} | {tq / j:.2f} |", flush=True)


def main():
    """One part in this process, or every part, each in a fresh process (the swaps cannot be undone)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=PARTS, help="one part (default: all, each in its own process)")
    a = p.parse_args()
    if a.part:
        return one(a.part)
    print("| DiT without | jgen JAX ms | torch eager ms | torch / JAX |\n|---|---|---|---|", flush=True)
    for part in PARTS:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--part", part], check=True)


if __name__ == "__main__":
    main()
