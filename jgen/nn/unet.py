"""The DDPM U-Net (Ho et al. 2020): a pure Linen module, epsilon/x0/v head chosen by the caller."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jgen.nn.layers import AttnBlock, ResnetBlock, conv3x3, default_init, group_norm, timestep_embedding


class UNet(nn.Module):
    """x: [B, H, W, C] in [-1, 1], t: [B] timesteps -> [B, H, W, out_ch].

    Resolutions halve after every level but the last; attention runs at the spatial sizes listed in
    `attn_resolutions`. With ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attention at 16 this is
    the paper's 35.7M-parameter CIFAR-10 model.

    num_classes > 0 makes it class-conditional: y [B] in [0, num_classes], where num_classes is the
    null label of classifier-free guidance, adds a learned embedding to the timestep embedding.
    Conditioning on an image (SR3) needs nothing here: the caller concatenates it to x's channels.
    """
    ch: int = 128
    ch_mult: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (16,)
    dropout: float = 0.1
    num_groups: int = 32
    out_ch: int = 3
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, t, y=None, train: bool = False):
        res_block = lambda out, name: ResnetBlock(out, self.num_groups, self.dropout, name=name)
        temb = timestep_embedding(t, self.ch).astype(x.dtype)  # compute in x's dtype (bfloat16 or float32)
        temb = nn.Dense(4 * self.ch, kernel_init=default_init(), name="temb_dense0")(temb)
        temb = nn.Dense(4 * self.ch, kernel_init=default_init(), name="temb_dense1")(nn.swish(temb))
        if self.num_classes:
            temb = temb + nn.Embed(self.num_classes + 1, 4 * self.ch, name="label_embed")(y).astype(temb.dtype)

        hs = [conv3x3(self.ch, name="conv_in")(x)]
        for level, mult in enumerate(self.ch_mult):
            for block in range(self.num_res_blocks):
                h = res_block(self.ch * mult, f"down_{level}_block_{block}")(hs[-1], temb, train)
                if h.shape[1] in self.attn_resolutions:
                    h = AttnBlock(self.num_groups, name=f"down_{level}_attn_{block}")(h)
                hs.append(h)
            if level != len(self.ch_mult) - 1:
                hs.append(conv3x3(hs[-1].shape[-1], stride=2, name=f"down_{level}_downsample")(hs[-1]))

        h = hs[-1]
        h = res_block(h.shape[-1], "mid_block_0")(h, temb, train)
        h = AttnBlock(self.num_groups, name="mid_attn")(h)
        h = res_block(h.shape[-1], "mid_block_1")(h, temb, train)

        for level, mult in reversed(list(enumerate(self.ch_mult))):
            for block in range(self.num_res_blocks + 1):
                h = res_block(self.ch * mult, f"up_{level}_block_{block}")(
                    jnp.concatenate([h, hs.pop()], axis=-1), temb, train)
                if h.shape[1] in self.attn_resolutions:
                    h = AttnBlock(self.num_groups, name=f"up_{level}_attn_{block}")(h)
            if level != 0:
                h = conv3x3(h.shape[-1], upsample=True, name=f"up_{level}_upsample")(h)
        assert not hs

        h = nn.swish(group_norm(h.shape[-1], self.num_groups, name="norm_out")(h))
        return conv3x3(self.out_ch, scale=0.0, name="conv_out")(h)
