"""The KL autoencoder for LSUN bedrooms at 256 px, f = 8 (256 x 256 x 3 -> 32 x 32 x 4): Stable Diffusion's
VAE architecture (widths 128, 256, 512, 512; two ResNet blocks per level; diffusers' AutoencoderKL layout,
so its weights import), L1 + KL 1e-6 + the patch discriminator from step 50,000. A pod recipe: lowered for
cuda and tpu in the tests, not trained here."""

from jgen.configs import base


def get_config():
    c = base.get_config("autoencoder")
    c.data.update(source="tfds:lsun/bedroom:train", image_size=256, channels=3, crop=0, random_flip=True)
    c.model.update(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4)
    c.ae.update(disc_start=50001, disc_layers=3, disc_ndf=64)
    c.optim.gen.update(lr=4.5e-6 * 32)
    c.optim.disc.update(lr=4.5e-6 * 32)
    c.train.update(steps=300_000, batch_size=32, log_every=100, sample_every=5000, ckpt_every=5000)
    return c
