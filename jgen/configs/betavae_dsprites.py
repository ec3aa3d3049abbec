"""beta-VAE on dSprites (TFDS `dsprites`, 737,280 binary 64x64 shapes), Higgins et al. 2017: beta 4,
10 latents, Bernoulli likelihood, Adam 5e-4 (the paper's 1e-4 also works, slower), batch 64. The
paper's architecture (32-32-64-64 convolutions, 256 hidden). Needs `tfds build dsprites`.
Set vae.objective=capacity for Burgess et al. 2018 (gamma 1000, C to 25 nats over 100k steps).
"""

from jgen.configs import base


def get_config():
    c = base.get_config("vae")
    c.data.update(source="tfds:dsprites:train", image_size=64)
    c.vae.beta = 4.0
    c.train.update(steps=300000, sample_every=10000, ckpt_every=10000, keep_checkpoints=3)
    c.eval.update(num=10000, split="train")
    return c
