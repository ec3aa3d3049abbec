"""PyTorch twin of jgen's DiT (jgen/nn/dit.py; Peebles & Xie 2023), its initialiser, and a jgen -> torch copier.

Written from the paper's description in plain torch (no timm): patchify as Conv2d(kernel = stride = p),
a fixed 2-D sin-cos position embedding (a buffer), the timestep MLP on [cos | sin] frequency features,
a label table with a null row, adaLN-Zero blocks (LayerNorm without affine, shift/scale/gate from
SiLU -> Linear(6D)), F.scaled_dot_product_attention, a GELU(tanh) MLP, the adaLN final layer and
unpatchify. Modules are named after jgen's parameter paths ("block_0.attn.qkv", ...), so the copier
walks jgen's params with three layout rules: dense kernels [in, out] -> [out, in], the patch
convolution HWIO -> OIHW, the label table as is. Tensors are NCHW, as torch users hold them.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def frequency_embedding(t, dim=256, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def sincos_2d(dim, grid):
    """[grid*grid, dim]: column position in the first half, row position in the second, each
    [sin | cos] at frequencies 10000^(-i / (dim/4)); tokens row-major."""
    omega = 1.0 / 10000.0 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    pos = torch.arange(grid, dtype=torch.float64)
    row, col = pos.repeat_interleave(grid), pos.repeat(grid)

    def axis(v):
        a = v[:, None] * omega[None, :]
        return torch.cat([a.sin(), a.cos()], dim=1)

    return torch.cat([axis(col), axis(row)], dim=1).float()


def _ln(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def _modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.adaLN_modulation = nn.Linear(dim, 6 * dim)
        self.attn = Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, int(dim * mlp_ratio)), nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = self.adaLN_modulation(F.silu(c)).chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(_modulate(_ln(x), s1, sc1))
        h = self.fc2(F.gelu(self.fc1(_modulate(_ln(x), s2, sc2)), approximate="tanh"))
        return x + g2[:, None] * h


class TorchDiT(nn.Module):
    """Same constructor arguments as jgen's DiT plus the input's channels and size; forward(x NCHW, t, y)."""

    def __init__(self, in_ch, size, patch_size=2, hidden=384, depth=12, heads=6, mlp_ratio=4.0, out_ch=3,
                 num_classes=0):
        super().__init__()
        self.p, self.out_ch, self.grid = patch_size, out_ch, size // patch_size
        self.x_embedder = nn.Conv2d(in_ch, hidden, patch_size, patch_size)
        self.register_buffer("pos_embed", sincos_2d(hidden, self.grid)[None], persistent=False)
        self.t_embedder_0, self.t_embedder_1 = nn.Linear(256, hidden), nn.Linear(hidden, hidden)
        self.y_embedder = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.blocks = nn.ModuleList(Block(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final_adaLN_modulation = nn.Linear(hidden, 2 * hidden)
        self.final_linear = nn.Linear(hidden, patch_size * patch_size * out_ch)

    def forward(self, x, t, y=None):
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed  # [B, T, D]
        c = self.t_embedder_1(F.silu(self.t_embedder_0(frequency_embedding(t))))
        if self.y_embedder is not None:
            c = c + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.final_adaLN_modulation(F.silu(c)).chunk(2, dim=1)
        x = self.final_linear(_modulate(_ln(x), shift, scale))
        b, g, p, o = x.shape[0], self.grid, self.p, self.out_ch
        return x.reshape(b, g, g, p, p, o).permute(0, 5, 1, 3, 2, 4).reshape(b, o, g * p, g * p)


def init_like_jgen(twin: TorchDiT):
    """DiT's initialisation: xavier-uniform Linears with zero biases, the patch convolution xavier-uniform
    over its flattened kernel, timestep MLP and label table N(0, 0.02), adaLN modulations and the
    output Linear zero."""
    for mod in twin.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(mod.weight.data.view(mod.weight.shape[0], -1))
            nn.init.zeros_(mod.bias)
    for mod in (twin.t_embedder_0, twin.t_embedder_1):
        nn.init.normal_(mod.weight, std=0.02)
    if twin.y_embedder is not None:
        nn.init.normal_(twin.y_embedder.weight, std=0.02)
    for mod in [b.adaLN_modulation for b in twin.blocks] + [twin.final_adaLN_modulation, twin.final_linear]:
        nn.init.zeros_(mod.weight)
        nn.init.zeros_(mod.bias)
    return twin


def _t(a):
    return torch.from_numpy(np.array(a, np.float32))


def copy_dit(twin: TorchDiT, params):
    """jgen DiT params -> twin, in place."""
    for name, mod in twin.named_modules():
        if not name or not isinstance(mod, (nn.Linear, nn.Conv2d, nn.Embedding)):
            continue
        p = params
        for key in name.replace("blocks.", "block_").split("."):
            p = p[key]
        if isinstance(mod, nn.Embedding):
            mod.weight.data = _t(p["embedding"])
            continue
        kernel = np.asarray(p["kernel"], np.float32)
        mod.weight.data = _t(kernel.T if kernel.ndim == 2 else kernel.transpose(3, 2, 0, 1))
        mod.bias.data = _t(p["bias"])
