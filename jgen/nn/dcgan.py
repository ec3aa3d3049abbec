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

from jgen.config import halvings
from jgen.errors import JgenError
from jgen.nn.conv import _conv_down, conv_down, conv_transpose_phases, conv_transpose_reference, on_cpu
from jgen.nn.layers import BatchNorm
dcgan_init = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def layout(size: int):
    """(base, k) with size == base * 2**k, base >= 4 and k as large as possible (jgen.config.halvings)."""
    base, k = halvings(size)
    if k == 0:
        raise JgenError(f"DCGAN needs an image size of the form base * 2^k with base >= 4 and k >= 1, got {size}")
    return base, k


class Conv4x4Down(nn.Module):
    """nn.Conv(features, (4, 4), strides 2, padding 1) with the same parameters, computed on CPU by
    `conv_down` when both sides are even (every DCGAN and beta-VAE layer), by lax otherwise."""
    features: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features)).astype(x.dtype)
        even = x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0
        y = on_cpu(conv_down, _conv_down, x, w) if even else _conv_down(x, w)
        return y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype) if self.use_bias else y


class ConvTranspose4x4(nn.Module):
    """ConvTranspose2d(kernel 4, stride 2, padding 1): doubles the side. `subpixel` picks the fast
    phase form (`conv_transpose_phases`) on CPU over lax.conv_transpose (kept for comparison:
    `model.upsample=transpose`); other platforms always take lax.conv_transpose."""
    features: int
    subpixel: bool = True
    use_bias: bool = False
    kernel_init: nn.initializers.Initializer = dcgan_init

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
        y = on_cpu(conv_transpose_phases, conv_transpose_reference, x, w) if self.subpixel else \
            conv_transpose_reference(x, w)
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
    """images [B, size, size, C] -> logits [B]. norm 'batch' (DCGAN), 'none' (a WGAN-GP critic, with
    biases) or 'spectral' (Miyato et al. 2018: every kernel, reshaped to [k k in, out], divided by its
    largest singular value, estimated by one power iteration on every training-mode pass (three a step:
    reals, fakes, the generator's loss), as torch.nn.utils.spectral_norm does; u kept in batch_stats)."""
    size: int
    ndf: int = 64
    norm: str = "batch"

    @nn.compact
    def __call__(self, x, train: bool):
        if self.norm not in ("batch", "none", "spectral"):
            raise JgenError(f"unknown discriminator norm '{self.norm}' (batch | none | spectral)")
        base, k = layout(self.size)
        bias = self.norm != "batch"
        spectral = lambda layer, name: nn.SpectralNorm(layer, name=name) if self.norm == "spectral" else layer
        call = (lambda f, h: f(h, update_stats=train)) if self.norm == "spectral" else (lambda f, h: f(h))
        h = x
        for i in range(k):
            conv = Conv4x4Down(self.ndf * 2 ** i, use_bias=bias, kernel_init=dcgan_init,
                               name=None if self.norm == "spectral" else f"down{i}")
            h = call(spectral(conv, f"down{i}"), h)
            if i > 0 and self.norm == "batch":
                h = BatchNorm(scale_init=_bn_scale_init, name=f"down{i}_bn")(h, train)
            h = nn.leaky_relu(h, 0.2)
        logit = nn.Conv(1, (base, base), padding="VALID", use_bias=bias, kernel_init=dcgan_init,
                        name=None if self.norm == "spectral" else "logit")
        h = call(spectral(logit, "logit"), h)
        return h.reshape(x.shape[0])
