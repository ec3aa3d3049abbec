"""Diffusion and flow models as a jgen family: a U-Net or a DiT trained on any process of
jgen.diffusion.process (DDPM's discrete levels, continuous VP, EDM, flow matching) with its prediction,
time sampling and loss weighting, and sampled with any of jgen's samplers.

config.condition.kind: none | class (num_classes, drop) | lowres (scale, drop). `drop` is the
fraction of training examples whose condition is replaced by the null one (label num_classes, or an
all-zero image), which teaches the same network the unconditional model too: classifier-free
guidance needs it, and it lets `jgen sample` and the evaluator draw from an SR3 run without a
low-resolution input.
"""

import jax
import jax.numpy as jnp

from jgen.diffusion import likelihood, samplers
from jgen.diffusion import process as P
from jgen.diffusion.guidance import classifier_free, downsample, upsample_bicubic
from jgen.diffusion.schedules import simple_loss
from jgen.families.base import Cond, compute_dtype, to_compute
from jgen.nn.dit import DiT
from jgen.nn.unet import UNet


def make_model(config):
    """The network of model.arch: the DDPM U-Net or a DiT, out_ch = the data's channels."""
    m, c = config.model, config.condition
    num_classes = c.num_classes if c.kind == "class" else 0
    if m.arch == "dit":
        return DiT(patch_size=m.patch_size, hidden=m.hidden, depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio,
                   out_ch=config.data.channels, num_classes=num_classes)
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                num_groups=m.num_groups, out_ch=config.data.channels, num_classes=num_classes)


def process(config):
    return P.from_config(config.diffusion)


def lowres_input(config, images):
    """SR3's conditioning image: box-downsampled by condition.scale, then bicubic-upsampled back."""
    s = config.condition.scale
    return upsample_bicubic(downsample(images, s), s)


def _apply(model, params, config, xt, level, cond, train=False, rngs=None):
    """The network on x_t at `level` [B] with its condition: cond is labels [B] (class), an image
    (lowres) or None. The process scales x and gives the network its time input (P.network_inputs)."""
    kind = config.condition.kind
    x, t = P.network_inputs(process(config), xt, level)
    if kind == "lowres":
        x = jnp.concatenate([x, cond.astype(x.dtype)], axis=-1)
    return model.apply({"params": params}, x, t, cond if kind == "class" else None, train=train, rngs=rngs)


def init(config, rng):
    size, channels, kind = config.data.image_size, config.data.channels, config.condition.kind
    x = jnp.zeros((1, size, size, channels * (2 if kind == "lowres" else 1)))
    y = jnp.zeros((1,), jnp.int32) if kind == "class" else None
    return make_model(config).init(rng, x, jnp.zeros((1,)), y)["params"], {}


def generator(params):
    return params


def prepare(config, batch, rng):
    """x_t at levels drawn by diffusion.time_sampling, the regression target of diffusion.prediction and
    the condition (null for a `drop` fraction) of every example of batch['image'] ([B, H, W, C] in
    [-1, 1])."""
    proc, c, d = process(config), config.condition, config.diffusion
    x0 = batch["image"]
    t_key, noise_key, cond_key = jax.random.split(rng, 3)
    t = P.sample_levels(proc, d, t_key, x0.shape[0])
    noise = jax.random.normal(noise_key, x0.shape, x0.dtype)
    inputs = {"xt": P.q_sample(proc, x0, t, noise), "t": t,
              "target": P.training_target(proc, d.prediction, x0, t, noise)}
    dropped = jax.random.uniform(cond_key, (x0.shape[0],)) < c.drop
    if c.kind == "class":
        inputs["cond"] = jnp.where(dropped, c.num_classes, batch["label"].astype(jnp.int32))
    elif c.kind == "lowres":
        inputs["cond"] = jnp.where(dropped[:, None, None, None], 0.0, lowres_input(config, x0))
    return inputs


def loss(config, params, inputs, rng, step):
    """The mean squared error of the network's prediction, each example weighted by
    diffusion.loss_weight (P.loss_weight: none, min-SNR, EDM's lambda, Kingma & Gao's sigmoid or ELBO)."""
    dtype, d = compute_dtype(config), config.diffusion
    out = _apply(make_model(config), to_compute(params, dtype), config, inputs["xt"].astype(dtype), inputs["t"],
                 inputs.get("cond"), train=True, rngs={"dropout": rng})
    weight = None if d.loss_weight == "none" else P.loss_weight(process(config), d, d.prediction, inputs["t"])
    return simple_loss(out.astype(jnp.float32), inputs["target"], weight), ()


def metrics(config, aux, step):
    return {}


def latent_shape(config):
    return (config.data.image_size, config.data.image_size, config.data.channels)


def denoiser(config, params, num: int, cond: Cond):
    """model_fn(x_t, t) -> (x0, eps) for the samplers, conditioning included: class-conditional runs
    mix the labels (default 0, 1, 2, ... cycling) with the null label at cond.guidance (default
    config.sample.guidance); SR3 runs use cond.lowres, or the null image (unconditional) without one."""
    proc, dtype, c = process(config), compute_dtype(config), config.condition
    model, params = make_model(config), to_compute(params, dtype)

    def model_fn(x, t, y=None):
        out = _apply(model, params, config, x.astype(dtype), t, y).astype(x.dtype)
        return P.to_x0_eps(proc, config.diffusion.prediction, x, t, out)

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
    """The levels config.sample's sampler visits, from `start` (default the top level) to the clean one."""
    s = config.sample
    return samplers.sampler_path(process(config), s.sampler, s.steps, start, s.grid)


def sample(config, variables, rng, num: int, cond: Cond = Cond()):
    """`num` images [num, H, W, C] in [-1, 1] (a latent run's latents, unclipped) with config.sample (sampler,
    steps, grid, eta, variance, churn), from noise or from cond.x_T at level cond.start, along cond.path if
    given, with cond.post."""
    s = config.sample
    model_fn = denoiser(config, variables["params"], num, cond)
    path = sampler_path(config, cond.start) if cond.path is None else cond.path
    x = samplers.sample(process(config), model_fn, (num,) + latent_shape(config), rng, s.sampler, path,
                        eta=s.eta, variance=s.variance, clip=s.clip, churn=s.churn, s_noise=s.s_noise,
                        s_tmin=s.churn_tmin, s_tmax=s.churn_tmax,
                        x_T=cond.x_T, post=cond.post)
    # images end in [-1, 1]; a latent run's latents (sample.clip=false) are not images and go on unclipped
    return jnp.clip(x, -1.0, 1.0) if s.clip else x


def decode(config, variables, z):
    """Deterministic DDIM (eta = 0) from the noise z [B, H, W, C]: the map that makes interpolating
    noise meaningful (Song et al. 2021, section 5.3)."""
    config = config.copy_and_resolve_references()
    config.sample.sampler, config.sample.eta = "ddim", 0.0
    x_T = z * P.prior_std(process(config), sampler_path(config)[0])  # EDM starts at sigma_max z
    return sample(config, variables, jax.random.PRNGKey(0), z.shape[0], Cond(x_T=x_T))


def nll(config, variables, x0, key, method: str = "ode", steps: int = 100, exact: bool = False):
    """Bits/dim per image [B] of 8-bit images x0 [B, H, W, C] in [-1, 1] (jgen.diffusion.likelihood):
    method 'vlb' (the variational bound, under config.sample's variance and clip) or 'ode' (the
    probability-flow ODE, `steps` RK4 steps, Hutchinson or `exact` divergence). A class-conditional run
    is scored by its unconditional model (guidance 0, the null label); an SR3 run by its null image."""
    proc = process(config)
    cond = Cond(guidance=0.0) if config.condition.kind == "class" else Cond()
    model_fn = denoiser(config, variables["params"], x0.shape[0], cond)
    if method == "vlb":
        return likelihood.vlb_bpd(proc, model_fn, x0, key, config.sample.variance, config.sample.clip)
    return likelihood.ode_bpd(proc, model_fn, x0, key, steps, exact)
