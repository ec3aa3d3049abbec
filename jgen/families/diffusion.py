"""DDPM as a jgen family: the U-Net trained with L_simple, sampled with DDPM or DDIM.

The trainer calls `init`, `train_step` and `sample`; `jgen interpolate` calls `latent_shape` and `decode`.
"""

import jax
import jax.numpy as jnp
import optax

from jgen.diffusion import samplers
from jgen.diffusion.guidance import classifier_free, downsample, upsample_bicubic
from jgen.diffusion.schedules import q_sample, schedule_from_config, simple_loss, to_x0_eps, training_target
from jgen.errors import JgenError
from jgen.nn.unet import UNet
from jgen.train.state import (TrainState, accumulated_grad, apply_gradients, compute_dtype, make_optimizer,
                              to_compute)


def conditioning(config):
    """config.condition: kind none | class (num_classes, drop) | lowres (scale, drop); runs without the
    key are unconditional. `drop` is the fraction of training examples whose condition is replaced by
    the null one (label num_classes, or an all-zero image), which teaches the same network the
    unconditional model too: classifier-free guidance needs it, and it lets `jgen sample` and the
    evaluator draw from an SR3 run without a low-resolution input."""
    c = config.get("condition", None)
    kind = "none" if c is None else c.kind
    if kind not in ("none", "class", "lowres"):
        raise JgenError(f"unknown condition.kind '{kind}' (none | class | lowres)")
    return kind, c


def make_model(config) -> UNet:
    m = config.model
    kind, c = conditioning(config)
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                num_groups=m.num_groups, out_ch=config.data.channels,
                num_classes=c.num_classes if kind == "class" else 0)


def lowres_input(config, images):
    """SR3's conditioning image: box-downsampled by condition.scale, then bicubic-upsampled back."""
    s = config.condition.scale
    return upsample_bicubic(downsample(images, s), s)


def _apply(model, params, config, xt, t, cond, train=False, rngs=None):
    """The network on x_t with its condition: cond is labels [B] (class), an image (lowres) or None."""
    kind, _ = conditioning(config)
    if kind == "lowres":
        xt = jnp.concatenate([xt, cond.astype(xt.dtype)], axis=-1)
    return model.apply({"params": params}, xt, t, cond if kind == "class" else None, train=train, rngs=rngs)


def init(config, rng) -> TrainState:
    """Fresh parameters, optimiser state and EMA (= params) for config.model."""
    init_key, run_key = jax.random.split(rng)
    size, channels = config.data.image_size, config.data.channels
    kind, _ = conditioning(config)
    x = jnp.zeros((1, size, size, channels * (2 if kind == "lowres" else 1)))
    y = jnp.zeros((1,), jnp.int32) if kind == "class" else None
    params = make_model(config).init(init_key, x, jnp.zeros((1,)), y)["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=make_optimizer(config.optim).init(params), ema_params=params,
                      model_state={}, rng=run_key)


def _training_condition(config, batch, key):
    """The condition of each training example, the null one for a `drop` fraction: {} | {'cond': ...}."""
    kind, c = conditioning(config)
    if kind == "none":
        return {}
    n = batch["image"].shape[0]
    dropped = jax.random.uniform(key, (n,)) < c.drop
    if kind == "class":
        return {"cond": jnp.where(dropped, c.num_classes, batch["label"].astype(jnp.int32))}
    return {"cond": jnp.where(dropped[:, None, None, None], 0.0, lowres_input(config, batch["image"]))}


def train_step(config, state: TrainState, batch):
    """One step of L_simple on batch['image'] ([B, H, W, C] in [-1, 1]); t ~ U{0..T-1}.

    t and the noise are drawn for the whole batch before it is split into train.grad_accum
    micro-batches, so accumulation changes memory, not the result (dropout masks aside).
    """
    sched = schedule_from_config(config.diffusion)
    model = make_model(config)
    dtype = compute_dtype(config)
    x0 = batch["image"]
    t_key, noise_key, dropout_key, cond_key = jax.random.split(jax.random.fold_in(state.rng, state.step), 4)
    t = jax.random.randint(t_key, (x0.shape[0],), 0, sched.num_timesteps)
    noise = jax.random.normal(noise_key, x0.shape, x0.dtype)
    inputs = {"xt": q_sample(sched, x0, t, noise), "t": t,
              "target": training_target(sched, config.diffusion.prediction, x0, t, noise),
              **_training_condition(config, batch, cond_key)}

    def loss_fn(params, micro, j):
        out = _apply(model, to_compute(params, dtype), config, micro["xt"].astype(dtype), micro["t"],
                     micro.get("cond"), train=True, rngs={"dropout": jax.random.fold_in(dropout_key, j)})
        return simple_loss(out.astype(jnp.float32), micro["target"]), ()

    (loss, _), grads = accumulated_grad(loss_fn, state.params, inputs, config.train.get("grad_accum", 1))
    state = apply_gradients(make_optimizer(config.optim), state, grads, config.optim.ema_decay)
    return state, {"loss": loss, "grad_norm": optax.global_norm(grads)}


def latent_shape(config):
    return (config.data.image_size, config.data.image_size, config.data.channels)


def denoiser(config, state: TrainState, num: int, ema: bool = True, labels=None, guidance=None, lowres=None):
    """model_fn(x_t, t) -> (x0, eps) for the samplers, conditioning included.

    Class-conditional runs: labels [num] (default 0, 1, 2, ... cycling over the classes) and
    classifier-free guidance at `guidance` (default config.sample.guidance). SR3 runs: lowres
    [num, H/s, W/s, C] in [-1, 1], or None for the unconditional model. Others ignore both.
    """
    sched = schedule_from_config(config.diffusion)
    model = make_model(config)
    dtype = compute_dtype(config)
    params = to_compute(state.ema_params if ema else state.params, dtype)
    kind, c = conditioning(config)

    def model_fn(x, t, cond=None):
        out = _apply(model, params, config, x.astype(dtype), t, cond).astype(x.dtype)
        return to_x0_eps(sched, config.diffusion.prediction, x, t, out)

    if kind == "class":
        labels = jnp.arange(num) % c.num_classes if labels is None else jnp.asarray(labels, jnp.int32)
        scale = config.sample.get("guidance", 1.0) if guidance is None else guidance
        return classifier_free(model_fn, labels, c.num_classes, scale)
    if kind == "lowres":
        size = latent_shape(config)
        cond = jnp.zeros((num,) + size) if lowres is None else upsample_bicubic(lowres, c.scale)
        return lambda x, t: model_fn(x, t, cond)
    return model_fn


def sampler_path(config, start=None):
    """The noise levels config.sample's sampler visits, from `start` (default T-1) down to -1."""
    T, s = config.diffusion.timesteps, config.sample
    if s.sampler not in ("ddpm", "ddim"):
        raise JgenError(f"unknown sampler '{s.sampler}' (ddpm | ddim)")
    return samplers.ddpm_path(T, start) if s.sampler == "ddpm" else samplers.ddim_path(T, s.steps, start)


def sample(config, state: TrainState, rng, num: int, ema: bool = True, x_T=None, labels=None, guidance=None,
           lowres=None, start=None, post=None, path=None):
    """`num` images [num, H, W, C] in [-1, 1] with config.sample (sampler, steps, eta, variance).

    x_T: optional starting point [num, H, W, C] (default noise from `rng`) at level `start` (default T-1);
    labels, guidance, lowres: see `denoiser`; post, path: guidance (jgen.diffusion.guidance), with
    path replacing `sampler_path(config, start)`.
    """
    sched = schedule_from_config(config.diffusion)
    model_fn = denoiser(config, state, num, ema, labels, guidance, lowres)
    shape = (num,) + latent_shape(config)
    path = sampler_path(config, start) if path is None else path
    s = config.sample
    if s.sampler == "ddpm":
        x = samplers.ddpm_sample(sched, model_fn, shape, rng, s.variance, s.clip, x_T, path, post)
    else:
        x = samplers.ddim_sample(sched, model_fn, shape, rng, s.steps, s.eta, s.clip, x_T, path, post)
    return jnp.clip(x, -1.0, 1.0)


def decode(config, state: TrainState, z, ema: bool = True):
    """Deterministic DDIM (eta = 0) from the noise z [B, H, W, C]: the map that makes interpolating
    noise meaningful (Song et al. 2021, section 5.3)."""
    config = config.copy_and_resolve_references()
    config.sample.sampler, config.sample.eta = "ddim", 0.0
    return sample(config, state, jax.random.PRNGKey(0), z.shape[0], ema, x_T=z)
