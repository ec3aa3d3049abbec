"""PyTorch twin of jgen's DDPM U-Net (jgen/nn/unet.py), its initialiser, and a jgen -> torch copier.

Modules are named after jgen's parameter paths ("down_0_block_1.conv1", ...), so the copier is a
walk over jgen's params with one layout rule per leaf kind: conv kernels HWIO -> OIHW, dense
kernels [in, out] -> [out, in], a 1x1 shortcut Dense -> a 1x1 Conv2d, GroupNorm scale/bias ->
weight/bias. Stride-2 downsampling pads (0, 1) on each spatial axis as Flax's SAME does.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def same_pad(n):
    """Flax/TF SAME padding of a 3x3 stride-2 convolution on n pixels: (before, after)."""
    total = max(((n + 1) // 2 - 1) * 2 + 3 - n, 0)
    return total // 2, total - total // 2


def _norm(c, groups):
    return nn.GroupNorm(math.gcd(groups, c), c, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, c_in, c_out, temb_ch, groups, dropout):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.temb_proj = nn.Linear(temb_ch, c_out)
        self.norm2, self.conv2 = _norm(c_out, groups), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.dropout = nn.Dropout(dropout)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = _norm(c, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Linear(c, c) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        w = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) * c ** -0.5, dim=-1)
        h = self.proj_out(w @ self.v(h))
        return x + h.transpose(1, 2).reshape(b, c, hh, ww)


class TorchUNet(nn.Module):
    """Same constructor arguments and input layout conventions as jgen's UNet, NCHW tensors."""

    def __init__(self, in_ch, size, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 dropout=0.1, num_groups=32, out_ch=None):
        super().__init__()
        self.ch, self.num_res_blocks, self.levels = ch, num_res_blocks, len(ch_mult)
        m = nn.ModuleDict()
        m["temb_dense0"], m["temb_dense1"] = nn.Linear(ch, 4 * ch), nn.Linear(4 * ch, 4 * ch)
        m["conv_in"] = nn.Conv2d(in_ch, ch, 3, 1, 1)
        widths, c, res, sizes = [ch], ch, size, []
        self.attn = set()
        for level, mult in enumerate(ch_mult):
            for block in range(num_res_blocks):
                m[f"down_{level}_block_{block}"] = ResnetBlock(c, ch * mult, 4 * ch, num_groups, dropout)
                c = ch * mult
                if res in attn_resolutions:
                    m[f"down_{level}_attn_{block}"] = AttnBlock(c, num_groups)
                widths.append(c)
            if level != len(ch_mult) - 1:
                m[f"down_{level}_downsample"] = nn.Conv2d(c, c, 3, 2, 0)
                sizes.append(res)
                widths.append(c)
                res = (res + 1) // 2
        m["mid_block_0"], m["mid_attn"] = ResnetBlock(c, c, 4 * ch, num_groups, dropout), AttnBlock(c, num_groups)
        m["mid_block_1"] = ResnetBlock(c, c, 4 * ch, num_groups, dropout)
        for level, mult in reversed(list(enumerate(ch_mult))):
            for block in range(num_res_blocks + 1):
                m[f"up_{level}_block_{block}"] = ResnetBlock(c + widths.pop(), ch * mult, 4 * ch, num_groups, dropout)
                c = ch * mult
                if res in attn_resolutions:
                    m[f"up_{level}_attn_{block}"] = AttnBlock(c, num_groups)
            if level != 0:
                m[f"up_{level}_upsample"] = nn.Conv2d(c, c, 3, 1, 1)
                res = sizes.pop()
        m["norm_out"], m["conv_out"] = _norm(c, num_groups), nn.Conv2d(c, out_ch or in_ch, 3, 1, 1)
        self.m = m

    def forward(self, x, t):
        m = self.m
        temb = m["temb_dense1"](F.silu(m["temb_dense0"](timestep_embedding(t, self.ch))))
        hs = [m["conv_in"](x)]
        for level in range(self.levels):
            for block in range(self.num_res_blocks):
                h = m[f"down_{level}_block_{block}"](hs[-1], temb)
                if f"down_{level}_attn_{block}" in m:
                    h = m[f"down_{level}_attn_{block}"](h)
                hs.append(h)
            if level != self.levels - 1:
                (t0, t1), (l0, l1) = same_pad(hs[-1].shape[2]), same_pad(hs[-1].shape[3])
                hs.append(m[f"down_{level}_downsample"](F.pad(hs[-1], (l0, l1, t0, t1))))
        h = m["mid_block_1"](m["mid_attn"](m["mid_block_0"](hs[-1], temb)), temb)
        for level in reversed(range(self.levels)):
            for block in range(self.num_res_blocks + 1):
                h = m[f"up_{level}_block_{block}"](torch.cat([h, hs.pop()], dim=1), temb)
                if f"up_{level}_attn_{block}" in m:
                    h = m[f"up_{level}_attn_{block}"](h)
            if level != 0:
                h = m[f"up_{level}_upsample"](F.interpolate(h, scale_factor=2, mode="nearest"))
        return m["conv_out"](F.silu(m["norm_out"](h)))


def init_like_jgen(twin: TorchUNet):
    """jgen's initialisation: fan-average uniform variance scaling (= Xavier uniform), zero biases, and
    the last layer of every residual branch, attention output and conv_out at (almost) zero."""
    for name, mod in twin.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            last = name.endswith(("conv2", "proj_out", "conv_out"))
            if last:
                nn.init.uniform_(mod.weight, -1e-5, 1e-5)
            else:
                nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    return twin


def _t(a):
    return torch.from_numpy(np.array(a, np.float32))


def copy_unet(twin: TorchUNet, params):
    """jgen UNet params -> twin, in place."""
    for name, mod in twin.named_modules():
        path = name.split(".")[1:]  # drop the ModuleDict's own name
        if not path or not isinstance(mod, (nn.Conv2d, nn.Linear, nn.GroupNorm)):
            continue
        p = params
        for key in path:
            p = p[key]
        if isinstance(mod, nn.GroupNorm):
            mod.weight.data, mod.bias.data = _t(p["scale"]), _t(p["bias"])
            continue
        kernel = np.asarray(p["kernel"])
        if isinstance(mod, nn.Linear):
            mod.weight.data = _t(kernel.T)
        elif kernel.ndim == 2:  # the 1x1 shortcut, a Dense in jgen
            mod.weight.data = _t(kernel.T[:, :, None, None])
        else:
            mod.weight.data = _t(kernel.transpose(3, 2, 0, 1))
        mod.bias.data = _t(p["bias"])
