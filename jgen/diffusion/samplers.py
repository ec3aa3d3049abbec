"""Samplers: DDPM ancestral (Ho et al. 2020, Algorithm 2) and DDIM (Song et al. 2021, eq. 12).

A sampler sees only `model_fn(x_t, t) -> (x0, eps)`: it never knows which network, parametrisation
or guidance produced the prediction, so guidance wraps `model_fn` instead of copying a sampler.

Both samplers walk a `path` of noise levels, one `lax.scan`, so each jits to a single loop. Level t
is the noise of x_t (alphas_cumprod[t]); level -1 is the clean image. A path normally descends from
T-1 to -1; guidance changes it (SDEdit starts lower; RePaint climbs back up, through q_jump) and may
pass `post(x, level, key) -> x`, applied to every new x (inpainting pastes known pixels there, ILVR
its low-pass constraint).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion.schedules import Schedule, abar_at, eps_from_x0, q_jump, q_posterior
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


def ddim_step(sched: Schedule, model_fn, x, t: int, t_prev: int, key, eta: float = 0.0, clip: bool = True):
    """x_t -> x_{t_prev} for any t_prev < t (eq. 12; t_prev = -1 gives the clean image)."""
    tb = jnp.full((x.shape[0],), t, dtype=jnp.int32)
    x0, eps = model_fn(x, tb)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
        eps = eps_from_x0(sched, x, tb, x0)
    a_t, a_prev = abar_at(sched, t), abar_at(sched, t_prev)
    sigma = eta * jnp.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    noise = jax.random.normal(key, x.shape, x.dtype)
    return jnp.sqrt(a_prev) * x0 + jnp.sqrt(jnp.maximum(1 - a_prev - sigma ** 2, 0.0)) * eps + sigma * noise


def walk(sched: Schedule, down, x, path, key, post=None):
    """Moves x along the levels in `path` (static ints): `down(x, t, t_next, key)` where the path
    descends, q_jump (fresh noise) where it climbs, then `post`. The i-th move uses fold_in(key, i)."""
    path = np.asarray(path, np.int32)
    if len(path) < 2:
        return x
    climbs = bool(np.any(path[1:] > path[:-1]))

    def body(x, move):
        i, t, tn = move
        k = jax.random.fold_in(key, i)
        if climbs:
            x = jax.lax.cond(tn < t, lambda x: down(x, t, tn, k), lambda x: q_jump(sched, x, t, tn, k), x)
        else:
            x = down(x, t, tn, k)
        return (x if post is None else post(x, tn, jax.random.fold_in(k, 1))), None

    moves = (np.arange(len(path) - 1, dtype=np.int32), path[:-1], path[1:])
    return jax.lax.scan(body, x, moves)[0]


def ddpm_path(num_timesteps: int, start=None) -> np.ndarray:
    """Every level from `start` (default T-1) down to -1."""
    start = num_timesteps - 1 if start is None else start
    return np.arange(start, -2, -1, dtype=np.int32)


def ddpm_sample(sched: Schedule, model_fn, shape, key, variance: str = "small", clip: bool = True, x_T=None,
                path=None, post=None):
    """Ancestral sampling from x_T ~ N(0, I) (or the given x_T, at level path[0]); returns x_0 of `shape`.
    A path of single steps; where it climbs, x is re-noised (RePaint)."""
    path = ddpm_path(sched.num_timesteps) if path is None else np.asarray(path)
    if np.any(path[:-1] - path[1:] > 1):
        raise JgenError("the DDPM sampler steps one level at a time; use DDIM for a strided path")
    key, init_key = jax.random.split(key)
    down = lambda x, t, tn, k: ddpm_step(sched, model_fn, x, t, k, variance, clip)
    return walk(sched, down, jax.random.normal(init_key, shape) if x_T is None else x_T, path, key, post)


def ddim_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
    """`steps` evenly spaced timesteps in [0, T-1], ascending, always including both ends."""
    if not 1 <= steps <= num_timesteps:
        raise JgenError(f"DDIM steps must be in [1, {num_timesteps}], got {steps}")
    return np.unique(np.round(np.linspace(0, num_timesteps - 1, steps)).astype(np.int32))


def ddim_path(num_timesteps: int, steps: int, start=None) -> np.ndarray:
    """DDIM's grid, descending, ending at -1. From a lower `start` level (SDEdit) the grid keeps its
    spacing: about steps * (start + 1) / T model calls."""
    if start is None:
        return np.append(ddim_timesteps(num_timesteps, steps)[::-1], -1).astype(np.int32)
    if start < 0:
        return np.array([-1], np.int32)
    n = min(start + 1, max(1, round(steps * (start + 1) / num_timesteps)))
    return np.append(np.unique(np.round(np.linspace(start, 0, n)))[::-1], -1).astype(np.int32)


def ddim_sample(sched: Schedule, model_fn, shape, key, steps: int = 50, eta: float = 0.0, clip: bool = True,
                x_T=None, path=None, post=None):
    """DDIM with `steps` model calls from x_T ~ N(0, I) (or the given x_T, at level path[0]); eta=0 is
    deterministic, eta=1 matches DDPM's posterior variance."""
    path = ddim_path(sched.num_timesteps, steps) if path is None else path
    key, init_key = jax.random.split(key)
    down = lambda x, t, tn, k: ddim_step(sched, model_fn, x, t, tn, k, eta, clip)
    return walk(sched, down, jax.random.normal(init_key, shape) if x_T is None else x_T, path, key, post)
