"""Samplers: DDPM ancestral (Ho et al. 2020, Algorithm 2), DDIM (Song et al. 2021, eq. 12), the EDM Heun
sampler (Karras et al. 2022, Algorithm 1) and DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2).

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

from jgen.diffusion.schedules import Schedule, abar_at, eps_from_x0, q_jump, q_posterior, reverse_log_variance
from jgen.errors import JgenError


def _prediction(sched: Schedule, model_fn, x, t, clip: bool):
    """(x0, eps) of the model at level t, x0 clipped to [-1, 1] (and eps made consistent) when asked."""
    tb = jnp.full((x.shape[0],), t, dtype=jnp.int32)
    x0, eps = model_fn(x, tb)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
        eps = eps_from_x0(sched, x, tb, x0)
    return x0, eps


def ddpm_step(sched: Schedule, model_fn, x, t: int, key, variance: str = "small", clip: bool = True):
    """One ancestral step x_t -> x_{t-1} at scalar timestep t (a traced int)."""
    tb = jnp.full((x.shape[0],), t, dtype=jnp.int32)
    x0, _ = model_fn(x, tb)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
    mean = q_posterior(sched, x0, x, tb)[0]
    log_var = reverse_log_variance(sched, variance)[t]
    noise = jax.random.normal(key, x.shape, x.dtype)
    return mean + jnp.where(t > 0, jnp.exp(0.5 * log_var), 0.0) * noise


def ddim_step(sched: Schedule, model_fn, x, t: int, t_prev: int, key, eta: float = 0.0, clip: bool = True):
    """x_t -> x_{t_prev} for any t_prev < t (eq. 12; t_prev = -1 gives the clean image)."""
    x0, eps = _prediction(sched, model_fn, x, t, clip)
    a_t, a_prev = abar_at(sched, t), abar_at(sched, t_prev)
    sigma = eta * jnp.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    noise = jax.random.normal(key, x.shape, x.dtype)
    return jnp.sqrt(a_prev) * x0 + jnp.sqrt(jnp.maximum(1 - a_prev - sigma ** 2, 0.0)) * eps + sigma * noise


def walk(sched: Schedule, down, x, path, key, post=None, memory=None):
    """Moves x along the levels in `path` (static ints): `down(x, t, t_next, key)` where the path
    descends, q_jump (fresh noise) where it climbs, then `post`. The i-th move uses fold_in(key, i).

    A multistep solver passes `memory` (a pytree of its past predictions, with a boolean `valid`) and a
    `down(x, t, t_next, key, memory) -> (x, memory)`; a climb (fresh noise) invalidates the memory."""
    path = np.asarray(path, np.int32)
    if len(path) < 2:
        return x
    climbs = bool(np.any(path[1:] > path[:-1]))
    step = down if memory is not None else (lambda x, t, tn, k, m: (down(x, t, tn, k), m))

    def jump(x, t, tn, k, m):
        return q_jump(sched, x, t, tn, k), None if m is None else dict(m, valid=jnp.zeros((), bool))

    def body(carry, move):
        x, m = carry
        i, t, tn = move
        k = jax.random.fold_in(key, i)
        if climbs:
            x, m = jax.lax.cond(tn < t, lambda xm: step(xm[0], t, tn, k, xm[1]),
                                lambda xm: jump(xm[0], t, tn, k, xm[1]), (x, m))
        else:
            x, m = step(x, t, tn, k, m)
        return ((x if post is None else post(x, tn, jax.random.fold_in(k, 1))), m), None

    moves = (np.arange(len(path) - 1, dtype=np.int32), path[:-1], path[1:])
    return jax.lax.scan(body, (x, memory), moves)[0][0]


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


SIGMA_MAX = 80.0  # EDM's highest noise level (Karras et al. 2022, Table 1); Heun corrects only below it


def heun_step(sched: Schedule, model_fn, x, t: int, t_prev: int, clip: bool = True):
    """x_t -> x_{t_prev} by Heun's method on the probability-flow ODE (EDM, Algorithm 1, no churn).

    In x~ = x / sqrt(abar) and sigma = sqrt((1 - abar) / abar) the ODE is dx~/dsigma = eps(x~, sigma): the
    Euler step is DDIM (eta = 0); Heun averages eps at both ends. The last step, to sigma = 0, stays
    Euler, as in the paper, and so does a step from above EDM's sigma_max = 80: a VP schedule's first
    level lies far higher (about 10^4 for the cosine schedule), where the average of two eps
    predictions, scaled by the whole sigma gap, is ill-conditioned (FID 3,254 against DDIM's 245 at 10
    steps on the offline run before this rule). One Euler step does not change the global order.
    Two model calls per step, one on an Euler step.
    """
    a_t, a_n = abar_at(sched, t), abar_at(sched, t_prev)
    s_t, s_n = jnp.sqrt((1 - a_t) / a_t), jnp.sqrt((1 - a_n) / a_n)
    xt = x / jnp.sqrt(a_t)
    _, eps = _prediction(sched, model_fn, x, t, clip)
    euler = xt + (s_n - s_t) * eps

    def corrected(_):
        _, eps_n = _prediction(sched, model_fn, euler * jnp.sqrt(a_n), jnp.maximum(t_prev, 0), clip)
        return xt + (s_n - s_t) * 0.5 * (eps + eps_n)
    return jax.lax.cond((t_prev >= 0) & (s_t <= SIGMA_MAX), corrected, lambda _: euler, None) * jnp.sqrt(a_n)


def dpmpp_2m_step(sched: Schedule, model_fn, x, t: int, t_prev: int, memory, clip: bool = True):
    """x_t -> x_{t_prev} by DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), the multistep data-prediction
    solver in lambda = log(alpha / sigma). memory: {'x0', 'h', 'valid'} of the previous step; the first
    step (or the first after a climb) and the last (sigma = 0, h infinite) are first order."""
    a_t, a_n = abar_at(sched, t), abar_at(sched, t_prev)
    alpha_t, sigma_t, alpha_n, sigma_n = jnp.sqrt(a_t), jnp.sqrt(1 - a_t), jnp.sqrt(a_n), jnp.sqrt(1 - a_n)
    x0, _ = _prediction(sched, model_fn, x, t, clip)
    last = t_prev < 0
    h = jnp.where(last, 1.0, jnp.log(alpha_n / jnp.maximum(sigma_n, 1e-20)) - jnp.log(alpha_t / sigma_t))
    r = memory["h"] / h
    second = memory["valid"] & ~last
    d = jnp.where(second, (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * memory["x0"], x0)
    x_n = jnp.where(last, x0, sigma_n / sigma_t * x - alpha_n * jnp.expm1(-h) * d)
    return x_n, {"x0": x0, "h": h, "valid": jnp.ones((), bool)}


def logsnr_path(alphas_cumprod: np.ndarray, steps: int, start=None) -> np.ndarray:
    """About `steps` levels from `start` (default T-1) down to 0, evenly spaced in lambda = log(alpha / sigma)
    (DPM-Solver's grid: a multistep solver needs steps of similar size in lambda, which DDIM's grid in t
    is not near t = 0), then -1. Levels are integers, so close lambdas near t = 0 may merge."""
    abar = np.asarray(alphas_cumprod, np.float64)  # NumPy: the path is static, fixed before tracing
    lam = 0.5 * np.log(abar / (1 - abar))  # decreasing in t
    start = len(abar) - 1 if start is None else start
    if start < 0:
        return np.array([-1], np.int32)
    targets = np.linspace(lam[start], lam[0], max(1, min(steps, start + 1)))
    levels = np.clip(np.searchsorted(-lam[: start + 1], -targets), 0, start)
    return np.append(np.unique(levels)[::-1], -1).astype(np.int32)


def sampler_path(sampler: str, alphas_cumprod: np.ndarray, steps: int, start=None) -> np.ndarray:
    """The levels `sampler` visits from `start` (default T-1) down to -1: every level for DDPM, the
    log-SNR grid for DPM-Solver++, DDIM's even grid in t for DDIM and Heun."""
    if sampler == "ddpm":
        return ddpm_path(len(alphas_cumprod), start)
    if sampler == "dpmpp2m":
        return logsnr_path(alphas_cumprod, steps, start)
    return ddim_path(len(alphas_cumprod), steps, start)


def ode_sample(sched: Schedule, model_fn, shape, key, solver: str, steps: int, clip: bool = True, x_T=None,
               path=None, post=None):
    """Deterministic sampling with `solver` ('heun' | 'dpmpp2m') over `steps` levels (or `path`, see
    sampler_path), from x_T ~ N(0, I) or the given x_T at level path[0]."""
    if path is None:  # read from the schedule: outside jit only (in it, pass `path`)
        path = sampler_path(solver, np.asarray(sched.alphas_cumprod), steps)
    key, init_key = jax.random.split(key)
    x = jax.random.normal(init_key, shape) if x_T is None else x_T
    if solver == "heun":
        return walk(sched, lambda x, t, tn, k: heun_step(sched, model_fn, x, t, tn, clip), x, path, key, post)
    if solver == "dpmpp2m":
        memory = {"x0": jnp.zeros(shape, x.dtype), "h": jnp.ones(()), "valid": jnp.zeros((), bool)}
        down = lambda x, t, tn, k, m: dpmpp_2m_step(sched, model_fn, x, t, tn, m, clip)
        return walk(sched, down, x, path, key, post, memory)
    raise JgenError(f"unknown ODE solver '{solver}' (heun | dpmpp2m)")
