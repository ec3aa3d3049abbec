"""Flow matching on the offline digits: rectified flow (alpha = 1 - t, sigma = t) with the velocity
target and logit-normal time sampling (Liu et al. 2023; Esser et al. 2024; SiT), on the DDPM main job's
narrow U-Net, sampled by Heun on a uniform grid in t. Measured side by side with the DDPM main job in
benchmarks/recipes.py (README, the recipe table)."""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")
    c.diffusion.update(process="flow", prediction="velocity", time_sampling="logit_normal")
    c.optim.update(lr=1e-3, warmup_steps=100, ema_decay=0.999)
    c.train.update(steps=8000, batch_size=16, log_every=100, sample_every=0, ckpt_every=2000)
    c.sample.update(sampler="heun", steps=10)
    return c
