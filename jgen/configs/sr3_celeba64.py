"""SR3 (Saharia et al. 2021) on CelebA faces: 16x16 -> 64x64, a 64-px U-Net in the DDPM recipe.

Needs the TFDS celeb_a files (`--set data.data_dir=...`); a GPU-sized run, like the other CelebA configs.
"""

from jgen.configs import ddpm_cifar10


def get_config():
    c = ddpm_cifar10.get_config()
    c.data.update(source="tfds:celeb_a:train", image_size=64, crop=178)
    c.model.update(ch_mult=(1, 1, 2, 2, 4), attn_resolutions=(16,))
    c.condition.update(kind="lowres", scale=4, drop=0.1)
    c.train.update(steps=500_000, batch_size=64)
    c.eval.metrics = "fid"
    return c
