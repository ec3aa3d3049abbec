"""Noise schedules and the closed-form Gaussian algebra of DDPM (Ho et al. 2020, section 2).

Every table is computed once in float64 NumPy and stored as float32; the functions below only
gather from the tables, so the same code serves training, every sampler and guidance.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from jgen.errors import JgenError


class Schedule(NamedTuple):
    """Per-timestep tables, each [T]: everything the forward process and its posterior need."""
    betas: jnp.ndarray
    alphas_cumprod: jnp.ndarray
    alphas_cumprod_prev: jnp.ndarray
    sqrt_alphas_cumprod: jnp.ndarray
    sqrt_one_minus_alphas_cumprod: jnp.ndarray
    posterior_variance: jnp.ndarray
    posterior_log_variance_clipped: jnp.ndarray
    posterior_mean_coef1: jnp.ndarray
    posterior_mean_coef2: jnp.ndarray
    abar64: np.ndarray  # alphas_cumprod in float64 NumPy: static, for the samplers' paths (fixed before tracing)

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """Ho et al.'s schedule, written for T=1000; other T keep the same endpoints."""
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2)."""
    f = lambda t: np.cos((t / num_timesteps + s) / (1 + s) * np.pi / 2) ** 2
    t = np.arange(num_timesteps, dtype=np.float64)
    return np.minimum(1 - f(t + 1) / f(t), max_beta)


def make_schedule(betas: np.ndarray) -> Schedule:
    betas = np.asarray(betas, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - betas)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    tables = dict(
        betas=betas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_alphas_cumprod=np.sqrt(alphas_cumprod),
        sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - alphas_cumprod),
        posterior_variance=posterior_variance,
        # Variance is 0 at t=0; the log is clipped to the t=1 value as in the reference code.
        posterior_log_variance_clipped=np.log(np.append(posterior_variance[1], posterior_variance[1:])),
        posterior_mean_coef1=betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
        posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * np.sqrt(1.0 - betas) / (1.0 - alphas_cumprod),
    )
    return Schedule(**{k: jnp.asarray(v, dtype=jnp.float32) for k, v in tables.items()}, abar64=alphas_cumprod)


def betas_from_config(config) -> np.ndarray:
    """config.diffusion: schedule ('linear' | 'cosine'), timesteps, beta_start, beta_end -> float64 betas."""
    if config.schedule == "linear":
        return linear_betas(config.timesteps, config.beta_start, config.beta_end)
    if config.schedule == "cosine":
        return cosine_betas(config.timesteps)
    raise JgenError(f"unknown schedule '{config.schedule}' (linear | cosine)")


def schedule_from_config(config) -> Schedule:
    return make_schedule(betas_from_config(config))


def _at(table, t, x):
    """table[t] shaped to broadcast against images x: [B] -> [B, 1, 1, 1]."""
    return table[t].reshape((-1,) + (1,) * (x.ndim - 1))


def q_posterior(sched: Schedule, x0, xt, t):
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)  (eqs. 6-7)."""
    mean = _at(sched.posterior_mean_coef1, t, xt) * x0 + _at(sched.posterior_mean_coef2, t, xt) * xt
    return mean, _at(sched.posterior_variance, t, xt), _at(sched.posterior_log_variance_clipped, t, xt)


def reverse_log_variance(sched: Schedule, variance: str):
    """[T] log sigma_t^2 of the reverse process p(x_{t-1} | x_t): the posterior's variance ('small') or
    beta_t ('large'), with the t = 0 entry replaced by the t = 1 posterior variance so the log stays finite
    (as in the paper's code). The DDPM sampler and the variational bound both use it."""
    if variance == "small":
        return sched.posterior_log_variance_clipped
    if variance == "large":
        return jnp.log(jnp.append(sched.posterior_variance[1], sched.betas[1:]))
    raise JgenError(f"unknown variance '{variance}' (small | large)")


def log_snr(sched: Schedule, t):
    """lambda(t) = log(abar_t / (1 - abar_t)) at integer or fractional levels t in [0, T-1]: the tables'
    values at integers, linear in between. The probability-flow ODE (jgen.diffusion.likelihood) runs
    through continuous t; interpolating lambda keeps both abar = sigmoid(lambda) and 1 - abar =
    sigmoid(-lambda) accurate where either is near 0."""
    table = 2 * (jnp.log(sched.sqrt_alphas_cumprod) - jnp.log(sched.sqrt_one_minus_alphas_cumprod))
    return jnp.interp(t, jnp.arange(sched.num_timesteps, dtype=jnp.float32), table)


def simple_loss(out, target, weight=None):
    """L_simple (eq. 14): mean squared error over every pixel of the batch; with weight [B], each
    example's error is scaled by its weight first."""
    sq = jnp.square(out - target)
    if weight is not None:
        sq = sq * weight.reshape((-1,) + (1,) * (sq.ndim - 1))
    return jnp.mean(sq)
