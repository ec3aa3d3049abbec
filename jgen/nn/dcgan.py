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
from jgen.nn.layers import BatchNorm

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


def conv_transpose_subpixel(x, w):
    """The same function as `conv_transpose_reference`, written as one matmul and a depth-to-space.

    Output pixel 2j - 1 + p (p in {0, 1}) of the padded grid receives input pixels j - 1 + a
    (a in {0, 1}) through kernel tap p + 2 - 2a, per axis. So a 2x2 window of the input, padded by
    one, times a [4 Cin, 4 Cout] matrix gives all four output phases of a (H+1) x (W+1) grid; a
    depth-to-space and a one-pixel crop give the result. XLA:CPU runs the backward pass of this form
    ~7x faster than that of lax.conv_transpose (72 ms against 540 ms for 64x8x8x128 -> 16x16x64),
    at 1.27x the FLOPs for an 8x8 input.
    """
    b, h, wd, cin = x.shape
    cout = w.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = jnp.concatenate([xp[:, a:a + h + 1, c:c + wd + 1] for a in range(2) for c in range(2)], axis=-1)
    # rows: (a, c, cin) in the order of `windows`; columns: (p, q, cout) for the output phases.
    kernel = jnp.concatenate([
        jnp.stack([jnp.stack([w[p + 2 - 2 * a, q + 2 - 2 * c] for q in range(2)], 1) for p in range(2)], 1)
        .reshape(cin, 4 * cout) for a in range(2) for c in range(2)], axis=0)
    y = (windows @ kernel).reshape(b, h + 1, wd + 1, 2, 2, cout)
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h + 2, 2 * wd + 2, cout)
    return y[:, 1:-1, 1:-1]


def _conv_down(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


@jax.custom_vjp
def conv_down(x, w):
    """Conv2d(kernel 4, stride 2, padding 1) on even sides; its input gradient in the sub-pixel form.

    The gradient of a strided convolution with respect to its input is the transposed convolution
    of the output gradient with the same kernel, in and out channels swapped. XLA:CPU computes it as
    an input-dilated convolution, slowly: forward + backward of 64x32x32x32 -> 16x16x32 took 38.9 ms
    against PyTorch's 13.1, 30 ms of it that gradient. The sub-pixel form of that transposed
    convolution is one matmul (see `conv_transpose_subpixel`).
    """
    return _conv_down(x, w)


def _conv_down_fwd(x, w):
    return _conv_down(x, w), (x, w)


def _conv_down_bwd(res, dy):
    x, w = res
    if x.shape[-1] <= 4:  # image inputs: XLA's own gradient is faster (and unused when x is data)
        return jax.vjp(_conv_down, x, w)[1](dy)
    w_t = jnp.swapaxes(w, 2, 3)  # [4, 4, out, in]: the transposed convolution back to x's channels
    (dw,) = jax.vjp(lambda w: _conv_down(x, w), w)[1](dy)
    return conv_transpose_subpixel(dy, w_t).astype(x.dtype), dw


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
    """ConvTranspose2d(kernel 4, stride 2, padding 1): doubles the side. `subpixel` picks the fast form.

    Image output layers (at most 4 features) keep lax.conv_transpose even then: the sub-pixel matmul
    has only 4 * features columns there, and XLA:CPU's own transposed convolution is faster
    (forward + backward, 64x16x16x64 -> 32x32x3: 14.8 ms against 22.5; 64x14x14x64 -> 28x28x1: 3.6
    against 5.5; from 8 features on the sub-pixel form wins, 9.7 against 29.6).
    """
    features: int
    subpixel: bool = True
    use_bias: bool = False
    kernel_init: nn.initializers.Initializer = dcgan_init

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
        fast = self.subpixel and self.features > 4
        y = (conv_transpose_subpixel if fast else conv_transpose_reference)(x, w)
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
