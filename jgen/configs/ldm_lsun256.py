"""Latent flow matching for LSUN bedrooms at 256 px: DiT-B/2 (12 blocks, width 768, 12 heads; 256 tokens) on
the 32 x 32 x 4 latents of configs/ae_lsun256.py (trained into runs/ae_lsun256 first), as SiT-B/2 trains on
ImageNet-256 latents: velocity target, logit-normal t, AdamW 1e-4, EMA 0.9999, batch 256. A pod recipe:
lowered for cuda and tpu in the tests."""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")
    c.data.update(source="latents:runs/ae_lsun256", image_size=256, channels=3)
    c.model.update(arch="dit", patch_size=2, hidden=768, depth=12, heads=12)
    c.diffusion.update(process="flow", prediction="velocity", time_sampling="logit_normal")
    c.optim.update(lr=1e-4, warmup_steps=1000, ema_decay=0.9999, grad_clip=1.0)
    c.train.update(steps=400_000, batch_size=256, log_every=100, sample_every=10_000, ckpt_every=10_000)
    c.sample.update(sampler="heun", steps=25)
    return c
