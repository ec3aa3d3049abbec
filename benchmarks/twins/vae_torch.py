"""PyTorch twin of jgen's beta-VAE encoder and decoder (Higgins et al. 2017 layout), and a jgen -> torch copier.

Flattening order differs between the frameworks (NHWC in jgen, NCHW in torch), so the copier
permutes the rows of the first dense layer of the encoder and the columns of the decoder's
projection; everything else is a transpose of the kernel layout.
"""

import numpy as np
import torch
from torch import nn

from jgen.nn.dcgan import layout
from jgen.nn.vae import CHANNELS


class TorchEncoder(nn.Module):
    def __init__(self, size, channels, latent_dim, hidden=256):
        super().__init__()
        base, k = layout(size)
        chans, c_in, layers = CHANNELS[-k:], channels, []
        for c in chans:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.ReLU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.hidden = nn.Linear(base * base * chans[-1], hidden)
        self.stats = nn.Linear(hidden, 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x):
        h = torch.relu(self.hidden(self.convs(x).flatten(1)))
        stats = self.stats(h)
        return stats[:, :self.latent_dim], stats[:, self.latent_dim:]


class TorchDecoder(nn.Module):
    def __init__(self, size, channels, latent_dim, hidden=256):
        super().__init__()
        self.base, k = layout(size)
        chans = CHANNELS[-k:]
        self.c0 = chans[-1]
        self.hidden = nn.Linear(latent_dim, hidden)
        self.project = nn.Linear(hidden, self.base * self.base * self.c0)
        outs, c_in, layers = list(chans[::-1][1:]) + [channels], self.c0, []
        for i, c in enumerate(outs):
            layers.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
            c_in = c
        self.ups = nn.Sequential(*layers)

    def forward(self, z):
        h = torch.relu(self.project(torch.relu(self.hidden(z))))
        return self.ups(h.view(-1, self.c0, self.base, self.base))


def _t(a):
    return torch.from_numpy(np.array(a, np.float32))


def _dense(linear, p):
    linear.weight.data, linear.bias.data = _t(np.asarray(p["kernel"]).T), _t(p["bias"])


def copy_encoder(twin: TorchEncoder, params):
    convs = [m for m in twin.convs if isinstance(m, nn.Conv2d)]
    for i, conv in enumerate(convs):
        conv.weight.data = _t(np.asarray(params[f"conv{i}"]["kernel"]).transpose(3, 2, 0, 1))
        conv.bias.data = _t(params[f"conv{i}"]["bias"])
    c = convs[-1].out_channels
    kernel = np.asarray(params["hidden"]["kernel"])  # rows in (h, w, c) order; torch flattens (c, h, w)
    side = int(round((kernel.shape[0] // c) ** 0.5))
    kernel = kernel.reshape(side, side, c, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
    _dense(twin.hidden, {"kernel": kernel, "bias": params["hidden"]["bias"]})
    _dense(twin.stats, params["stats"])


def copy_decoder(twin: TorchDecoder, params):
    _dense(twin.hidden, params["hidden"])
    b, c = twin.base, twin.c0
    kernel = np.asarray(params["project"]["kernel"])  # columns in (h, w, c) order
    n = kernel.shape[0]
    kernel = kernel.reshape(n, b, b, c).transpose(0, 3, 1, 2).reshape(n, -1)
    bias = np.asarray(params["project"]["bias"]).reshape(b, b, c).transpose(2, 0, 1).reshape(-1)
    _dense(twin.project, {"kernel": kernel, "bias": bias})
    for i, up in enumerate(m for m in twin.ups if isinstance(m, nn.ConvTranspose2d)):
        up.weight.data = _t(np.asarray(params[f"up{i}"]["kernel"]).transpose(2, 3, 0, 1))
        up.bias.data = _t(params[f"up{i}"]["bias"])
