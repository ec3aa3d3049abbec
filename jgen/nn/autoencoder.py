"""The KL autoencoder of latent diffusion (Rombach et al. 2022, appendix G) and Isola et al. 2017's patch
discriminator, NHWC.

Encoder: conv_in, then one level per width in `channels` (num_res_blocks ResNet blocks each, a stride-2
convolution between levels), a middle of ResNet, single-head self-attention, ResNet, then GroupNorm,
SiLU and a 3x3 convolution to 2 * z_channels (the posterior's mean and log-variance), and a 1x1
`quant_conv`. The decoder mirrors it (num_res_blocks + 1 blocks per level, nearest-neighbour 2x and a
3x3 convolution between levels) after a 1x1 `post_quant_conv`. The side shrinks by f = 2^(levels - 1).

Module names follow diffusers' AutoencoderKL (`encoder.down_blocks.0.resnets.1.norm1` is
`encoder/down_blocks_0/resnets_1/norm1` here), so its weights load by renaming alone
(jgen.diffusion.pretrained.autoencoder_params_from_diffusers).
"""

import flax.linen as nn
import jax.numpy as jnp

from jgen.nn.dcgan import Conv4x4Down
from jgen.nn.layers import attention_logits, conv3x3, group_norm


class ResBlock(nn.Module):
    """x -> skip(x) + conv2(drop(silu(norm2(conv1(silu(norm1(x))))))); skip a 1x1 projection if widths differ."""
    out_ch: int
    groups: int = 32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = conv3x3(self.out_ch, name="conv1")(nn.silu(group_norm(x.shape[-1], self.groups, name="norm1")(x)))
        h = nn.silu(group_norm(self.out_ch, self.groups, name="norm2")(h))
        h = conv3x3(self.out_ch, name="conv2")(nn.Dropout(self.dropout, deterministic=not train)(h))
        if x.shape[-1] != self.out_ch:
            x = nn.Dense(self.out_ch, name="conv_shortcut")(x)
        return x + h


class Attention(nn.Module):
    """Single-head self-attention over all positions, residual (the middle block's; softmax in float32)."""
    groups: int = 32

    @nn.compact
    def __call__(self, x):
        b, hh, ww, c = x.shape
        h = group_norm(c, self.groups, name="group_norm")(x).reshape(b, hh * ww, c)
        q, k, v = (nn.Dense(c, name=n)(h) for n in ("to_q", "to_k", "to_v"))
        w = nn.softmax(attention_logits(q, k) * c ** -0.5, axis=-1).astype(v.dtype)
        return x + nn.Dense(c, name="to_out_0")(jnp.einsum("bqk,bkc->bqc", w, v)).reshape(b, hh, ww, c)


class Middle(nn.Module):
    groups: int
    attention: bool = True
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        c = x.shape[-1]
        x = ResBlock(c, self.groups, self.dropout, name="resnets_0")(x, train)
        if self.attention:
            x = Attention(self.groups, name="attentions_0")(x)
        return ResBlock(c, self.groups, self.dropout, name="resnets_1")(x, train)


class Encoder(nn.Module):
    """x [B, H, W, C] in [-1, 1] -> moments [B, H/f, W/f, 2 z] (before quant_conv)."""
    channels: tuple
    num_res_blocks: int
    z_channels: int
    groups: int = 32
    attention: bool = True
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = conv3x3(self.channels[0], name="conv_in")(x)
        for i, c in enumerate(self.channels):
            for j in range(self.num_res_blocks):
                h = ResBlock(c, self.groups, self.dropout, name=f"down_blocks_{i}/resnets_{j}")(h, train)
            if i < len(self.channels) - 1:  # diffusers pads right and bottom by one, then a valid stride-2 3x3:
                h = conv3x3(c, stride=2, name=f"down_blocks_{i}/downsamplers_0/conv")(h)  # SAME on an even side
        h = Middle(self.groups, self.attention, self.dropout, name="mid_block")(h, train)
        h = nn.silu(group_norm(h.shape[-1], self.groups, name="conv_norm_out")(h))
        return conv3x3(2 * self.z_channels, name="conv_out")(h)


class Decoder(nn.Module):
    """z [B, h, w, z_channels] (after post_quant_conv) -> images [B, f h, f w, out_channels]."""
    channels: tuple
    num_res_blocks: int
    out_channels: int
    groups: int = 32
    attention: bool = True
    dropout: float = 0.0

    @nn.compact
    def __call__(self, z, train: bool = False):
        widths = self.channels[::-1]
        h = conv3x3(widths[0], name="conv_in")(z)
        h = Middle(self.groups, self.attention, self.dropout, name="mid_block")(h, train)
        for i, c in enumerate(widths):
            for j in range(self.num_res_blocks + 1):
                h = ResBlock(c, self.groups, self.dropout, name=f"up_blocks_{i}/resnets_{j}")(h, train)
            if i < len(widths) - 1:
                h = conv3x3(c, upsample=True, name=f"up_blocks_{i}/upsamplers_0/conv")(h)
        h = nn.silu(group_norm(h.shape[-1], self.groups, name="conv_norm_out")(h))
        return conv3x3(self.out_channels, name="conv_out")(h)


class AutoencoderKL(nn.Module):
    """Both halves; `encode` returns the posterior's (mean, log-variance), each [B, H/f, W/f, z]."""
    channels: tuple
    num_res_blocks: int
    z_channels: int
    out_channels: int
    groups: int = 32
    attention: bool = True
    dropout: float = 0.0

    def setup(self):
        kw = dict(groups=self.groups, attention=self.attention, dropout=self.dropout)
        self.encoder = Encoder(self.channels, self.num_res_blocks, self.z_channels, **kw)
        self.decoder = Decoder(self.channels, self.num_res_blocks, self.out_channels, **kw)
        self.quant_conv = nn.Dense(2 * self.z_channels)
        self.post_quant_conv = nn.Dense(self.z_channels)

    def encode(self, x, train: bool = False):
        moments = self.quant_conv(self.encoder(x, train))
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0)

    def decode(self, z, train: bool = False):
        return self.decoder(self.post_quant_conv(z), train)

    def __call__(self, x, z, train: bool = False):
        return self.encode(x, train), self.decode(z, train)


class PatchDiscriminator(nn.Module):
    """Isola et al. 2017's PatchGAN: x [B, H, W, C] -> one logit per overlapping patch [B, h, w].

    `layers` stride-2 4x4 convolutions (ndf, 2 ndf, ... at most 8 ndf) with LeakyReLU(0.2), one stride-1
    4x4 convolution, and a stride-1 4x4 convolution to one channel, all padded by 1. Isola et al.
    normalise the hidden layers with BatchNorm; here they are unnormalised, so the discriminator stays a
    pure function of its parameters (no running statistics to carry between its two calls per step).
    """
    ndf: int = 64
    layers: int = 3

    @nn.compact
    def __call__(self, x):
        h = x
        for i in range(self.layers):
            h = nn.leaky_relu(Conv4x4Down(self.ndf * min(2 ** i, 8), name=f"conv{i}")(h), 0.2)
        h = nn.leaky_relu(nn.Conv(self.ndf * min(2 ** self.layers, 8), (4, 4), 1, padding=1, name="conv_last")(h), 0.2)
        return nn.Conv(1, (4, 4), 1, padding=1, name="logits")(h)[..., 0]
