"""The KL autoencoder for LSUN bedrooms at 256 px, f = 8 (256 x 256 x 3 -> 32 x 32 x 4): ae_celeba64 with Stable
Diffusion's VAE widths (128, 256, 512, 512; two ResNet blocks per level; diffusers' AutoencoderKL layout, so
its weights import), L1 + KL 1e-6 + the patch discriminator from step 50,000. A pod recipe: lowered for cuda
and tpu in the tests, not trained here."""

from jgen.configs import ae_celeba64


def get_config():
    c = ae_celeba64.get_config()
    c.data.update(source="tfds:lsun/bedroom:train", image_size=256, crop=0)
    c.model.update(ch_mult=(1, 2, 4, 4))
    c.optim.gen.update(lr=4.5e-6 * 32)  # the reference's base rate times the batch
    c.optim.disc.update(lr=4.5e-6 * 32)
    c.train.update(steps=300_000, batch_size=32)
    return c
