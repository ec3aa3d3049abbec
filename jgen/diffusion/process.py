"""The diffusion process in one place: x_t = alpha(t) x_0 + sigma(t) eps, for every process jgen trains.

- `discrete`: DDPM's T levels (a `Schedule`, Ho et al. 2020); level t in {0..T-1}, -1 the clean image.
- `vp`: the same schedules in continuous time t in [t_min, 1] (Song et al. 2021; Kingma et al. 2021):
  linear, log alpha^2 = -(beta_min t + (beta_max - beta_min) t^2 / 2), beta = T beta_t of the discrete
  schedule; cosine, alpha^2 = f(t) / f(0), f = cos^2((t + s) / (1 + s) pi / 2) (Nichol & Dhariwal 2021).
- `edm`: alpha = 1 and the level *is* sigma in [sigma_min, sigma_max] (Karras et al. 2022).
- `flow`: rectified flow / SiT, alpha = 1 - t, sigma = t, t in [0, 1] (Liu et al. 2023; Ma et al. 2024).

A process is a `Schedule` (discrete) or a `Continuous`; the functions below take either. Samplers,
guidance and likelihoods read a process only through alpha_sigma, log_snr, level_of and to_x0_eps,
so none of them knows which process (or network) it drives. Everything is elementwise in the level,
which is a scalar inside a sampler's walk and [B] inside a training step.

Predictions (what the network outputs) and their conversion to (x0, eps) for any (alpha, sigma):
eps; x0; v = alpha eps - sigma x0 (Salimans & Ho 2022, in general x0 = (alpha x - sigma v) / (alpha^2 +
sigma^2)); velocity u = alpha' x0 + sigma' eps, the process's own dx/dt (flow: eps - x0); F, EDM's
preconditioned output, D = c_skip x + c_out F (Karras et al. Table 1).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import schedules as S
from jgen.errors import JgenError

PREDICTIONS = ("eps", "x0", "v", "velocity", "F")  # which process takes which: jgen.configs.rules
NETWORK_TIME_SCALE = 1000.0  # the U-Net's and DiT's sinusoidal embeddings are laid out for DDPM's 0..999


class Continuous(NamedTuple):
    """A continuous-time process (static numbers only, so it closes over jitted code as a constant)."""
    kind: str  # vp | edm | flow
    schedule: str = "linear"  # vp: linear | cosine
    beta_min: float = 0.1
    beta_max: float = 20.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    t_min: float = 1e-3


def is_discrete(proc) -> bool:
    return isinstance(proc, S.Schedule)


def from_config(d):
    """config.diffusion -> the process: a Schedule for process=discrete, else a Continuous."""
    if d.process == "discrete":
        return S.schedule_from_config(d)
    return Continuous(d.process, d.schedule, d.beta_start * d.timesteps, d.beta_end * d.timesteps, d.sigma_min,
                      d.sigma_max, d.sigma_data, d.t_min)


_COSINE_S = 0.008


def _cosine_angle(t):
    return (t + _COSINE_S) / (1 + _COSINE_S) * (math.pi / 2)


def log_snr(proc, level):
    """lambda = log(alpha^2 / sigma^2) at `level` (any shape); +inf at the clean level."""
    if is_discrete(proc):
        level = jnp.asarray(level)
        if jnp.issubdtype(level.dtype, jnp.integer):
            lam = S.log_snr(proc, jnp.maximum(level, 0).astype(jnp.float32))
            return jnp.where(level < 0, jnp.inf, lam)
        return S.log_snr(proc, level)
    t = jnp.asarray(level, jnp.float32)
    if proc.kind == "edm":
        return -2.0 * jnp.log(t)
    if proc.kind == "flow":
        return 2.0 * (jnp.log1p(-t) - jnp.log(t))
    if proc.schedule == "cosine":  # SNR = cos^2 a / (cos^2 a0 - cos^2 a) = cos^2 a / (sin(a - a0) sin(a + a0)),
        t = jnp.minimum(t, 1.0 - 1e-4)  # a - a0 and a + a0 written out, so t = 0 gives sigma = 0 exactly
        c = (math.pi / 2) / (1 + _COSINE_S)
        return 2.0 * jnp.log(jnp.cos(_cosine_angle(t))) - jnp.log(jnp.sin(c * t) * jnp.sin(c * (t + 2 * _COSINE_S)))
    return -jnp.log(jnp.expm1(proc.beta_min * t + 0.5 * (proc.beta_max - proc.beta_min) * t ** 2))


def level_of(proc, lam):
    """The level whose log-SNR is `lam` (the inverse of log_snr): fractional levels for discrete."""
    lam = jnp.asarray(lam, jnp.float32)
    if is_discrete(proc):
        levels = jnp.arange(proc.num_timesteps, dtype=jnp.float32)
        table = S.log_snr(proc, levels)
        return jnp.interp(lam, table[::-1], levels[::-1])
    if proc.kind == "edm":
        return jnp.exp(-0.5 * lam)
    if proc.kind == "flow":
        return jax.nn.sigmoid(-0.5 * lam)
    if proc.schedule == "cosine":  # cos^2 a = cos^2 a0 sigmoid(lambda), sin^2 a = sin^2 a0 + cos^2 a0 sigmoid(-lambda):
        a0 = _cosine_angle(0.0)     # atan2 of both stays accurate at either end, where arccos or arcsin would not
        a = jnp.arctan2(jnp.sqrt(math.sin(a0) ** 2 + math.cos(a0) ** 2 * jax.nn.sigmoid(-lam)),
                        math.cos(a0) * jnp.sqrt(jax.nn.sigmoid(lam)))
        return a / (math.pi / 2) * (1 + _COSINE_S) - _COSINE_S
    b0, db = proc.beta_min, proc.beta_max - proc.beta_min  # db t^2 / 2 + b0 t = B = softplus(-lambda),
    b = jax.nn.softplus(-lam)                                # the root written without cancellation
    return 2 * b / (b0 + jnp.sqrt(b0 ** 2 + 2 * db * b))


def alpha_sigma(proc, level):
    """(alpha, sigma) at `level` (any shape). Discrete: the float64-built tables at integer levels (-1:
    (1, 0)), the interpolated log-SNR at fractional ones; vp from the log-SNR, which keeps both alpha and
    sigma accurate where either is near 0."""
    if is_discrete(proc):
        level = jnp.asarray(level)
        if jnp.issubdtype(level.dtype, jnp.integer):
            i = jnp.maximum(level, 0)
            return (jnp.where(level < 0, 1.0, proc.sqrt_alphas_cumprod[i]),
                    jnp.where(level < 0, 0.0, proc.sqrt_one_minus_alphas_cumprod[i]))
    elif proc.kind == "edm":
        sigma = jnp.asarray(level, jnp.float32)
        return jnp.ones_like(sigma), sigma
    elif proc.kind == "flow":
        t = jnp.asarray(level, jnp.float32)
        return 1.0 - t, t
    lam = log_snr(proc, level)
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))


def derivatives(proc, level):
    """(d alpha / d level, d sigma / d level): the velocity's coefficients."""
    level = jnp.asarray(level, jnp.float32)
    return jax.jvp(lambda l: alpha_sigma(proc, l), (level,), (jnp.ones_like(level),))[1]


def dlog_snr(proc, level):
    """d lambda / d level, elementwise: autodiff of log_snr for continuous processes; for discrete, the
    central difference of the lambda table (one-sided at both ends)."""
    if is_discrete(proc):
        table = S.log_snr(proc, jnp.arange(proc.num_timesteps, dtype=jnp.float32))
        return jnp.gradient(table)[jnp.asarray(level)]
    level = jnp.asarray(level, jnp.float32)
    return jax.jvp(lambda l: log_snr(proc, l), (level,), (jnp.ones_like(level),))[1]


def _b(v, x):
    """A per-example value [B] (or a scalar) shaped to broadcast against images x [B, ...]."""
    v = jnp.asarray(v)
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim)) if v.ndim else v


def edm_scalings(proc, sigma):
    """(c_skip, c_out, c_in) of EDM's preconditioning at sigma (Karras et al. Table 1, eq. 7)."""
    sd2 = proc.sigma_data ** 2
    return sd2 / (sigma ** 2 + sd2), sigma * proc.sigma_data / jnp.sqrt(sigma ** 2 + sd2), 1 / jnp.sqrt(sigma ** 2 + sd2)


def network_inputs(proc, x, level):
    """(x scaled for the network, the network's time input [B]): EDM's c_in x and c_noise = ln(sigma) / 4,
    t for vp and flow, both times NETWORK_TIME_SCALE; the discrete level itself for DDPM."""
    if is_discrete(proc):
        return x, level
    if proc.kind == "edm":
        c_in = _b(edm_scalings(proc, level)[2], x).astype(x.dtype)  # keeps a bfloat16 x bfloat16
        return c_in * x, NETWORK_TIME_SCALE * 0.25 * jnp.log(level)
    return x, NETWORK_TIME_SCALE * level


def to_x0_eps(proc, prediction: str, x, level, out):
    """The network output `out` at x_t = x, `level` [B] -> the pair (x0, eps) every sampler reads."""
    a, s = (_b(v, x) for v in alpha_sigma(proc, level))
    if prediction == "eps":
        return (x - s * out) / jnp.maximum(a, 1e-12), out
    if prediction == "x0":
        return out, (x - a * out) / jnp.maximum(s, 1e-12)
    if prediction == "v":
        n = a ** 2 + s ** 2
        return (a * x - s * out) / n, (s * x + a * out) / n
    if prediction == "velocity":
        da, ds = (_b(v, x) for v in derivatives(proc, level))
        det = a * ds - s * da
        return (ds * x - s * out) / det, (a * out - da * x) / det
    if prediction == "F":
        c_skip, c_out, _ = (_b(v, x) for v in edm_scalings(proc, level))
        x0 = c_skip * x + c_out * out
        return x0, (x - x0) / jnp.maximum(s, 1e-12)
    raise JgenError(f"unknown prediction '{prediction}' ({' | '.join(PREDICTIONS)})")


def q_sample(proc, x0, level, noise):
    """x_t = alpha x0 + sigma eps (DDPM eq. 4 for the discrete process)."""
    a, s = alpha_sigma(proc, level)
    return _b(a, x0) * x0 + _b(s, x0) * noise


def training_target(proc, prediction: str, x0, level, noise):
    """What the network is trained to output for the draw x_t = alpha x0 + sigma noise."""
    a, s = (_b(v, x0) for v in alpha_sigma(proc, level))
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        return a * noise - s * x0
    if prediction == "velocity":
        da, ds = (_b(v, x0) for v in derivatives(proc, level))
        return da * x0 + ds * noise
    if prediction == "F":
        c_skip, c_out, _ = (_b(v, x0) for v in edm_scalings(proc, level))
        return (x0 - c_skip * (a * x0 + s * noise)) / c_out
    raise JgenError(f"unknown prediction '{prediction}' ({' | '.join(PREDICTIONS)})")


def q_jump(proc, x, level, to_level, key):
    """x at `level` -> a draw at the noisier `to_level`: x_to = (alpha_to / alpha) x + sqrt(sigma_to^2 -
    (alpha_to sigma / alpha)^2) z, the forward process over several steps at once (RePaint's jump;
    from the clean level it is q(x_t | x_0))."""
    a, s = alpha_sigma(proc, level)
    a_to, s_to = alpha_sigma(proc, to_level)
    r = a_to / a
    return r * x + jnp.sqrt(jnp.maximum(s_to ** 2 - (r * s) ** 2, 0.0)) * jax.random.normal(key, x.shape, x.dtype)


def clean_level(proc):
    """The level of the clean image: -1 for discrete, 0 (t = 0 or sigma = 0) for continuous processes."""
    return -1 if is_discrete(proc) else 0.0


def top_level(proc):
    """The noisiest level: T-1, sigma_max, or t = 1."""
    if is_discrete(proc):
        return proc.num_timesteps - 1
    return proc.sigma_max if proc.kind == "edm" else 1.0


def level_bounds(proc):
    """(lowest, top) noisy level a solver integrates between: DDPM's 0 and T-1; vp [t_min, 1]; edm
    [sigma_min, sigma_max]; flow [t_min, 1 - t_min] (lambda and sigma / alpha are infinite at t = 1)."""
    if is_discrete(proc):
        return 0.0, proc.num_timesteps - 1.0
    if proc.kind == "edm":
        return proc.sigma_min, proc.sigma_max
    return proc.t_min, (1.0 - proc.t_min if proc.kind == "flow" else 1.0)


def prior_std(proc, level):
    """The scale of x_T ~ N(0, std^2 I) that sampling starts from: 1 for DDPM and vp (alpha^2 + sigma^2 =
    1), sigma for EDM (Algorithm 1 line 1), sqrt(alpha^2 + sigma^2) for flow (1 at t = 1)."""
    if is_discrete(proc) or proc.kind == "vp":
        return 1.0
    a, s = alpha_sigma(proc, level)
    return s if proc.kind == "edm" else jnp.sqrt(a ** 2 + s ** 2)


# --- training: time sampling and loss weighting ---------------------------------------------------------

def level_range(proc):
    """(lo, hi) of the training levels: vp [t_min, 1], flow [t_min, 1 - t_min] (at t = 0 or 1 the SNR is
    0 or infinite, and the min-SNR, sigmoid and ELBO weights with it)."""
    return proc.t_min, (1.0 - proc.t_min if proc.kind == "flow" else 1.0)


def sample_levels(proc, d, key, n: int):
    """[n] training levels: discrete U{0..T-1}; uniform in level_range; logit-normal t = sigmoid(m + s z)
    (Esser et al. 2024, logit_mean, logit_std); EDM's ln sigma ~ N(p_mean, p_std) (Karras et al. sec. 5)."""
    if is_discrete(proc):
        return jax.random.randint(key, (n,), 0, proc.num_timesteps)
    lo, hi = level_range(proc) if proc.kind != "edm" else (0.0, 1.0)
    if d.time_sampling == "uniform":
        return jax.random.uniform(key, (n,), minval=lo, maxval=hi)
    z = jax.random.normal(key, (n,))
    if d.time_sampling == "logit_normal":
        return jnp.clip(jax.nn.sigmoid(d.logit_mean + d.logit_std * z), lo, hi)
    return jnp.exp(d.p_mean + d.p_std * z)


def level_density(proc, d, level):
    """The density of the training levels at `level` under diffusion.time_sampling."""
    if is_discrete(proc):
        return jnp.full(jnp.shape(level), 1.0 / proc.num_timesteps)
    normal = lambda u: jnp.exp(-0.5 * u ** 2) / math.sqrt(2 * math.pi)
    if d.time_sampling == "uniform":
        lo, hi = level_range(proc)
        return jnp.full(jnp.shape(level), 1.0 / (hi - lo))
    if d.time_sampling == "logit_normal":
        t = level
        return normal((jnp.log(t) - jnp.log1p(-t) - d.logit_mean) / d.logit_std) / (d.logit_std * t * (1 - t))
    return normal((jnp.log(level) - d.p_mean) / d.p_std) / (d.p_std * level)


def eps_error_scale(proc, prediction: str, level):
    """g with |prediction error|^2 = g |eps error|^2 at the same x_t: how each parametrisation's squared
    error relates to the noise's (eps 1; x0 sigma^2 / alpha^2; v ((alpha^2 + sigma^2) / alpha)^2; velocity
    (sigma' - alpha' sigma / alpha)^2; F sigma^2 / (alpha c_out)^2)."""
    a, s = alpha_sigma(proc, level)
    if prediction == "eps":
        return jnp.ones_like(a)
    if prediction == "x0":
        return (s / a) ** 2
    if prediction == "v":
        return ((a ** 2 + s ** 2) / a) ** 2
    if prediction == "velocity":
        da, ds = derivatives(proc, level)
        return (ds - da * s / a) ** 2
    return (s / (a * edm_scalings(proc, level)[1])) ** 2


def loss_weight(proc, d, prediction: str, level):
    """[B] weights on the squared error of `prediction`, stated on the eps scale and divided by
    eps_error_scale. none: 1 (plain MSE of the prediction); min_snr: min(SNR, gamma) / SNR (Hang et al.
    2023, eq. 6: min(SNR, gamma) on the x0 error); edm: lambda(sigma) = (sigma^2 + sigma_data^2) /
    (sigma sigma_data)^2 on the x0 error (Karras et al. eq. 8; sigma = sigma / alpha for alpha != 1),
    i.e. (sigma^2 + sigma_data^2) / sigma_data^2 on eps; sigmoid and elbo: Kingma & Gao 2023, w(lambda) /
    p(lambda) on eps with w = sigmoid(sigmoid_bias - lambda) or 1 (the ELBO, up to its factor 1/2), p(lambda)
    the density of lambda under the time sampling, p(level) / |d lambda / d level|."""
    if d.loss_weight == "none":
        return jnp.ones(jnp.shape(level))
    lam = log_snr(proc, level)
    if d.loss_weight == "min_snr":
        snr = jnp.exp(lam)
        w = jnp.minimum(snr, d.min_snr_gamma) / jnp.maximum(snr, 1e-20)
    elif d.loss_weight == "edm":
        w = (jnp.exp(-lam) + d.sigma_data ** 2) / d.sigma_data ** 2
    else:
        p_lam = level_density(proc, d, level) / jnp.abs(dlog_snr(proc, level))
        w = (jax.nn.sigmoid(d.sigmoid_bias - lam) if d.loss_weight == "sigmoid" else 1.0) / p_lam
    return w / eps_error_scale(proc, prediction, level)


def grid(proc, kind: str, steps: int, start=None) -> np.ndarray:
    """A continuous process's sampling grid (float64, static): `steps` levels where the model is called,
    descending from `start` (default the top level), then the clean level 0. kind: uniform (in t; in
    sigma for edm), logsnr (even in lambda, DPM-Solver's) or karras (EDM eq. 5, rho = 7, even in
    sigma^(1/rho)). Flow's uniform grid ends at t = 1/steps so the last move reaches 0 at the same
    spacing (SiT's Euler grid); the others end at t_min (vp), sigma_min (edm) or t_min (flow)."""
    hi = float(top_level(proc) if start is None else start)
    lo, top = level_bounds(proc)
    if kind != "uniform":
        hi = min(hi, top)
    if hi <= 0:
        return np.zeros(1)
    if hi <= lo:  # a start below the lowest level (SDEdit at a small strength): one step to the clean level
        return np.array([hi, 0.0])
    if kind == "uniform":
        pts = np.linspace(hi, 0.0, steps + 1)[:-1] if proc.kind == "flow" else np.linspace(hi, lo, steps)
    else:
        with jax.ensure_compile_time_eval():  # a static path, also when called while tracing a sampler
            lam_hi, lam_lo = (float(log_snr(proc, np.float32(v))) for v in (hi, lo))
            if kind == "logsnr":
                lams = np.linspace(lam_hi, lam_lo, steps)
            else:  # sigma~ = exp(-lambda / 2), even in sigma~^(1/7)
                r = 7.0
                s_hi, s_lo = math.exp(-lam_hi / 2) ** (1 / r), math.exp(-lam_lo / 2) ** (1 / r)
                lams = -2 * r * np.log(np.linspace(s_hi, s_lo, steps))
            pts = np.array(level_of(proc, lams.astype(np.float32)), np.float64)
        pts[0] = hi
    return np.append(pts, 0.0)
