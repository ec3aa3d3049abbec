"""DDPM as a jgen family: the U-Net trained with L_simple (optionally min-SNR weighted), sampled with any
of jgen's samplers.

config.condition.kind: none | class (num_classes, drop) | lowres (scale, drop). `drop` is the
fraction of training examples whose condition is replaced by the null one (label num_classes, or an
all-zero image), which teaches the same network the unconditional model too: classifier-free
guidance needs it, and it lets `jgen sample` and the evaluator draw from an SR3 run without a
low-resolution input.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import likelihood, samplers
from jgen.diffusion.guidance import classifier_free, downsample, upsample_bicubic
from jgen.diffusion.schedules import (betas_from_config, min_snr_weight, q_sample, schedule_from_config,
                                     simple_loss, to_x0_eps, training_target)
from jgen.families.base import Cond, compute_dtype, to_compute
from jgen.nn.unet import UNet


def make_model(config) -> UNet:
    m, c = config.model, config.condition
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                num_groups=m.num_groups, out_ch=config.data.channels,
                num_classes=c.num_classes if c.kind == "class" else 0)


def lowres_input(config, images):
    """SR3's conditioning image: box-downsampled by condition.scale, then bicubic-upsampled back."""
    s = config.condition.scale
    return upsample_bicubic(downsample(images, s), s)


def _apply(model, params, config, xt, t, cond, train=False, rngs=None):
    """The network on x_t with its condition: cond is labels [B] (class), an image (lowres) or None."""
    kind = config.condition.kind
    if kind == "lowres":
        xt = jnp.concatenate([xt, cond.astype(xt.dtype)], axis=-1)
    return model.apply({"params": params}, xt, t, cond if kind == "class" else None, train=train, rngs=rngs)


def init(config, rng):
    size, channels, kind = config.data.image_size, config.data.channels, config.condition.kind
    x = jnp.zeros((1, size, size, channels * (2 if kind == "lowres" else 1)))
    y = jnp.zeros((1,), jnp.int32) if kind == "class" else None
    return make_model(config).init(rng, x, jnp.zeros((1,)), y)["params"], {}


def generator(params):
    return params


def prepare(config, batch, rng):
    """x_t, t ~ U{0..T-1}, the regression target and the condition (null for a `drop` fraction) of
    every example of batch['image'] ([B, H, W, C] in [-1, 1])."""
    sched, c = schedule_from_config(config.diffusion), config.condition
    x0 = batch["image"]
    t_key, noise_key, cond_key = jax.random.split(rng, 3)
    t = jax.random.randint(t_key, (x0.shape[0],), 0, sched.num_timesteps)
    noise = jax.random.normal(noise_key, x0.shape, x0.dtype)
    inputs = {"xt": q_sample(sched, x0, t, noise), "t": t,
              "target": training_target(sched, config.diffusion.prediction, x0, t, noise)}
    dropped = jax.random.uniform(cond_key, (x0.shape[0],)) < c.drop
    if c.kind == "class":
        inputs["cond"] = jnp.where(dropped, c.num_classes, batch["label"].astype(jnp.int32))
    elif c.kind == "lowres":
        inputs["cond"] = jnp.where(dropped[:, None, None, None], 0.0, lowres_input(config, x0))
    return inputs


def loss(config, params, inputs, rng, step):
    """L_simple: the mean squared error of the network's prediction (eps, x0 or v), each timestep's
    weighted by min-SNR when diffusion.loss_weight=min_snr."""
    dtype, d = compute_dtype(config), config.diffusion
    out = _apply(make_model(config), to_compute(params, dtype), config, inputs["xt"].astype(dtype), inputs["t"],
                 inputs.get("cond"), train=True, rngs={"dropout": rng})
    weight = None
    if d.loss_weight == "min_snr":
        weight = min_snr_weight(schedule_from_config(d), d.prediction, inputs["t"], d.min_snr_gamma)
    return simple_loss(out.astype(jnp.float32), inputs["target"], weight), ()


def metrics(config, aux, step):
    return {}


def latent_shape(config):
    return (config.data.image_size, config.data.image_size, config.data.channels)


def denoiser(config, params, num: int, cond: Cond):
    """model_fn(x_t, t) -> (x0, eps) for the samplers, conditioning included: class-conditional runs
    mix the labels (default 0, 1, 2, ... cycling) with the null label at cond.guidance (default
    config.sample.guidance); SR3 runs use cond.lowres, or the null image (unconditional) without one."""
    sched, dtype, c = schedule_from_config(config.diffusion), compute_dtype(config), config.condition
    model, params = make_model(config), to_compute(params, dtype)

    def model_fn(x, t, y=None):
        out = _apply(model, params, config, x.astype(dtype), t, y).astype(x.dtype)
        return to_x0_eps(sched, config.diffusion.prediction, x, t, out)

    if c.kind == "class":
        labels = jnp.arange(num) % c.num_classes if cond.labels is None else jnp.asarray(cond.labels, jnp.int32)
        scale = config.sample.guidance if cond.guidance is None else cond.guidance
        return classifier_free(model_fn, labels, c.num_classes, scale)
    if c.kind == "lowres":
        low = jnp.zeros((num,) + latent_shape(config)) if cond.lowres is None else upsample_bicubic(cond.lowres,
                                                                                                   c.scale)
        return lambda x, t: model_fn(x, t, low)
    return model_fn


def sampler_path(config, start=None):
    """The noise levels config.sample's sampler visits, from `start` (default T-1) down to -1."""
    s = config.sample
    return samplers.sampler_path(s.sampler, np.cumprod(1 - betas_from_config(config.diffusion)), s.steps, start)


def sample(config, variables, rng, num: int, cond: Cond = Cond()):
    """`num` images [num, H, W, C] in [-1, 1] with config.sample (sampler, steps, eta, variance),
    from noise or from cond.x_T at level cond.start, along cond.path if given, with cond.post."""
    sched, s = schedule_from_config(config.diffusion), config.sample
    model_fn = denoiser(config, variables["params"], num, cond)
    shape = (num,) + latent_shape(config)
    path = sampler_path(config, cond.start) if cond.path is None else cond.path
    if s.sampler == "ddpm":
        x = samplers.ddpm_sample(sched, model_fn, shape, rng, s.variance, s.clip, cond.x_T, path, cond.post)
    elif s.sampler in ("heun", "dpmpp2m"):
        x = samplers.ode_sample(sched, model_fn, shape, rng, s.sampler, s.steps, s.clip, cond.x_T, path, cond.post)
    else:
        x = samplers.ddim_sample(sched, model_fn, shape, rng, s.steps, s.eta, s.clip, cond.x_T, path, cond.post)
    return jnp.clip(x, -1.0, 1.0)


def decode(config, variables, z):
    """Deterministic DDIM (eta = 0) from the noise z [B, H, W, C]: the map that makes interpolating
    noise meaningful (Song et al. 2021, section 5.3)."""
    config = config.copy_and_resolve_references()
    config.sample.sampler, config.sample.eta = "ddim", 0.0
    return sample(config, variables, jax.random.PRNGKey(0), z.shape[0], Cond(x_T=z))


def nll(config, variables, x0, key, method: str = "ode", steps: int = 100, exact: bool = False):
    """Bits/dim per image [B] of 8-bit images x0 [B, H, W, C] in [-1, 1] (jgen.diffusion.likelihood):
    method 'vlb' (the variational bound, under config.sample's variance and clip) or 'ode' (the
    probability-flow ODE, `steps` RK4 steps, Hutchinson or `exact` divergence). A class-conditional run
    is scored by its unconditional model (guidance 0, the null label); an SR3 run by its null image."""
    sched = schedule_from_config(config.diffusion)
    cond = Cond(guidance=0.0) if config.condition.kind == "class" else Cond()
    model_fn = denoiser(config, variables["params"], x0.shape[0], cond)
    if method == "vlb":
        return likelihood.vlb_bpd(sched, model_fn, x0, key, config.sample.variance, config.sample.clip)
    return likelihood.ode_bpd(sched, model_fn, x0, key, steps, exact)
