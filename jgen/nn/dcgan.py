"""The DCGAN generator and discriminator (Radford et al. 2016), NHWC, for 28/32/64 px and other sizes.

A size is base * 2^k with base the smallest side >= 4 that halving reaches (28 -> 7, 32 -> 4, 64 -> 4).
The generator projects z to base x base x (ngf * 2^(k-1)) and doubles the side k times with 4x4
stride-2 transposed convolutions; the discriminator mirrors it with 4x4 stride-2 convolutions and
ends in one base x base convolution to a logit. Weights start from N(0, 0.02), BatchNorm scales from
N(1, 0.02), as in the paper; convolutions have no bias where a BatchNorm follows.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.errors import JgenError
from jgen.nn.layers import BatchNorm, materialised

_DN = ("NHWC", "HWIO", "NHWC")
dcgan_init = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def layout(size: int):
    """(base, k) with size == base * 2**k, base >= 4 and k as large as possible."""
    base, k = size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base, k = base // 2, k + 1
    if k == 0:
        raise JgenError(f"DCGAN needs an image size of the form base * 2^k with base >= 4 and k >= 1, got {size}")
    return base, k


def conv_transpose_reference(x, w):
    """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1) via lax.conv_transpose.

    x: [B, H, W, Cin]; w: [4, 4, Cin, Cout] with w[i, j] = torch_weight[:, :, i, j] (the scatter
    convention: input pixel m adds w[k] to output 2m - 1 + k). Returns [B, 2H, 2W, Cout].
    """
    return jax.lax.conv_transpose(x, w[::-1, ::-1], (2, 2), ((2, 2), (2, 2)), dimension_numbers=_DN)


def _phases(x, w):
    """The same function as `conv_transpose_reference`, as stride-1 convolutions over the four output phases.

    Output pixel 2j + p (p in {0, 1}, per axis) receives input pixels j - 1 + p + a (a in {0, 1})
    through kernel tap 3 - p - 2a: each phase is a 2x2 stride-1 convolution of the input, padded by
    1 - p before and p after, and the four phases interleave into the doubled image. Where the
    output has more than 4 channels each phase is its own convolution, its padding left to the
    convolution itself. For image outputs (at most 4 channels) such convolutions are too thin to
    run well, so one convolution of the input padded by one computes all phases at once (4 * Cout
    channels on an (H+1) x (W+1) grid), then a depth-to-space and a one-pixel crop. On XLA:CPU both
    run forward + backward faster than lax.conv_transpose and than the single sub-pixel matmul this
    replaced (timings in benchmarks/results/cpu2-perf-2026-11-27.md).
    """
    b, h, wd, cin = x.shape
    cout = w.shape[-1]

    def taps(p, q):  # [2, 2, cin, cout]: the kernel of output phase (p, q)
        return jnp.stack([jnp.stack([w[3 - p - 2 * a, 3 - q - 2 * c] for c in range(2)]) for a in range(2)])

    def conv(v, k, pad_h, pad_w):
        return jax.lax.conv_general_dilated(v, k, (1, 1), (pad_h, pad_w), dimension_numbers=_DN)

    if cout > 4:
        phases = jnp.stack([jnp.stack([conv(x, taps(p, q), (1 - p, p), (1 - q, q)) for q in range(2)], 3)
                            for p in range(2)], 2)  # [b, h, p, w, q, cout]
        return phases.reshape(b, 2 * h, 2 * wd, cout)
    # Grid row r holds phase p's output j = r - p; slot s = 1 - p puts it at row 2r + s of a grid cropped by one.
    # (Padding by jnp.pad here, not by the convolution: measured faster for these thin outputs.)
    k = jnp.concatenate([taps(1 - s, 1 - t) for s in range(2) for t in range(2)], axis=-1)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = conv(xp, k, (0, 0), (0, 0)).reshape(b, h + 1, wd + 1, 2, 2, cout)
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h + 2, 2 * wd + 2, cout)
    return y[:, 1:-1, 1:-1]


@jax.custom_vjp
def conv_transpose_phases(x, w):
    """`_phases`, the fast transposed convolution, with a backward pass of two strided convolutions.

    A transposed convolution's input gradient is the strided convolution of the output gradient
    with the same kernel (in and out channels swapped), and its weight gradient is that strided
    convolution's weight gradient with x as the cotangent. Autodiff of the four phase convolutions
    instead runs four input gradients and four weight gradients, each weight gradient transposing
    its own padded copy of x: the CelebA beta-VAE step took 86 ms against 90-98 (same-process A/B).
    """
    return _phases(x, w)


def _phases_fwd(x, w):
    return _phases(x, w), (x, w)


def _phases_bwd(res, dy):
    x, w = materialised(res)
    down = _conv_down_s2d if dy.shape[-1] <= 4 else _conv_down
    dx, vjp = jax.vjp(lambda v: down(dy, v), jnp.swapaxes(w, 2, 3))
    (dv,) = vjp(x)
    return dx, jnp.swapaxes(dv, 2, 3)


conv_transpose_phases.defvjp(_phases_fwd, _phases_bwd)


def _conv_down(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


@jax.custom_vjp
def conv_down(x, w):
    """Conv2d(kernel 4, stride 2, padding 1) on even sides; its input gradient in the phase form.

    The gradient of a strided convolution with respect to its input is the transposed convolution
    of the output gradient with the same kernel, in and out channels swapped. XLA:CPU computes it as
    an input-dilated convolution, slowly: forward + backward of 64x32x32x32 -> 16x16x32 took 41 ms
    against PyTorch's 15; with `conv_transpose_phases` for that gradient, 15 ms. Image inputs (at
    most 4 channels) take the space-to-depth form instead, forward and backward.
    """
    return _conv_down_s2d(x, w) if x.shape[-1] <= 4 else _conv_down(x, w)


def _conv_down_s2d(x, w):
    """`_conv_down` on even sides as space-to-depth and a 2x2 stride-1 convolution.

    Padded input row 2i + 2a + r (r in {0, 1}) meets kernel row 2a + r at output row i, so after
    folding each 2x2 block of the padded input into 4C channels the convolution is a 2x2 one over
    those. For thin inputs (images) XLA:CPU runs it much faster: 64x64x64x3 -> 32 forward + weight
    gradient 6.0 ms against 10.2 (64x32x32x3 -> 64: 2.2 against 2.9).
    """
    b, h, wd, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    xs = xp.reshape(b, h // 2 + 1, 2, wd // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
    k = w.reshape(2, 2, 2, 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, -1)
    return jax.lax.conv_general_dilated(xs.reshape(b, h // 2 + 1, wd // 2 + 1, 4 * c), k, (1, 1), "VALID",
                                        dimension_numbers=_DN)


def _conv_down_fwd(x, w):
    return conv_down(x, w), (x, w)


def _conv_down_bwd(res, dy):
    x, w = materialised(res)
    if x.shape[-1] <= 4:  # image inputs: the space-to-depth form's own gradient
        return jax.vjp(_conv_down_s2d, x, w)[1](dy)
    w_t = jnp.swapaxes(w, 2, 3)  # [4, 4, out, in]: the transposed convolution back to x's channels
    (dw,) = jax.vjp(lambda w: _conv_down(x, w), w)[1](dy)
    return _phases(dy, w_t).astype(x.dtype), dw


conv_down.defvjp(_conv_down_fwd, _conv_down_bwd)


class Conv4x4Down(nn.Module):
    """nn.Conv(features, (4, 4), strides 2, padding 1) with the same parameters, computed by `conv_down`
    when both sides are even (every DCGAN and beta-VAE layer), by lax otherwise."""
    features: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features)).astype(x.dtype)
        even = x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0
        y = conv_down(x, w) if even else _conv_down(x, w)
        return y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype) if self.use_bias else y


class ConvTranspose4x4(nn.Module):
    """ConvTranspose2d(kernel 4, stride 2, padding 1): doubles the side. `subpixel` picks the fast
    phase form (`conv_transpose_phases`) over lax.conv_transpose (kept for comparison: `model.upsample=transpose`)."""
    features: int
    subpixel: bool = True
    use_bias: bool = False
    kernel_init: nn.initializers.Initializer = dcgan_init

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
        y = (conv_transpose_phases if self.subpixel else conv_transpose_reference)(x, w)
        return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y


class Generator(nn.Module):
    """z [B, latent] -> images [B, size, size, channels] in (-1, 1)."""
    size: int
    channels: int
    ngf: int = 64
    subpixel: bool = True

    @nn.compact
    def __call__(self, z, train: bool):
        base, k = layout(self.size)
        c = self.ngf * 2 ** (k - 1)
        # A dense layer on z is ConvTranspose(kernel base, stride 1) on a 1x1 input, the paper's first layer.
        h = nn.Dense(base * base * c, use_bias=False, kernel_init=dcgan_init, name="project")(z)
        h = h.reshape(z.shape[0], base, base, c)
        h = nn.relu(BatchNorm(scale_init=_bn_scale_init, name="project_bn")(h, train))
        for i in range(k - 1):
            c //= 2
            h = ConvTranspose4x4(c, self.subpixel, name=f"up{i}")(h)
            h = nn.relu(BatchNorm(scale_init=_bn_scale_init, name=f"up{i}_bn")(h, train))
        return jnp.tanh(ConvTranspose4x4(self.channels, self.subpixel, name=f"up{k - 1}")(h))


class Discriminator(nn.Module):
    """images [B, size, size, C] -> logits [B]. norm 'batch' (DCGAN) or 'none' (a WGAN-GP critic, with biases)."""
    size: int
    ndf: int = 64
    norm: str = "batch"

    @nn.compact
    def __call__(self, x, train: bool):
        if self.norm not in ("batch", "none"):
            raise JgenError(f"unknown discriminator norm '{self.norm}' (batch | none)")
        base, k = layout(self.size)
        bias = self.norm == "none"
        h = x
        for i in range(k):
            h = Conv4x4Down(self.ndf * 2 ** i, use_bias=bias, kernel_init=dcgan_init, name=f"down{i}")(h)
            if i > 0 and self.norm == "batch":
                h = BatchNorm(scale_init=_bn_scale_init, name=f"down{i}_bn")(h, train)
            h = nn.leaky_relu(h, 0.2)
        h = nn.Conv(1, (base, base), padding="VALID", use_bias=bias, kernel_init=dcgan_init, name="logit")(h)
        return h.reshape(x.shape[0])
