"""Latent flow matching for LSUN bedrooms at 256 px: ldm_celeba64's process and schedule with a DiT-B/2 (12
blocks, width 768, 12 heads; 256 tokens) on the 32 x 32 x 4 latents of configs/ae_lsun256.py (trained into
runs/ae_lsun256 first), as SiT-B/2 trains on ImageNet-256 latents: velocity target, logit-normal t, AdamW
1e-4, EMA 0.9999, batch 256. A pod recipe: lowered for cuda and tpu in the tests."""

from jgen.configs import ldm_celeba64


def get_config():
    c = ldm_celeba64.get_config()
    c.data.update(source="latents:runs/ae_lsun256", image_size=256)
    c.model.update(hidden=768, heads=12)
    return c
