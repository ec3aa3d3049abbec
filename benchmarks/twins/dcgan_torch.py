"""pytorch/examples' DCGAN generator and discriminator, generalised to jgen's sizes, and a jgen -> torch copier.

The layer sequence is the one of pytorch/examples/dcgan (ConvTranspose(nz, c, base, 1, 0) first,
BatchNorm2d, ReLU / LeakyReLU(0.2), no biases beside BatchNorm); the discriminator ends in a logit
(the example's Sigmoid + BCELoss is BCEWithLogits on this logit). jgen's first generator layer is a
Dense on z, which is that first ConvTranspose on a 1x1 input: `copy_generator` reshapes the kernel.
"""

import numpy as np
import torch
from torch import nn

from jgen.nn.dcgan import layout


class TorchGenerator(nn.Module):
    def __init__(self, size, channels, latent_dim, ngf):
        super().__init__()
        base, k = layout(size)
        c = ngf * 2 ** (k - 1)
        layers = [nn.ConvTranspose2d(latent_dim, c, base, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z[:, :, None, None])


class TorchDiscriminator(nn.Module):
    def __init__(self, size, channels, ndf, norm="batch"):
        super().__init__()
        base, k = layout(size)
        bias = norm == "none"
        layers, c_in = [], channels
        for i in range(k):
            layers.append(nn.Conv2d(c_in, ndf * 2 ** i, 4, 2, 1, bias=bias))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(ndf * 2 ** i))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = ndf * 2 ** i
        layers.append(nn.Conv2d(c_in, 1, base, 1, 0, bias=bias))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).view(-1)


def _t(a):
    return torch.from_numpy(np.array(a, np.float32))  # a copy: torch updates buffers in place


def _copy_bn(bn, params, stats):
    bn.weight.data, bn.bias.data = _t(params["scale"]), _t(params["bias"])
    bn.running_mean.data, bn.running_var.data = _t(stats["mean"]), _t(stats["var"])


def copy_generator(twin: TorchGenerator, params, stats):
    """jgen Generator params/batch_stats -> twin, in place."""
    convs = [m for m in twin.main if isinstance(m, nn.ConvTranspose2d)]
    bns = [m for m in twin.main if isinstance(m, nn.BatchNorm2d)]
    nz, c = convs[0].weight.shape[:2]
    base = convs[0].weight.shape[2]
    convs[0].weight.data = _t(np.asarray(params["project"]["kernel"]).reshape(nz, base, base, c).transpose(0, 3, 1, 2))
    _copy_bn(bns[0], params["project_bn"], stats["project_bn"])
    for i, conv in enumerate(convs[1:]):
        conv.weight.data = _t(np.asarray(params[f"up{i}"]["kernel"]).transpose(2, 3, 0, 1))
        if i < len(bns) - 1:
            _copy_bn(bns[i + 1], params[f"up{i}_bn"], stats[f"up{i}_bn"])


def copy_discriminator(twin: TorchDiscriminator, params, stats):
    """jgen Discriminator params/batch_stats -> twin, in place."""
    convs = [m for m in twin.main if isinstance(m, nn.Conv2d)]
    bns = iter(m for m in twin.main if isinstance(m, nn.BatchNorm2d))
    names = [f"down{i}" for i in range(len(convs) - 1)] + ["logit"]
    for name, conv in zip(names, convs):
        conv.weight.data = _t(np.asarray(params[name]["kernel"]).transpose(3, 2, 0, 1))
        if conv.bias is not None:
            conv.bias.data = _t(params[name]["bias"])
        if f"{name}_bn" in params:
            _copy_bn(next(bns), params[f"{name}_bn"], stats[f"{name}_bn"])
