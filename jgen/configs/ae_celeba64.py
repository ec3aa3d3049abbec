"""The KL autoencoder for CelebA at 64 px, f = 4 (64 x 64 x 3 -> 16 x 16 x 4): Rombach et al. 2022's KL-f4
widths (128, 256, 512; two ResNet blocks per level), L1 + KL 1e-6 + the patch discriminator from step
50,000 (their schedule). A pod recipe: lowered for cuda and tpu in the tests, not trained here."""

from jgen.configs import base


def get_config():
    c = base.get_config("autoencoder")
    c.data.update(source="tfds:celeb_a:train", image_size=64, channels=3, crop=148, random_flip=True)
    c.model.update(ch=128, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=4)
    c.ae.update(disc_start=50001, disc_layers=3, disc_ndf=64)
    c.optim.gen.update(lr=4.5e-6 * 64)  # the reference's base rate times the batch
    c.optim.disc.update(lr=4.5e-6 * 64)
    c.train.update(steps=200_000, batch_size=64, log_every=100, sample_every=5000, ckpt_every=5000)
    return c
