"""Samplers: DDPM ancestral (Ho et al. 2020, Algorithm 2) and DDIM (Song et al. 2021, eq. 12).

A sampler sees only `model_fn(x_t, t) -> (x0, eps)`: it never knows which network, parametrisation
or guidance produced the prediction, so guidance wraps `model_fn` instead of copying a sampler.
Each sampler is one `lax.scan` over timesteps, so it jits to a single loop.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.schedules import Schedule, eps_from_x0, q_posterior
from jgen.errors import JgenError


def ddpm_step(sched: Schedule, model_fn, x, t: int, key, variance: str = "small", clip: bool = True):
    """One ancestral step x_t -> x_{t-1} at scalar timestep t (a traced int)."""
    tb = jnp.full((x.shape[0],), t, dtype=jnp.int32)
    x0, _ = model_fn(x, tb)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
    mean, _, log_var = q_posterior(sched, x0, x, tb)
    if variance == "large":
        # sigma_t^2 = beta_t, with the t=0 entry replaced so the log stays finite (as in the paper's code).
        log_var = jnp.log(jnp.append(sched.posterior_variance[1], sched.betas[1:]))[t]
    elif variance != "small":
        raise JgenError(f"unknown variance '{variance}' (small | large)")
    noise = jax.random.normal(key, x.shape, x.dtype)
    return mean + jnp.where(t > 0, jnp.exp(0.5 * log_var), 0.0) * noise


def ddpm_sample(sched: Schedule, model_fn, shape, key, variance: str = "small", clip: bool = True, x_T=None):
    """Runs all T ancestral steps from x_T ~ N(0, I) (or the given x_T); returns x_0 of `shape`."""
    key, init_key = jax.random.split(key)
    ts = jnp.arange(sched.num_timesteps - 1, -1, -1)

    def body(x, t):
        return ddpm_step(sched, model_fn, x, t, jax.random.fold_in(key, t), variance, clip), None

    x, _ = jax.lax.scan(body, jax.random.normal(init_key, shape) if x_T is None else x_T, ts)
    return x


def ddim_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
    """`steps` evenly spaced timesteps in [0, T-1], ascending, always including both ends."""
    if not 1 <= steps <= num_timesteps:
        raise JgenError(f"DDIM steps must be in [1, {num_timesteps}], got {steps}")
    return np.unique(np.round(np.linspace(0, num_timesteps - 1, steps)).astype(np.int32))


def ddim_sample(sched: Schedule, model_fn, shape, key, steps: int = 50, eta: float = 0.0, clip: bool = True,
                x_T=None):
    """DDIM with `steps` model calls from x_T ~ N(0, I) (or the given x_T); eta=0 is deterministic,
    eta=1 matches DDPM's posterior variance."""
    ts = ddim_timesteps(sched.num_timesteps, steps)
    t_prev = np.append(-1, ts[:-1])
    key, init_key = jax.random.split(key)
    abar = sched.alphas_cumprod

    def body(x, tt):
        t, tp = tt
        tb = jnp.full((x.shape[0],), t, dtype=jnp.int32)
        x0, eps = model_fn(x, tb)
        if clip:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = eps_from_x0(sched, x, tb, x0)
        a_t = abar[t]
        a_prev = jnp.where(tp >= 0, abar[jnp.maximum(tp, 0)], 1.0)
        sigma = eta * jnp.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        noise = jax.random.normal(jax.random.fold_in(key, t), x.shape, x.dtype)
        x = jnp.sqrt(a_prev) * x0 + jnp.sqrt(jnp.maximum(1 - a_prev - sigma ** 2, 0.0)) * eps + sigma * noise
        return x, None

    x_start = jax.random.normal(init_key, shape) if x_T is None else x_T
    x, _ = jax.lax.scan(body, x_start, (ts[::-1], t_prev[::-1]))
    return x
