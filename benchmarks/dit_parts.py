"""Where the DiT's CPU time goes against PyTorch: forward + backward of each piece alone, jgen's JAX
against torch eager, at the shapes of benchmarks/run.py's DiT rows (batch 64, 14 x 14 = 196 tokens,
width 192, 3 heads).

  python benchmarks/dit_parts.py            # median ms of 20 calls each, after a warm-up (benchmarks.timing)
  python benchmarks/dit_parts.py --products # attention's three batched-product forms alone
  taskset -c 0 python benchmarks/dit_parts.py --products   # the same on one core

The products are timed forward only, each summed inside the jitted function, so that no call returns a
fresh [192, 196, 196] array; a last row times q k^T returned, for comparison.

Each piece is timed as the gradient of sum(f(inputs)^2) with respect to every input, jitted in JAX
(jgen's CPU host settings applied) and eager in torch (all cores). Used in
benchmarks/results/cpu2-dit-parts-2026-12-07.md (its last section for --products).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.timing import timed  # noqa: E402
from jgen import host  # noqa: E402


def products(jax, jnp, np, torch):
    """Attention's batched products at [B * heads, T, d] = [192, 196, 64]: p v (NN), q k^T (NT, the
    logits; also dO v^T in the backward) and p^T dO (TN: both operands contract their token axis;
    dV and dK in the backward)."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal((192, 196, 196)).astype(np.float32)
    a, b = (rng.standard_normal((192, 196, 64)).astype(np.float32) for _ in range(2))
    forms = [("p v (NN)", "nts,nsd->ntd", p, a, True), ("q k^T (NT)", "ntd,nsd->nts", a, b, True),
             ("p^T dO (TN)", "nts,ntd->nsd", p, a, True), ("q k^T, the product returned", "ntd,nsd->nts", a, b, False)]
    print(f"| batched product, [192, 196, 64] operands, {len(os.sched_getaffinity(0))} core(s) "
          "| jgen JAX ms | torch eager ms |")
    print("|---|---|---|")
    for name, eq, x, y, summed in forms:
        f = jax.jit(lambda x, y, eq=eq, summed=summed: jnp.sum(jnp.einsum(eq, x, y)) if summed else jnp.einsum(eq, x, y))
        tx, ty = torch.tensor(x), torch.tensor(y)
        j = 1e3 * timed(f, jnp.asarray(x), jnp.asarray(y), repeats=10, inner=3)
        t = 1e3 * timed(lambda: torch.einsum(eq, tx, ty).sum() if summed else torch.einsum(eq, tx, ty),
                        repeats=10, inner=3, sync=lambda out: None)
        print(f"| {name} | {j:.1f} | {t:.1f} |")

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", action="store_true", help="only attention's batched-product forms")
    args = parser.parse_args()
    host.configure()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    from jgen.nn import dit

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if args.products:
        return products(jax, jnp, np, torch)
    b, t, d, heads = 64, 196, 192, 3
    hd = d // heads
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, t, d)).astype(np.float32)
    q = rng.standard_normal((b, t, heads, hd)).astype(np.float32)
    w_qkv, w1, w2 = (rng.standard_normal(s).astype(np.float32) * 0.05 for s in ((d, 3 * d), (d, 4 * d), (4 * d, d)))

    def jax_ms(f, *args):
        grad = jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=tuple(range(len(args)))))
        return 1e3 * timed(grad, *args, repeats=20, inner=1)

    def torch_ms(f, *args):
        args = [torch.tensor(a, requires_grad=True) for a in args]

        def once():
            for a in args:
                a.grad = None
            (f(*args) ** 2).sum().backward()

        return 1e3 * timed(once, repeats=20, inner=1, sync=lambda out: None)

    heads_first = lambda a: a.transpose(1, 2)
    sdpa = lambda q, k, v: F.scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v))
    torch_mlp = lambda x, a, c: F.gelu(x @ a, approximate="tanh") @ c
    rows = [
        ("attention (jax.nn.dot_product_attention / F.scaled_dot_product_attention)",
         jax_ms(lambda q, k, v: jax.nn.dot_product_attention(q, k, v), q, q, q), torch_ms(sdpa, q, q, q)),
        ("attention, jgen's CPU form (dit.attention_heads_first)", jax_ms(dit.attention_heads_first, q, q, q),
         torch_ms(sdpa, q, q, q)),
        ("LayerNorm without affine", jax_ms(dit.layer_norm, x), torch_ms(lambda x: F.layer_norm(x, x.shape[-1:], eps=1e-6), x)),
        ("qkv Linear (x @ W, 192 -> 576) on [B, T, D] (nn.Dense's product)", jax_ms(lambda x, w: x @ w, x, w_qkv),
         torch_ms(lambda x, w: x @ w, x, w_qkv)),
        ("qkv Linear on the [B * T, D] rows (dit.TokenDense on a CPU)", jax_ms(dit.rows_dot, x, w_qkv),
         torch_ms(lambda x, w: x @ w, x, w_qkv)),
        ("MLP (192 -> 768, GELU tanh, -> 192) on [B, T, D]",
         jax_ms(lambda x, a, c: jax.nn.gelu(x @ a, approximate=True) @ c, x, w1, w2), torch_ms(torch_mlp, x, w1, w2)),
        ("MLP on the [B * T, D] rows", jax_ms(lambda x, a, c: dit.rows_dot(jax.nn.gelu(dit.rows_dot(x, a), approximate=True), c),
                                            x, w1, w2), torch_ms(torch_mlp, x, w1, w2)),
    ]
    print("| piece (forward + backward) | jgen JAX ms | torch eager ms | torch ms / JAX ms |")
    print("|---|---|---|---|")
    for name, j, t in rows:
        print(f"| {name} | {j:.1f} | {t:.1f} | {t / j:.2f} |")


if __name__ == "__main__":
    main()
