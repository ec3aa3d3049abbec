"""Flow matching on the offline digits: rectified flow (alpha = 1 - t, sigma = t) with the velocity
target and logit-normal time sampling (Liu et al. 2023; Esser et al. 2024; SiT), on the DDPM main job's
narrow U-Net, sampled by Heun on a uniform grid in t (10 steps, 18 model calls). Measured with
benchmarks/recipes.py on 2 cores (2026-12-06, FID on classifier features over 1,000 samples): 1.66x and
1.74x the floor on seeds 0 and 1 at 8,000 steps, 0.79 and 0.78 called with p >= 0.9 (docs/results.md, the
recipe table). Not tuned beyond the DDPM main job's rate, EMA and batch."""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")
    c.diffusion.update(process="flow", prediction="velocity", time_sampling="logit_normal")
    c.optim.update(lr=1e-3, warmup_steps=100, ema_decay=0.999)
    c.train.update(steps=8000, batch_size=16, log_every=100, sample_every=0, ckpt_every=2000)
    c.sample.update(sampler="heun", steps=10)
    return c
