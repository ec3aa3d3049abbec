"""StyleGAN2's generator and discriminator (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN"), NHWC, for square power-of-two sides from 8 px up.

Every weight is stored N(0, 1) and scaled at run time by lr_mul / sqrt(fan_in) (equalised learning
rate, Karras et al. 2018 sec. 4.1), so Adam moves every layer at the same relative speed; the mapping
network's lr_mul = 0.01 is its reduced learning rate. Activations are leaky ReLU(0.2) times sqrt(2).

Generator = Mapping (z -> w) and Synthesis (w per layer -> image), two modules so that the family
can average w (truncation), mix styles and project images onto w (jgen.families.stylegan). The
synthesis starts from a learned 4x4 constant; each layer is a modulated, demodulated 3x3
convolution (paper eq. 1-3) plus per-pixel noise times a learned strength; each resolution adds its
toRGB (a modulated 1x1 convolution without demodulation) to the FIR-upsampled image of the one
below (the "skip" generator, Fig. 7). Widths: min(channel_base / side, channel_max).

Discriminator: fromRGB, then per resolution a residual block (two 3x3 convolutions, the second
downsampling, and a FIR-downsampled 1x1 skip, summed times sqrt(1/2)), then a minibatch standard
deviation channel (groups of `mbstd_group`), a 3x3 convolution and two dense layers to one logit.

FIR filtering uses the binomial [1, 3, 3, 1] (separable; sum 1 per axis, gain 4 in 2-D on upsampling)
with zero padding: up (the toRGB skip) = zero insertion, pad (2, 1), filter; an upsampling 3x3
convolution = a stride-2 transposed convolution (2H + 1 wide), then the filter with pad (1, 1), as
stylegan2-ada-pytorch's conv2d_resample; down = pad (1, 1), filter, every second pixel; a downsampling
3x3 convolution = pad (2, 2), filter, then the convolution with stride 2.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.errors import JgenError

_FIR = (1.0, 3.0, 3.0, 1.0)
_DN = ("NHWC", "HWIO", "NHWC")
SQRT2 = math.sqrt(2.0)


def resolutions(size: int) -> list:
    """[4, 8, ..., size] for a power-of-two side >= 8."""
    if size < 8 or size & (size - 1):
        raise JgenError(f"StyleGAN2 needs a power-of-two image side of at least 8, got {size}")
    return [2 ** i for i in range(2, int(math.log2(size)) + 1)]


def width(side: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // side, channel_max)


def num_ws(size: int) -> int:
    """w vectors the synthesis reads: one per convolution and one for the last toRGB (2 log2(size) - 2).
    The toRGB of each lower side shares its w with the next side's first convolution."""
    return 2 * len(resolutions(size))


def _fir_axis(x, axis: int, pad: tuple, gain: float = 1.0):
    """Zero-padded [1, 3, 3, 1] / 8 * gain filter along one spatial axis: length L + pad0 + pad1 - 3."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    x = jnp.pad(x, widths)
    n = x.shape[axis] - len(_FIR) + 1
    taps = [jax.lax.slice_in_dim(x, k, k + n, axis=axis) * (f * gain / 8.0) for k, f in enumerate(_FIR)]
    return sum(taps[1:], taps[0])


def blur(x, pad: tuple, gain: float = 1.0):
    """The 2-D FIR filter on [N, H, W, C] with `pad` on each side of both axes (gain per axis)."""
    return _fir_axis(_fir_axis(x, 1, pad, gain), 2, pad, gain)


def upsample2x(x):
    """[N, H, W, C] -> [N, 2H, 2W, C]: zeros inserted after each pixel, then the FIR filter (gain 4)."""
    n, h, w, c = x.shape
    z = jnp.zeros_like(x)
    x = jnp.stack([x, z], axis=2).reshape(n, 2 * h, w, c)
    x = jnp.stack([x, jnp.zeros_like(x)], axis=3).reshape(n, 2 * h, 2 * w, c)
    return blur(x, (2, 1), gain=2.0)


def downsample2x(x):
    """[N, H, W, C] -> [N, H/2, W/2, C]: the FIR filter, then every second pixel."""
    return blur(x, (1, 1))[:, ::2, ::2, :]


def lrelu(x):
    return jax.nn.leaky_relu(x, 0.2) * SQRT2


class EqDense(nn.Module):
    """y = x W (lr_mul / sqrt(in)) + b lr_mul, W ~ N(0, 1 / lr_mul^2), b stored from bias_init."""
    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    act: bool = False
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", lambda k, s: jax.random.normal(k, s) / self.lr_mul, (x.shape[-1], self.features))
        y = x @ (w * (self.lr_mul / math.sqrt(x.shape[-1]))).astype(x.dtype)
        if self.use_bias:
            b = self.param("bias", lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.features,))
            y = y + (b * self.lr_mul).astype(x.dtype)
        return lrelu(y) if self.act else y


class EqConv(nn.Module):
    """A k x k convolution with equalised weights, SAME padding or (down) FIR then stride 2; bias, activation."""
    features: int
    kernel: int = 3
    down: bool = False
    act: bool = True
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        k, cin = self.kernel, x.shape[-1]
        w = self.param("kernel", nn.initializers.normal(1.0), (k, k, cin, self.features))
        w = (w / math.sqrt(cin * k * k)).astype(x.dtype)
        if self.down:
            p = k // 2 + 1
            y = jax.lax.conv_general_dilated(blur(x, (p, p)), w, (2, 2), "VALID", dimension_numbers=_DN)
        else:
            y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype)
        return lrelu(y) if self.act else y


def modulated_conv(x, weight, styles, demodulate: bool = True, up: bool = False):
    """StyleGAN2's eq. 1-3 with the scales moved onto the activations: conv(x * s, w) * d, which is
    conv(x, w'') with w'_ijk = s_i w_ijk and w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + 1e-8).

    x [N, H, W, I], weight [k, k, I, O] (already equalised), styles [N, I]; up: as stylegan2-ada-pytorch's
    conv2d_resample, a stride-2 transposed convolution (2H + 1 wide) and then the FIR filter (pad (1, 1),
    gain 4), so the border pixels see the convolution's full output (the interior equals upsample-then-conv).
    """
    x = x * styles[:, None, None, :].astype(x.dtype)
    if up:
        k = weight.shape[0]
        y = jax.lax.conv_general_dilated(x, weight, (1, 1), ((k - 1, k - 1),) * 2, lhs_dilation=(2, 2),
                                         dimension_numbers=_DN)
        y = blur(y, (1, 1), gain=2.0)
    else:
        y = jax.lax.conv_general_dilated(x, weight, (1, 1), "SAME", dimension_numbers=_DN)
    if demodulate:
        s2, w2 = jnp.square(styles.astype(x.dtype)), jnp.sum(jnp.square(weight), axis=(0, 1))
        energy = jnp.einsum("ni,io->no", s2, w2).astype(jnp.float32)  # in the compute dtype, as every product
        y = y * jax.lax.rsqrt(energy + 1e-8)[:, None, None, :].astype(y.dtype)
    return y


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling), noise times a learned strength, bias, activation."""
    features: int
    up: bool = False

    @nn.compact
    def __call__(self, x, w, noise):
        cin = x.shape[-1]
        styles = EqDense(cin, bias_init=1.0, name="affine")(w)
        weight = self.param("kernel", nn.initializers.normal(1.0), (3, 3, cin, self.features))
        y = modulated_conv(x, (weight / math.sqrt(cin * 9)).astype(x.dtype), styles, up=self.up)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        if noise is not None:
            y = y + (noise * strength).astype(y.dtype)
        return lrelu(y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype))


class ToRGB(nn.Module):
    """Modulated 1x1 convolution without demodulation, plus bias: a side's contribution to the image."""
    channels: int

    @nn.compact
    def __call__(self, x, w):
        cin = x.shape[-1]
        styles = EqDense(cin, bias_init=1.0, name="affine")(w)
        weight = self.param("kernel", nn.initializers.normal(1.0), (1, 1, cin, self.channels))
        y = modulated_conv(x, (weight / math.sqrt(cin)).astype(x.dtype), styles, demodulate=False)
        return y + self.param("bias", nn.initializers.zeros, (self.channels,)).astype(y.dtype)


class Mapping(nn.Module):
    """z [N, z_dim] -> w [N, w_dim]: z normalised to unit second moment, then `layers` dense layers."""
    w_dim: int
    layers: int = 8
    lr_mul: float = 0.01

    @nn.compact
    def __call__(self, z):
        x = z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
        for i in range(self.layers):
            x = EqDense(self.w_dim, lr_mul=self.lr_mul, act=True, name=f"fc{i}")(x)
        return x


def noise_shapes(size: int) -> list:
    """[(side, side)] of each synthesis layer's noise input, in layer order."""
    sides = resolutions(size)
    return [(4, 4)] + [(s, s) for s in sides[1:] for _ in range(2)]


def draw_noise(key, n: int, size: int, dtype=jnp.float32) -> list:
    """Per-pixel N(0, 1) noise [n, s, s, 1] for each synthesis layer."""
    keys = jax.random.split(key, len(noise_shapes(size)))
    return [jax.random.normal(k, (n, h, w, 1), dtype) for k, (h, w) in zip(keys, noise_shapes(size))]


class Synthesis(nn.Module):
    """ws [N, num_ws, w_dim] and noises (draw_noise; None = no noise) -> images [N, size, size, channels]."""
    size: int
    channels: int
    channel_base: int = 2048
    channel_max: int = 128

    @nn.compact
    def __call__(self, ws, noises=None):
        sides = resolutions(self.size)
        noises = noises if noises is not None else [None] * len(noise_shapes(self.size))
        c = lambda s: width(s, self.channel_base, self.channel_max)
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, c(4)))
        x = jnp.broadcast_to(const.astype(ws.dtype), (ws.shape[0], 4, 4, c(4)))
        x = SynthesisLayer(c(4), name="b4_conv1")(x, ws[:, 0], noises[0])
        img = ToRGB(self.channels, name="b4_torgb")(x, ws[:, 1])
        for i, s in enumerate(sides[1:]):
            x = SynthesisLayer(c(s), up=True, name=f"b{s}_conv0")(x, ws[:, 2 * i + 1], noises[2 * i + 1])
            x = SynthesisLayer(c(s), name=f"b{s}_conv1")(x, ws[:, 2 * i + 2], noises[2 * i + 2])
            img = upsample2x(img) + ToRGB(self.channels, name=f"b{s}_torgb")(x, ws[:, 2 * i + 3])
        return img


def minibatch_std(x, group: int):
    """x [N, H, W, C] with one more channel: the standard deviation over each group of `group` images
    (images n and n + N/G share a group), averaged over pixels and channels (Karras et al. 2018 sec. 3)."""
    n, h, w, c = x.shape
    g = min(group, n)
    if n % g:
        raise JgenError(f"the minibatch standard deviation needs a batch divisible by {g}, got {n}")
    y = x.astype(jnp.float32).reshape(g, n // g, h, w, c)
    y = jnp.sqrt(jnp.mean(jnp.square(y - jnp.mean(y, axis=0)), axis=0) + 1e-8)
    y = jnp.mean(y, axis=(1, 2, 3))  # [n / g]
    y = jnp.tile(y, g).reshape(n, 1, 1, 1).astype(x.dtype)
    return jnp.concatenate([x, jnp.broadcast_to(y, (n, h, w, 1))], axis=-1)


class Discriminator(nn.Module):
    """images [N, size, size, C] -> logits [N] (the residual discriminator, Fig. 7c)."""
    size: int
    channel_base: int = 2048
    channel_max: int = 128
    mbstd_group: int = 4

    @nn.compact
    def __call__(self, x):
        sides = resolutions(self.size)
        c = lambda s: width(s, self.channel_base, self.channel_max)
        x = EqConv(c(self.size), kernel=1, name="fromrgb")(x)
        for s in reversed(sides[1:]):
            skip = EqConv(c(s // 2), kernel=1, act=False, use_bias=False, name=f"b{s}_skip")(downsample2x(x))
            h = EqConv(c(s), name=f"b{s}_conv0")(x)
            h = EqConv(c(s // 2), down=True, name=f"b{s}_conv1")(h)
            x = (skip + h) * math.sqrt(0.5)
        x = minibatch_std(x, self.mbstd_group)
        x = EqConv(c(4), name="b4_conv")(x)
        x = EqDense(c(4), act=True, name="b4_fc")(x.reshape(x.shape[0], -1))
        return EqDense(1, name="b4_out")(x).reshape(x.shape[0])
