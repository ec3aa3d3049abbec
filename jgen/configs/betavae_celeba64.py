"""beta-VAE on CelebA 64x64 (Higgins et al. 2017's CelebA network: 32-32-64-64 convolutions, 256 hidden,
32 latents), Gaussian likelihood with fixed sigma 0.1 on the [-1, 1] scale, beta 1 (raise it for
smoother, more factorised codes), centre crop 148 as PyTorch-VAE does. Needs `tfds build celeb_a`.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("vae")
    c.data.update(source="tfds:celeb_a:train", image_size=64, channels=3, crop=148, random_flip=True)
    c.model.latent_dim = 32
    c.vae.update(likelihood="gaussian", capacity_max=50.0)
    c.train.update(steps=100000, batch_size=144, sample_every=5000, ckpt_every=5000, keep_checkpoints=3)
    c.eval.update(num=10000, metrics="fid,is", extractor="inception")
    return c
