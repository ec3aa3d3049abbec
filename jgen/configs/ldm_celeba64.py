"""Latent flow matching for CelebA at 64 px: a DiT-S/2 (12 blocks, width 384, 6 heads; 64 tokens) on the
16 x 16 x 4 latents of configs/ae_celeba64.py (trained into runs/ae_celeba64 first), velocity target,
logit-normal t, Heun on a uniform grid. A pod recipe: lowered for cuda and tpu in the tests."""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")
    c.data.update(source="latents:runs/ae_celeba64", image_size=64, channels=3)
    c.model.update(arch="dit", patch_size=2, hidden=384, depth=12, heads=6)
    c.diffusion.update(process="flow", prediction="velocity", time_sampling="logit_normal")
    c.optim.update(lr=1e-4, warmup_steps=1000, ema_decay=0.9999, grad_clip=1.0)
    c.train.update(steps=400_000, batch_size=256, log_every=100, sample_every=10_000, ckpt_every=10_000)
    c.sample.update(sampler="heun", steps=25)
    return c
