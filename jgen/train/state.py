"""The one TrainState pytree every family trains, and the optimiser/EMA update they share."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue bit for bit: checkpointing this is checkpointing the run.

    `params`/`opt_state` may be dicts of several networks (a GAN's generator and discriminator);
    `model_state` holds non-trained variables such as BatchNorm statistics ({} when there are none);
    `rng` is the run's base key: step k uses fold_in(rng, k), so randomness is a function of the step.
    """
    step: jnp.ndarray
    params: Any
    opt_state: Any
    ema_params: Any
    model_state: Any
    rng: jnp.ndarray


def make_optimizer(optim) -> optax.GradientTransformation:
    """AdamW with linear warm-up to a constant rate and optional global-norm clipping.

    optim: lr, warmup_steps, b1, b2, eps, weight_decay, grad_clip (0 disables clipping).
    """
    lr = optim.lr
    if optim.warmup_steps > 0:
        lr = optax.join_schedules([optax.linear_schedule(0.0, optim.lr, optim.warmup_steps),
                                   optax.constant_schedule(optim.lr)], [optim.warmup_steps])
    parts = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip > 0 else []
    parts.append(optax.adamw(lr, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay))
    return optax.chain(*parts)


def ema_decay(decay: float, step):
    """The EMA rate at `step`: min(decay, (1 + step) / (10 + step)).

    The warm-up keeps the average from being dominated by the random initial weights in short runs,
    the same rule as TensorFlow's ExponentialMovingAverage with num_updates.
    """
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def update_ema(ema, params, decay):
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def apply_gradients(tx: optax.GradientTransformation, state: TrainState, grads, ema: float) -> TrainState:
    """One optimiser step plus the EMA update; the step counter advances by one."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema_params = update_ema(state.ema_params, params, ema_decay(ema, state.step))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema_params)
