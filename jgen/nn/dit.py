"""The Diffusion Transformer, DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers").

The image (or latent) is cut into p x p patches, each linearly embedded to a token (section 3.2,
"Patchify") with a fixed 2-D sin-cos position embedding added; N transformer blocks condition on the
timestep and class through adaLN-Zero (section 3.2, "DiT block design": LayerNorm without affine
parameters, then a per-channel shift and scale regressed from t + y, and a gate on each residual
branch, all three zero-initialised so every block starts as the identity); a final adaLN layer and a
linear decoder map each token back to p x p x out_ch values, rearranged into the image.

The paper's four sizes are SIZES below (its Table 1); with learn_sigma the paper's output has twice
the input channels (eps and the variance interpolation); jgen predicts eps, x0 or v only, so out_ch is
the caller's choice and no learned sigma exists here.

Shapes are NHWC. The module computes in the dtype of its inputs (bfloat16 when the trainer casts
params and x, see jgen.families.base.to_compute), except LayerNorm statistics and the attention
logits and softmax, which are float32 (jax.nn.dot_product_attention accumulates bfloat16 logits in
float32 and runs the softmax in float32).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.errors import JgenError
from jgen.nn.conv import materialised, on_cpu

# (depth, hidden, heads) of DiT-S, B, L, XL (the paper's Table 1)
SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}

FREQUENCY_DIM = 256  # width of the sinusoidal timestep features before the timestep MLP

xavier_uniform = nn.initializers.xavier_uniform()
# the patch embedding is a Linear over each flattened p x p x C patch: fan_in p*p*C, fan_out hidden
patch_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", in_axis=(0, 1, 2), out_axis=3)


def check_shape(image_size: int, patch_size: int, hidden: int, heads: int) -> None:
    """Raises JgenError when patches do not tile the image or heads do not split the width."""
    if image_size % patch_size:
        raise JgenError(f"model.patch_size={patch_size} does not divide data.image_size={image_size}: "
                        f"pick a patch size that divides the image (or latent) size")
    if hidden % heads:
        raise JgenError(f"model.heads={heads} does not divide model.hidden={hidden}: "
                        f"pick a head count that divides the width")


def frequency_embedding(t, dim: int = FREQUENCY_DIM, max_period: float = 10000.0):
    """[B] (possibly fractional or negative) timesteps -> [B, dim] float32 features [cos | sin].

    DiT's layout (from GLIDE): frequencies max_period^(-i / (dim/2)), i = 0 .. dim/2 - 1, cosines
    first. jgen.nn.layers.timestep_embedding (DDPM's) divides by dim/2 - 1 and puts sines first, so
    this is a separate function.
    """
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=1)


def pos_embed_2d(dim: int, grid: int) -> np.ndarray:
    """The fixed 2-D sin-cos position embedding of a grid x grid token map, [grid*grid, dim] float32.

    Tokens are in row-major order (row r, column c is token r*grid + c). The first dim/2 channels
    encode the column and the last dim/2 the row, each as [sin(pos w_i) | cos(pos w_i)] with
    w_i = 10000^(-i / (dim/4)), i = 0 .. dim/4 - 1 (the MAE / DiT layout). A constant, not a parameter.
    """
    if dim % 4:
        raise JgenError(f"model.hidden={dim} must be a multiple of 4 for the 2-D sin-cos position embedding")
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))

    def one_axis(pos):  # [M] -> [M, dim/2]
        out = pos[:, None] * omega[None, :]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    return np.concatenate([one_axis(cols.ravel()), one_axis(rows.ravel())], axis=1).astype(np.float32)


def layer_norm(x, eps: float = 1e-6):
    """LayerNorm over the last axis without scale or bias (elementwise_affine=False); statistics in
    float32 whatever x's dtype, output in x's dtype."""
    h = x.astype(jnp.float32)
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True)
    return ((h - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def modulate(x, shift, scale):
    """adaLN: x [B, T, D] scaled by (1 + scale) and shifted, per sample and channel ([B, D] each)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def dense(features: int, zero: bool = False, name=None):
    """DiT's Linear: xavier-uniform weights (zero where adaLN-Zero says so), zero biases."""
    return TokenDense(features, kernel_init=nn.initializers.zeros if zero else xavier_uniform, name=name)


def rows_dot(x, kernel):
    """x [..., I] @ kernel [I, O] computed on the [prod(...), I] rows of x."""
    return (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[-1])


def _dot_last(x, kernel):
    """nn.Dense's product: x's last axis against the kernel's first, other axes kept."""
    return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


class TokenDense(nn.Module):
    """nn.Dense (the same parameters, names and dtype promotion) for x [..., I] with any leading axes;
    float32 parameters, zero biases, and DiT's xavier-uniform kernels unless kernel_init says otherwise.

    On a CPU the product runs on a 2-D view [prod(...), I]: XLA:CPU differentiates a dot with two
    free axes on the left slowly, its weight gradient contracting over both. At [64, 196, 192]
    tokens, forward and backward on 2 quiet cores (`python benchmarks/dit_parts.py`, two runs): the
    MLP 258-273 ms as nn.Dense computes it, 164-178 on the 2-D rows (torch eager 147-156); the qkv
    Linear 88-93 against 47-49 (torch 58-71). The same function; other platforms lower nn.Dense's
    dot_general, as before.
    """
    features: int
    kernel_init: object = xavier_uniform

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
        return on_cpu(rows_dot, _dot_last, x, kernel) + bias


def attention_heads_first(q, k, v):
    """softmax(q k^T / sqrt(d)) v for q, k, v [B, T, heads, d] -> [B, T, heads, d] (Vaswani et al. 2017,
    eq. 1), with the heads moved ahead of the tokens so that each product is a plain batched matmul
    over [B * heads], and the softmax's normalisation applied after the second product:
    (exp(l - m) v) / sum_s exp(l - m), m the row's largest logit (a constant shift: stop_gradient
    changes no gradient). The division then touches [T, d] per head instead of [T, T], forward and
    backward. Logits, exponentials and their sums in float32; the exponentials cast to v's dtype for
    the second product, as jax.nn.dot_product_attention casts its probabilities.

    The same function as jax.nn.dot_product_attention (tests/test_dit.py). XLA:CPU runs it a little
    faster: forward and backward at [64, 196, 3, 64] on 2 quiet cores, 109-122 ms against 122-128 for
    jax.nn.dot_product_attention (`python benchmarks/dit_parts.py`, two runs; torch's
    scaled_dot_product_attention 66-78). Heads-first without DiTBlock's barriers made the whole step
    slower at batch 16, width 128 (benchmarks/results/cpu2-dit-speed-2026-12-07.md).
    """
    q, k, v = (a.transpose(0, 2, 1, 3) for a in (q, k, v))
    logits = jnp.einsum("bnth,bnsh->bnts", q, k, preferred_element_type=jnp.float32) / math.sqrt(q.shape[-1])
    e = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    out = jnp.einsum("bnts,bnsh->bnth", e.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return (out / jnp.sum(e, axis=-1, keepdims=True)).astype(v.dtype).transpose(0, 2, 1, 3)


class Attention(nn.Module):
    """Multi-head self-attention, q, k, v from one Linear(3 * hidden); x [B, T, D] -> [B, T, D].

    jax.nn.dot_product_attention with implementation=None off the CPU: XLA's form, which with
    bfloat16 q and k accumulates the logits in float32 (dot algorithm BF16_BF16_F32) and takes the
    softmax in float32; on a GPU XLA fuses it. On a CPU, `attention_heads_first`, the same function
    in the layout XLA:CPU differentiates fastest.
    """
    heads: int

    @nn.compact
    def __call__(self, x):
        b, t, d = x.shape
        qkv = dense(3 * d, name="qkv")(x).reshape(b, t, 3, self.heads, d // self.heads)
        h = on_cpu(attention_heads_first, jax.nn.dot_product_attention, qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
        return dense(d, name="proj")(h.reshape(b, t, d))  # h: [B, T, heads, D/heads]


class DiTBlock(nn.Module):
    """The adaLN-Zero block (the paper's Figure 3): x + gate * attn(modulate(LN(x))), then the same
    with an MLP (GELU, tanh approximation). c [B, D] is the conditioning vector t + y.

    The residual stream x is `materialised` (stored behind an optimisation barrier, on a CPU only)
    as it enters the block and after the attention branch. Without the barriers XLA:CPU fuses the
    chain of residual additions and their gradients into loops that recompute earlier blocks at
    some shapes: at batch 16, 14x14 tokens, width 128 the compiled 6-block step is 2.5 MB of HLO
    against 0.9 MB with them, and the step (with heads-first attention as well) took 481-503 ms
    against 819-871 before, on 2 quiet cores. At batch 64, width 192 XLA does not fuse that way and
    the barriers change nothing (benchmarks/results/cpu2-dit-speed-2026-12-07.md).
    """
    heads: int
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, x, c):
        d = x.shape[-1]
        x = materialised(x)
        mod = dense(6 * d, zero=True, name="adaLN_modulation")(nn.silu(c))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mod, 6, axis=-1)
        h = Attention(self.heads, name="attn")(modulate(layer_norm(x), shift_msa, scale_msa))
        x = materialised(x + gate_msa[:, None, :] * h)
        h = modulate(layer_norm(x), shift_mlp, scale_mlp)
        h = dense(d, name="fc2")(nn.gelu(dense(int(d * self.mlp_ratio), name="fc1")(h), approximate=True))
        return x + gate_mlp[:, None, :] * h


class DiT(nn.Module):
    """x: [B, H, W, C], t: [B] float timesteps (~[0, 1000], may be negative), y: [B] int labels in
    [0, num_classes] -> [B, H, W, out_ch].

    Label num_classes is the null class of classifier-free guidance (the paper's label table has
    num_classes + 1 rows when trained with label dropout); the caller drops labels, the module never
    does. num_classes=0: unconditional, y is ignored. `train` is accepted for the U-Net's signature;
    DiT has no dropout. With (depth, hidden, heads) from SIZES, patch_size 2, 32x32x4 latents,
    num_classes 1000 and out_ch 8 (learn_sigma) this has the paper's parameter counts
    (tests/test_dit.py).
    """
    patch_size: int = 2
    hidden: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    out_ch: int = 3
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, t, y=None, train: bool = False):
        b, hh, ww, _ = x.shape
        p, d = self.patch_size, self.hidden
        check_shape(hh, p, d, self.heads)
        check_shape(ww, p, d, self.heads)
        gh, gw = hh // p, ww // p
        if gh != gw:
            raise JgenError(f"DiT takes square images (its position embedding is square), got {hh}x{ww}")

        # patchify: a convolution with kernel = stride = p is a Linear over each flattened patch
        x = nn.Conv(d, (p, p), strides=(p, p), padding="VALID", kernel_init=patch_init,
                    bias_init=nn.initializers.zeros, name="x_embedder")(x).reshape(b, gh * gw, d)
        x = x + jnp.asarray(pos_embed_2d(d, gh), x.dtype)[None]

        # timestep embedder: frequencies -> Linear -> SiLU -> Linear, weights N(0, 0.02)
        t_init = nn.initializers.normal(0.02)
        c = frequency_embedding(t).astype(x.dtype)
        c = nn.Dense(d, kernel_init=t_init, name="t_embedder_0")(c)
        c = nn.Dense(d, kernel_init=t_init, name="t_embedder_1")(nn.silu(c))
        if self.num_classes:
            table = nn.Embed(self.num_classes + 1, d, embedding_init=nn.initializers.normal(0.02), name="y_embedder")
            c = c + table(y).astype(c.dtype)

        for i in range(self.depth):
            x = DiTBlock(self.heads, self.mlp_ratio, name=f"block_{i}")(x, c)

        # final layer: adaLN (shift, scale; zero-initialised), LN, Linear to p*p*out_ch (zero-initialised)
        shift, scale = jnp.split(dense(2 * d, zero=True, name="final_adaLN_modulation")(nn.silu(c)), 2, axis=-1)
        x = dense(p * p * self.out_ch, zero=True, name="final_linear")(modulate(layer_norm(x), shift, scale))

        # unpatchify: token (r, c) holds the p x p x out_ch pixels of rows r*p.., columns c*p..
        x = x.reshape(b, gh, gw, p, p, self.out_ch).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(b, hh, ww, self.out_ch)
