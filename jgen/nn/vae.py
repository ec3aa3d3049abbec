"""The convolutional encoder and decoder of beta-VAE (Higgins et al. 2017, appendix A), NHWC.

At 64 px: four 4x4 stride-2 convolutions of 32, 32, 64, 64 channels, a 256-unit dense layer and a
dense layer to the mean and log-variance of q(z|x); the decoder mirrors it with 4x4 stride-2
transposed convolutions (jgen's phase form). Smaller images use the last k of those layers,
where size = base * 2^k as for the DCGAN networks (28 -> 7x7x64 after two layers, 32 -> 4x4x64
after three), so every convolution halves the side exactly. ReLU throughout.
"""

import flax.linen as nn

from jgen.nn.dcgan import Conv4x4Down, ConvTranspose4x4, layout

CHANNELS = (32, 32, 64, 64)


class Encoder(nn.Module):
    """x [B, H, W, C] in [-1, 1] -> (mean [B, latent], log-variance [B, latent])."""
    size: int
    latent_dim: int
    hidden: int = 256

    @nn.compact
    def __call__(self, x):
        _, k = layout(self.size)
        h = x
        for i, c in enumerate(CHANNELS[-k:]):
            h = nn.relu(Conv4x4Down(c, name=f"conv{i}")(h))
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(h.reshape(x.shape[0], -1)))
        stats = nn.Dense(2 * self.latent_dim, name="stats")(h)
        return stats[:, :self.latent_dim], stats[:, self.latent_dim:]


class Decoder(nn.Module):
    """z [B, latent] -> per-pixel parameters [B, size, size, channels] (Bernoulli logits or Gaussian means)."""
    size: int
    channels: int
    hidden: int = 256

    @nn.compact
    def __call__(self, z):
        base, k = layout(self.size)
        chans = CHANNELS[-k:]
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(z))
        h = nn.relu(nn.Dense(base * base * chans[-1], name="project")(h)).reshape(z.shape[0], base, base, chans[-1])
        outs = list(chans[::-1][1:]) + [self.channels]
        init = nn.initializers.lecun_normal()
        for i, c in enumerate(outs):
            h = ConvTranspose4x4(c, use_bias=True, kernel_init=init, name=f"up{i}")(h)
            if i < len(outs) - 1:
                h = nn.relu(h)
        return h
