"""PyTorch twin of jgen's StyleGAN2 (jgen/nn/stylegan.py; Karras et al. 2020), and a jgen -> torch copier.

Written from the paper's description in plain torch, NCHW: equalised weights (stored N(0, 1), scaled
by lr_mul / sqrt(fan_in) in forward), modulation and demodulation done on the weights per sample
(the paper's eq. 1-3 as written, a grouped convolution with groups = batch), FIR filtering as a
depthwise conv2d with the 4x4 outer product of [1, 3, 3, 1] (up: zeros inserted by indexing into a
twice-larger tensor; an upsampling layer convolves first, then filters), the residual discriminator
with minibatch standard deviation. The route to the same function differs from jgen's on purpose
(jgen scales activations and filters by slicing), so the parity test compares two derivations, not
one code path twice.

Modules are named after jgen's parameter paths, so `copy_params` walks jgen's tree with two layout
rules: dense kernels [in, out] -> [out, in], conv kernels HWIO -> OIHW; the discriminator's first
dense layer also moves its input rows from NHWC to NCHW flattening order.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def _fir2d(channels, gain=1.0):
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f) / 64.0 * gain
    return f[None, None].repeat(channels, 1, 1, 1)


def blur(x, pad, gain=1.0):
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, _fir2d(x.shape[1], gain), groups=x.shape[1])


def up2(x):
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    return blur(z, (2, 1), gain=4.0)


def down2(x):
    return blur(x, (1, 1))[:, :, ::2, ::2]


def lrelu(x):
    return F.leaky_relu(x, 0.2) * SQRT2


class EqDense(nn.Module):
    def __init__(self, cin, cout, lr_mul=1.0, bias_init=0.0, act=False, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init))) if bias else None
        self.gain, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x):
        y = F.linear(x, self.weight * self.gain, None if self.bias is None else self.bias * self.lr_mul)
        return lrelu(y) if self.act else y


class EqConv(nn.Module):
    def __init__(self, cin, cout, k=3, down=False, act=True, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain, self.k, self.down, self.act = 1 / math.sqrt(cin * k * k), k, down, act

    def forward(self, x):
        w = self.weight * self.gain
        if self.down:
            p = self.k // 2 + 1
            y = F.conv2d(blur(x, (p, p)), w, self.bias, stride=2)
        else:
            y = F.conv2d(x, w, self.bias, padding=self.k // 2)
        return lrelu(y) if self.act else y


def modconv(x, weight, styles, demodulate=True, up=False):
    """Per-sample weights w'_oi = s_i w_oi, demodulated, as one grouped convolution; up: zeros between
    the pixels, the full (2H + 1 wide) convolution, then the FIR filter with gain 4 (stylegan2-ada-pytorch)."""
    n, cin, h, w = x.shape
    cout, _, k, _ = weight.shape
    wts = weight[None] * styles[:, None, :, None, None]  # [N, O, I, k, k]
    if demodulate:
        wts = wts * torch.rsqrt(wts.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
    pad = k // 2
    if up:
        z = x.new_zeros(n, cin, 2 * h - 1, 2 * w - 1)
        z[:, :, ::2, ::2] = x
        x, h, w, pad = z, 2 * h - 1, 2 * w - 1, k - 1
    y = F.conv2d(x.reshape(1, n * cin, h, w), wts.reshape(n * cout, cin, k, k), padding=pad, groups=n)
    y = y.reshape(n, cout, *y.shape[2:])
    return blur(y, (1, 1), gain=4.0) if up else y


class SynthesisLayer(nn.Module):
    def __init__(self, cin, cout, w_dim, up=False):
        super().__init__()
        self.affine = EqDense(w_dim, cin, bias_init=1.0)
        self.kernel = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.up, self.cin = up, cin

    def forward(self, x, w, noise):
        y = modconv(x, self.kernel / math.sqrt(self.cin * 9), self.affine(w), up=self.up)
        if noise is not None:
            y = y + noise * self.noise_strength
        return lrelu(y + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, cin, channels, w_dim):
        super().__init__()
        self.affine = EqDense(w_dim, cin, bias_init=1.0)
        self.kernel = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.cin = cin

    def forward(self, x, w):
        y = modconv(x, self.kernel / math.sqrt(self.cin), self.affine(w), demodulate=False)
        return y + self.bias[None, :, None, None]


class Mapping(nn.Module):
    def __init__(self, z_dim, w_dim, layers=8, lr_mul=0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        for i in range(layers):
            self.add_module(f"fc{i}", EqDense(dims[i], dims[i + 1], lr_mul=lr_mul, act=True))
        self.layers = layers

    def forward(self, z):
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for i in range(self.layers):
            x = getattr(self, f"fc{i}")(x)
        return x


def _sides(size):
    return [2 ** i for i in range(2, int(math.log2(size)) + 1)]


class Synthesis(nn.Module):
    def __init__(self, size, channels, w_dim, channel_base=2048, channel_max=128):
        super().__init__()
        c = lambda s: min(channel_base // s, channel_max)
        self.sides = _sides(size)
        self.const = nn.Parameter(torch.randn(c(4), 4, 4))
        self.add_module("b4_conv1", SynthesisLayer(c(4), c(4), w_dim))
        self.add_module("b4_torgb", ToRGB(c(4), channels, w_dim))
        for s in self.sides[1:]:
            self.add_module(f"b{s}_conv0", SynthesisLayer(c(s // 2), c(s), w_dim, up=True))
            self.add_module(f"b{s}_conv1", SynthesisLayer(c(s), c(s), w_dim))
            self.add_module(f"b{s}_torgb", ToRGB(c(s), channels, w_dim))

    def forward(self, ws, noises=None):
        noises = noises if noises is not None else [None] * (2 * len(self.sides) - 1)
        x = self.const[None].repeat(ws.shape[0], 1, 1, 1)
        x = self.b4_conv1(x, ws[:, 0], noises[0])
        img = self.b4_torgb(x, ws[:, 1])
        for i, s in enumerate(self.sides[1:]):
            x = getattr(self, f"b{s}_conv0")(x, ws[:, 2 * i + 1], noises[2 * i + 1])
            x = getattr(self, f"b{s}_conv1")(x, ws[:, 2 * i + 2], noises[2 * i + 2])
            img = up2(img) + getattr(self, f"b{s}_torgb")(x, ws[:, 2 * i + 3])
        return img


def mbstd(x, group):
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(g, n // g, c, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[1, 2, 3])
    y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    def __init__(self, size, channels, channel_base=2048, channel_max=128, mbstd_group=4):
        super().__init__()
        c = lambda s: min(channel_base // s, channel_max)
        self.sides, self.group = _sides(size), mbstd_group
        self.fromrgb = EqConv(channels, c(size), k=1)
        for s in reversed(self.sides[1:]):
            self.add_module(f"b{s}_skip", EqConv(c(s), c(s // 2), k=1, act=False, bias=False))
            self.add_module(f"b{s}_conv0", EqConv(c(s), c(s)))
            self.add_module(f"b{s}_conv1", EqConv(c(s), c(s // 2), down=True))
        self.b4_conv = EqConv(c(4) + 1, c(4))
        self.b4_fc = EqDense(c(4) * 16, c(4), act=True)
        self.b4_out = EqDense(c(4), 1)

    def forward(self, x):
        x = self.fromrgb(x)
        for s in reversed(self.sides[1:]):
            skip = getattr(self, f"b{s}_skip")(down2(x))
            h = getattr(self, f"b{s}_conv1")(getattr(self, f"b{s}_conv0")(x))
            x = (skip + h) * math.sqrt(0.5)
        x = self.b4_conv(mbstd(x, self.group))
        return self.b4_out(self.b4_fc(x.flatten(1))).reshape(-1)


def _t(a):
    return torch.from_numpy(np.array(a, np.float32))


def copy_params(module: nn.Module, params, nchw_rows: dict = None):
    """jgen params (a nested dict named as the twin's modules) -> `module`, in place.

    Dense kernels [in, out] -> weight [out, in]; conv kernels HWIO -> OIHW; the synthesis constant
    [4, 4, C] -> [C, 4, 4]; `nchw_rows` {path: (H, W, C)} reorders a dense layer's input rows from
    NHWC to NCHW flattening.
    """
    nchw_rows = nchw_rows or {}

    def walk(prefix, tree):
        for name, value in tree.items():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(value, dict):
                walk(path, value)
                continue
            owner = module.get_submodule(prefix) if prefix else module
            a = np.asarray(value, np.float32)
            if name == "kernel" and a.ndim == 2:
                if prefix in nchw_rows:
                    h, w, c = nchw_rows[prefix]
                    a = a.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
                owner.weight.data = _t(a.T)
            elif name == "kernel" and isinstance(getattr(owner, "kernel", None), nn.Parameter):
                owner.kernel.data = _t(a.transpose(3, 2, 0, 1))
            elif name == "kernel":
                owner.weight.data = _t(a.transpose(3, 2, 0, 1))
            elif name == "const":
                owner.const.data = _t(a.transpose(2, 0, 1))
            else:
                getattr(owner, name).data = _t(a)

    walk("", params)


def grads_like(module: nn.Module, params, nchw_rows: dict = None):
    """The twin's .grad tensors in jgen's layout (the inverse of copy_params's rules), as a nested dict."""
    nchw_rows = nchw_rows or {}

    def walk(prefix, tree):
        out = {}
        for name, value in tree.items():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(value, dict):
                out[name] = walk(path, value)
                continue
            owner = module.get_submodule(prefix) if prefix else module
            if name == "kernel" and np.ndim(value) == 2:
                g = owner.weight.grad.numpy().T
                if prefix in nchw_rows:
                    h, w, c = nchw_rows[prefix]
                    g = g.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
            elif name == "kernel":
                p = owner.kernel if isinstance(getattr(owner, "kernel", None), nn.Parameter) else owner.weight
                g = p.grad.numpy().transpose(2, 3, 1, 0)
            elif name == "const":
                g = owner.const.grad.numpy().transpose(1, 2, 0)
            else:  # a bias R1 does not depend on has no .grad: its gradient is 0
                p = getattr(owner, name)
                g = np.zeros(tuple(p.shape), np.float32) if p.grad is None else p.grad.numpy()
            out[name] = g
        return out

    return walk("", params)
