"""DDPM as a jgen family: the U-Net trained with L_simple, sampled with DDPM or DDIM.

The trainer calls `init`, `train_step` and `sample`; `jgen interpolate` calls `latent_shape` and `decode`.
"""

import jax
import jax.numpy as jnp
import optax

from jgen.diffusion import samplers
from jgen.diffusion.schedules import q_sample, schedule_from_config, simple_loss, to_x0_eps, training_target
from jgen.errors import JgenError
from jgen.nn.unet import UNet
from jgen.train.state import (TrainState, accumulated_grad, apply_gradients, compute_dtype, make_optimizer,
                              to_compute)


def make_model(config) -> UNet:
    m = config.model
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                num_groups=m.num_groups, out_ch=config.data.channels)


def init(config, rng) -> TrainState:
    """Fresh parameters, optimiser state and EMA (= params) for config.model."""
    init_key, run_key = jax.random.split(rng)
    size, channels = config.data.image_size, config.data.channels
    params = make_model(config).init(init_key, jnp.zeros((1, size, size, channels)), jnp.zeros((1,)))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=make_optimizer(config.optim).init(params), ema_params=params,
                      model_state={}, rng=run_key)


def train_step(config, state: TrainState, batch):
    """One step of L_simple on batch['image'] ([B, H, W, C] in [-1, 1]); t ~ U{0..T-1}.

    t and the noise are drawn for the whole batch before it is split into train.grad_accum
    micro-batches, so accumulation changes memory, not the result (dropout masks aside).
    """
    sched = schedule_from_config(config.diffusion)
    model = make_model(config)
    dtype = compute_dtype(config)
    x0 = batch["image"]
    t_key, noise_key, dropout_key = jax.random.split(jax.random.fold_in(state.rng, state.step), 3)
    t = jax.random.randint(t_key, (x0.shape[0],), 0, sched.num_timesteps)
    noise = jax.random.normal(noise_key, x0.shape, x0.dtype)
    inputs = {"xt": q_sample(sched, x0, t, noise), "t": t,
              "target": training_target(sched, config.diffusion.prediction, x0, t, noise)}

    def loss_fn(params, micro, j):
        out = model.apply({"params": to_compute(params, dtype)}, micro["xt"].astype(dtype), micro["t"],
                          train=True, rngs={"dropout": jax.random.fold_in(dropout_key, j)})
        return simple_loss(out.astype(jnp.float32), micro["target"]), ()

    (loss, _), grads = accumulated_grad(loss_fn, state.params, inputs, config.train.get("grad_accum", 1))
    state = apply_gradients(make_optimizer(config.optim), state, grads, config.optim.ema_decay)
    return state, {"loss": loss, "grad_norm": optax.global_norm(grads)}


def latent_shape(config):
    return (config.data.image_size, config.data.image_size, config.data.channels)


def sample(config, state: TrainState, rng, num: int, ema: bool = True, x_T=None):
    """`num` images [num, H, W, C] in [-1, 1] with config.sample (sampler, steps, eta, variance).

    x_T: optional starting noise [num, H, W, C] (default drawn from `rng`).
    """
    sched = schedule_from_config(config.diffusion)
    model = make_model(config)
    dtype = compute_dtype(config)
    params = to_compute(state.ema_params if ema else state.params, dtype)
    shape = (num,) + latent_shape(config)

    def model_fn(x, t):
        out = model.apply({"params": params}, x.astype(dtype), t).astype(x.dtype)
        return to_x0_eps(sched, config.diffusion.prediction, x, t, out)

    s = config.sample
    if s.sampler == "ddpm":
        x = samplers.ddpm_sample(sched, model_fn, shape, rng, variance=s.variance, clip=s.clip, x_T=x_T)
    elif s.sampler == "ddim":
        x = samplers.ddim_sample(sched, model_fn, shape, rng, steps=s.steps, eta=s.eta, clip=s.clip, x_T=x_T)
    else:
        raise JgenError(f"unknown sampler '{s.sampler}' (ddpm | ddim)")
    return jnp.clip(x, -1.0, 1.0)


def decode(config, state: TrainState, z, ema: bool = True):
    """Deterministic DDIM (eta = 0) from the noise z [B, H, W, C]: the map that makes interpolating
    noise meaningful (Song et al. 2021, section 5.3)."""
    config = config.copy_and_resolve_references()
    config.sample.sampler, config.sample.eta = "ddim", 0.0
    return sample(config, state, jax.random.PRNGKey(0), z.shape[0], ema, x_T=z)
