"""SR3 (Saharia et al. 2021) on CelebA faces: 16x16 -> 64x64, a 64-px U-Net in the DDPM recipe.

Needs the TFDS celeb_a files (`--set data.data_dir=...`); a GPU-sized run, like the other CelebA configs.
"""

import os

from jgen.config import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddpm_cifar10.py"))
    c.data.source, c.data.image_size, c.data.crop, c.data.shuffle_buffer = "tfds:celeb_a:train", 64, 178, 20_000
    c.model.ch_mult, c.model.attn_resolutions = (1, 1, 2, 2, 4), (16,)
    c.condition = dict(kind="lowres", scale=4, drop=0.1)
    c.train.steps, c.train.batch_size = 500_000, 64
    c.eval.metrics = "fid"
    return c
