"""Noise schedules and the closed-form Gaussian algebra of DDPM (Ho et al. 2020, section 2).

Every table is computed once in float64 NumPy and stored as float32; the functions below only
gather from the tables, so the same code serves training, every sampler and guidance.
"""

from typing import NamedTuple

import jax
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
    return Schedule(**{k: jnp.asarray(v, dtype=jnp.float32) for k, v in tables.items()})


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


def q_sample(sched: Schedule, x0, t, noise):
    """x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)  (eq. 4)."""
    return _at(sched.sqrt_alphas_cumprod, t, x0) * x0 + _at(sched.sqrt_one_minus_alphas_cumprod, t, x0) * noise


def abar_at(sched: Schedule, level):
    """alphas_cumprod at a scalar noise level, with level -1 (the clean image) giving 1."""
    return jnp.where(level >= 0, sched.alphas_cumprod[jnp.maximum(level, 0)], 1.0)


def q_jump(sched: Schedule, x, level, to_level, key):
    """x at `level` -> a draw at the higher `to_level`: q(x_to | x_level) = N(sqrt(r) x, (1 - r) I),
    r = abar_to / abar_level, the forward process run over several steps at once (RePaint's jump)."""
    r = abar_at(sched, to_level) / abar_at(sched, level)
    return jnp.sqrt(r) * x + jnp.sqrt(1.0 - r) * jax.random.normal(key, x.shape, x.dtype)


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


def x0_from_eps(sched: Schedule, xt, t, eps):
    a, s = signal_noise(sched, t, xt)
    return (xt - s * eps) / a


def eps_from_x0(sched: Schedule, xt, t, x0):
    a, s = signal_noise(sched, t, xt)
    return (xt - a * x0) / s


def v_target(sched: Schedule, x0, t, noise):
    """v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022, section 4)."""
    return _at(sched.sqrt_alphas_cumprod, t, x0) * noise - _at(sched.sqrt_one_minus_alphas_cumprod, t, x0) * x0


def training_target(sched: Schedule, prediction: str, x0, t, noise):
    """What the network is trained to output: 'eps', 'x0' or 'v'."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        return v_target(sched, x0, t, noise)
    raise JgenError(f"unknown prediction '{prediction}' (eps | x0 | v)")


def log_snr(sched: Schedule, t):
    """lambda(t) = log(abar_t / (1 - abar_t)) at integer or fractional levels t in [0, T-1]: the tables'
    values at integers, linear in between. The probability-flow ODE (jgen.diffusion.likelihood) runs
    through continuous t; interpolating lambda keeps both abar = sigmoid(lambda) and 1 - abar =
    sigmoid(-lambda) accurate where either is near 0."""
    table = 2 * (jnp.log(sched.sqrt_alphas_cumprod) - jnp.log(sched.sqrt_one_minus_alphas_cumprod))
    return jnp.interp(t, jnp.arange(sched.num_timesteps, dtype=jnp.float32), table)


def signal_noise(sched: Schedule, t, x):
    """(sqrt(abar_t), sqrt(1 - abar_t)) shaped to broadcast against x: gathered at integer t, from the
    interpolated log-SNR at fractional t."""
    if jnp.issubdtype(jnp.asarray(t).dtype, jnp.integer):
        return _at(sched.sqrt_alphas_cumprod, t, x), _at(sched.sqrt_one_minus_alphas_cumprod, t, x)
    lam = log_snr(sched, t).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))


def to_x0_eps(sched: Schedule, prediction: str, xt, t, out):
    """Turns the network output into the pair (x0, eps) that every sampler works with; t [B] integer
    levels, or fractional ones (the likelihood ODE)."""
    if prediction == "eps":
        return x0_from_eps(sched, xt, t, out), out
    if prediction == "x0":
        return out, eps_from_x0(sched, xt, t, out)
    if prediction == "v":
        a, s = signal_noise(sched, t, xt)
        return a * xt - s * out, s * xt + a * out
    raise JgenError(f"unknown prediction '{prediction}' (eps | x0 | v)")


def min_snr_weight(sched: Schedule, prediction: str, t, gamma: float):
    """[B] weights that make the squared error of `prediction` equal min(SNR_t, gamma) times the squared
    error of x0 (Hang et al. 2023, eq. 6), SNR_t = abar_t / (1 - abar_t). For the same x_t the errors are
    related by |eps err|^2 = SNR |x0 err|^2 and |v err|^2 = (SNR + 1) |x0 err|^2, so the weight is
    min(SNR, gamma) / SNR for eps, / (SNR + 1) for v, and min(SNR, gamma) itself for x0."""
    snr = jnp.exp(log_snr(sched, t))  # not abar / (1 - abar): 1 - float32 abar loses digits near abar = 1
    capped = jnp.minimum(snr, gamma)
    if prediction == "eps":
        return capped / jnp.maximum(snr, 1e-20)
    if prediction == "v":
        return capped / (snr + 1.0)
    if prediction == "x0":
        return capped
    raise JgenError(f"unknown prediction '{prediction}' (eps | x0 | v)")


def simple_loss(out, target, weight=None):
    """L_simple (eq. 14): mean squared error over every pixel of the batch; with weight [B], each
    example's error is scaled by its weight first."""
    sq = jnp.square(out - target)
    if weight is not None:
        sq = sq * weight.reshape((-1,) + (1,) * (sq.ndim - 1))
    return jnp.mean(sq)
