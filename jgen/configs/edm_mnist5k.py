"""EDM on the offline digits (Karras et al. 2022): alpha = 1, ln sigma ~ N(-1.2, 1.2^2), the
preconditioned network F (c_skip, c_out, c_in, c_noise of Table 1, sigma_data = 0.5) with lambda(sigma)
weighting, on the DDPM main job's narrow U-Net, sampled by Heun (Algorithm 1) on the rho = 7 grid.
Measured with benchmarks/recipes.py on 2 cores (2026-12-06): 4.35x the floor at 8,000 steps, 0.64
called with p >= 0.9 (one seed; docs/results.md, the recipe table). Untuned: the DDPM main job's rate, EMA and
batch, sigma_data 0.5."""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")
    c.diffusion.update(process="edm", prediction="F", time_sampling="lognormal", loss_weight="edm")
    c.optim.update(lr=1e-3, warmup_steps=100, ema_decay=0.999)
    c.train.update(steps=8000, batch_size=16, log_every=100, sample_every=0, ckpt_every=2000)
    c.sample.update(sampler="heun", steps=10)
    return c
