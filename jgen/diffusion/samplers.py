"""Samplers over any process (jgen.diffusion.process): DDPM ancestral (Ho et al. 2020, Algorithm 2, the
discrete process only), DDIM (Song et al. 2021, eq. 12) whose eta = 0 case is the Euler step of the
probability-flow ODE for every process, EDM's Heun (Karras et al. 2022, Algorithm 1, with Algorithm 2's
churn as an option), DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) and the Euler-Maruyama SDE sampler
(Ma et al. 2024, SiT).

A sampler sees only `model_fn(x_t, level) -> (x0, eps)` and the process's alpha(level), sigma(level): it
never knows which network, parametrisation or guidance produced the prediction, so guidance wraps
`model_fn` instead of copying a sampler.

Every sampler walks a `path` of levels, one `lax.scan`, so each jits to a single loop. A path normally
descends from the top level to the clean one (-1 for discrete, 0 for continuous processes); guidance
changes it (SDEdit starts lower; RePaint climbs back up, through q_jump) and may pass `post(x, level,
key) -> x`, applied to every new x (inpainting pastes known pixels there, ILVR its low-pass constraint).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import process as P
from jgen.diffusion.schedules import Schedule, q_posterior, reverse_log_variance
from jgen.errors import JgenError

SAMPLERS = ("ddpm", "ddim", "euler", "heun", "dpmpp2m", "sde")
SIGMA_MAX = 80.0  # EDM's highest noise level (Karras et al. 2022, Table 1); Heun corrects only below it
# (an edm process's own sigma_max instead)


def _prediction(proc, model_fn, x, level, clip: bool):
    """(x0, eps) of the model at `level`, x0 clipped to [-1, 1] (and eps made consistent) when asked."""
    lb = jnp.full((x.shape[0],), level, dtype=jnp.asarray(level).dtype)
    x0, eps = model_fn(x, lb)
    if clip:
        x0, eps = P.to_x0_eps(proc, "x0", x, lb, jnp.clip(x0, -1.0, 1.0))
    return x0, eps


def ddpm_step(sched: Schedule, model_fn, x, t: int, key, variance: str = "small", clip: bool = True):
    """One ancestral step x_t -> x_{t-1} at scalar timestep t (a traced int); discrete process only."""
    tb = jnp.full((x.shape[0],), t, dtype=jnp.int32)
    x0, _ = model_fn(x, tb)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
    mean = q_posterior(sched, x0, x, tb)[0]
    log_var = reverse_log_variance(sched, variance)[t]
    noise = jax.random.normal(key, x.shape, x.dtype)
    return mean + jnp.where(t > 0, jnp.exp(0.5 * log_var), 0.0) * noise


def ddim_step(proc, model_fn, x, t, t_prev, key, eta: float = 0.0, clip: bool = True):
    """x_t -> x_{t_prev} for any lower t_prev (eq. 12 in alpha and sigma): alpha_n x0 + sqrt(sigma_n^2 -
    s^2) eps + s z, s = eta sigma_n / sigma_t sqrt(sigma_t^2 - (alpha_t sigma_n / alpha_n)^2). eta = 0 is
    Euler's method on the ODE dx~/dsigma~ = eps in x~ = x / alpha, sigma~ = sigma / alpha (and, for flow
    and EDM, also Euler in t: x is affine in t there)."""
    x0, eps = _prediction(proc, model_fn, x, t, clip)
    (a_t, s_t), (a_n, s_n) = P.alpha_sigma(proc, t), P.alpha_sigma(proc, t_prev)
    sigma = eta * s_n / s_t * jnp.sqrt(jnp.maximum(s_t ** 2 - (a_t * s_n / a_n) ** 2, 0.0))
    noise = jax.random.normal(key, x.shape, x.dtype)
    return a_n * x0 + jnp.sqrt(jnp.maximum(s_n ** 2 - sigma ** 2, 0.0)) * eps + sigma * noise


def heun_corrects(proc, a_t, s_t, s_n):
    """Whether heun_step corrects its Euler step from (alpha, sigma) = (a_t, s_t) to sigma s_n: not on the
    last step (s_n = 0), not from alpha = 0, nor from above EDM's sigma_max (the process's own for edm)."""
    limit = proc.sigma_max if not P.is_discrete(proc) and proc.kind == "edm" else SIGMA_MAX
    return (s_n > 0) & (a_t > 0) & (s_t / jnp.where(a_t > 0, a_t, 1.0) <= limit)


def heun_step(proc, model_fn, x, t, t_prev, key, clip: bool = True, gamma: float = 0.0, s_noise: float = 1.0,
              s_tmin: float = 0.0, s_tmax: float = float("inf")):
    """x_t -> x_{t_prev} by Heun's method on dx~/dsigma~ = eps(x, level), x~ = x / alpha, sigma~ = sigma /
    alpha (EDM Algorithm 1; for edm x~ = x and sigma~ = sigma). With gamma > 0 first Algorithm 2's churn:
    sigma^ = (1 + gamma) sigma~, x~^ = x~ + sqrt(sigma^^2 - sigma~^2) s_noise z, and the step starts there;
    only on levels with sigma~ in [s_tmin, s_tmax] (Algorithm 2's S_tmin, S_tmax), gamma 0 elsewhere.

    The last step, to the clean level, stays Euler, as in the paper, and so does a step from above EDM's
    sigma_max = 80 (or from alpha = 0, flow's t = 1): a VP schedule's first level lies far higher (about
    10^4 for the cosine schedule), where the average of two eps predictions, scaled by the whole sigma~
    gap, is ill-conditioned (FID 3,254 against DDIM's 245 at 10 steps on the offline run before this
    rule). One Euler step does not change the global order. Two model calls per step, one on Euler's."""
    a_t, s_t = P.alpha_sigma(proc, t)
    if gamma > 0:  # none from alpha = 0 (flow's t = 1) and none past the top level
        st = s_t / jnp.where(a_t > 0, a_t, 1.0)
        a_top, s_top = P.alpha_sigma(proc, P.top_level(proc))
        on = (a_t > 0) & (st >= s_tmin) & (st <= s_tmax)  # elsewhere the level and x stay exactly as they are
        st_hat = jnp.where(on, jnp.minimum(st * (1 + gamma), s_top / jnp.maximum(a_top, 1e-12)), st)
        t_hat = jnp.where(on, P.level_of(proc, -2 * jnp.log(st_hat)), jnp.asarray(t, jnp.float32))
        a_h = P.alpha_sigma(proc, t_hat)[0]
        z = jax.random.normal(jax.random.fold_in(key, 7), x.shape, x.dtype)
        extra = jnp.sqrt(jnp.maximum(st_hat ** 2 - st ** 2, 0.0))
        x = jnp.where(on, a_h * (x / jnp.where(a_t > 0, a_t, 1.0) + extra * s_noise * z), x)
        t, (a_t, s_t) = t_hat, P.alpha_sigma(proc, t_hat)
    a_n, s_n = P.alpha_sigma(proc, t_prev)
    x0, eps = _prediction(proc, model_fn, x, t, clip)
    euler = a_n * x0 + s_n * eps
    st_t, st_n = s_t / a_t, s_n / a_n

    def corrected(_):
        _, eps_n = _prediction(proc, model_fn, euler, t_prev, clip)
        return a_n * (x / a_t + (st_n - st_t) * 0.5 * (eps + eps_n))
    return jax.lax.cond(heun_corrects(proc, a_t, s_t, s_n), corrected, lambda _: euler, None)


def dpmpp_2m_step(proc, model_fn, x, t, t_prev, memory, clip: bool = True):
    """x_t -> x_{t_prev} by DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), the multistep data-prediction
    solver in lambda = log(alpha / sigma). memory: {'x0', 'h', 'valid'} of the previous step; the first
    step (or the first after a climb) and the last (sigma = 0, h infinite) are first order."""
    (alpha_t, sigma_t), (alpha_n, sigma_n) = P.alpha_sigma(proc, t), P.alpha_sigma(proc, t_prev)
    x0, _ = _prediction(proc, model_fn, x, t, clip)
    last = sigma_n <= 0
    h = jnp.where(last, 1.0, jnp.log(alpha_n / jnp.maximum(sigma_n, 1e-20)) - jnp.log(alpha_t / sigma_t))
    r = memory["h"] / jnp.where(h > 0, h, 1.0)
    second = memory["valid"] & ~last & (h > 0) & (memory["h"] > 0)
    d = jnp.where(second, (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * memory["x0"], x0)
    x_n = jnp.where(last, x0, sigma_n / sigma_t * x - alpha_n * jnp.expm1(-h) * d)
    return x_n, {"x0": x0, "h": h, "valid": jnp.ones((), bool)}


def sde_step(proc, model_fn, x, t, t_prev, key, clip: bool = True):
    """x_t -> x_{t_prev} by Euler-Maruyama on the reverse SDE dx = [u - g^2 score / 2] dt + g dw (SiT,
    eq. 9 with w_t = g^2; Anderson 1982) in the process's own time, u = alpha' x0 + sigma' eps the ODE's
    velocity, score = -eps / sigma and g^2 = -sigma^2 d lambda / dt the forward SDE's diffusion (Song et
    al. 2021's reverse SDE for vp; 2 sigma for edm). The last step, to the clean level, is x0 (SiT's last
    ODE step, Euler)."""
    x0, eps = _prediction(proc, model_fn, x, t, clip)
    t = jnp.asarray(t, jnp.float32)
    s_t, (da, ds) = P.alpha_sigma(proc, t)[1], P.derivatives(proc, t)
    g2 = -s_t ** 2 * P.dlog_snr(proc, t)
    dt = t_prev - t
    drift = da * x0 + ds * eps + 0.5 * g2 * eps / s_t
    x_n = x + drift * dt + jnp.sqrt(g2 * jnp.abs(dt)) * jax.random.normal(key, x.shape, x.dtype)
    return jnp.where(P.alpha_sigma(proc, t_prev)[1] > 0, x_n, x0)


def walk(proc, down, x, path, key, post=None, memory=None):
    """Moves x along the levels in `path` (static): `down(x, t, t_next, key)` where the path descends,
    q_jump (fresh noise) where it climbs, then `post`. The i-th move uses fold_in(key, i).

    A multistep solver passes `memory` (a pytree of its past predictions, with a boolean `valid`) and a
    `down(x, t, t_next, key, memory) -> (x, memory)`; a climb (fresh noise) invalidates the memory."""
    path = np.asarray(path, np.int32 if P.is_discrete(proc) else np.float32)
    if len(path) < 2:
        return x
    climbs = bool(np.any(path[1:] > path[:-1]))
    step = down if memory is not None else (lambda x, t, tn, k, m: (down(x, t, tn, k), m))

    def jump(x, t, tn, k, m):
        return P.q_jump(proc, x, t, tn, k), None if m is None else dict(m, valid=jnp.zeros((), bool))

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


def model_calls(proc, sampler: str, path) -> int:
    """How many times `sampler` calls the model along `path`: one a step, and for heun a second on every
    step heun_step corrects (not the last step to the clean level, nor one from alpha = 0 or from above
    its sigma limit): 10 Heun steps cost 18 calls on flow's and DDPM's grids, 19 on EDM's."""
    path = np.asarray(path)
    if sampler != "heun":
        return len(path) - 1
    a, s = P.alpha_sigma(proc, jnp.asarray(path))
    return int(len(path) - 1 + jnp.sum(heun_corrects(proc, a[:-1], s[:-1], s[1:])))


def ddpm_path(num_timesteps: int, start=None) -> np.ndarray:
    """Every level from `start` (default T-1) down to -1."""
    start = num_timesteps - 1 if start is None else start
    return np.arange(start, -2, -1, dtype=np.int32)


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


GRIDS = ("default", "uniform", "logsnr", "karras")


def default_grid(proc, sampler: str) -> str:
    """Each paper's grid: EDM's rho = 7 grid for edm, even log-SNR for DPM-Solver++, uniform in t else."""
    if not P.is_discrete(proc) and proc.kind == "edm":
        return "karras"
    return "logsnr" if sampler == "dpmpp2m" else "uniform"


def sampler_path(proc, sampler: str, steps: int, start=None, grid: str = "default") -> np.ndarray:
    """The levels `sampler` visits from `start` (default the top level) down to the clean one. Discrete:
    every level for DDPM, the log-SNR grid for DPM-Solver++, DDIM's even grid in t otherwise. Continuous:
    process.grid of `grid` (default_grid for 'default'), about steps * start / top levels from a lower
    start (steps * (start / sigma_max)^(1/7) for edm); the SDE on flow starts at t = 1 - t_min, where
    g^2 is finite (SiT's sample_eps)."""
    if P.is_discrete(proc):
        abar = proc.abar64
        if sampler == "ddpm":
            return ddpm_path(len(abar), start)
        if sampler == "dpmpp2m":
            return logsnr_path(abar, steps, start)
        return ddim_path(len(abar), steps, start)
    kind = default_grid(proc, sampler) if grid == "default" else grid
    if start is not None:  # SDEdit: the grid keeps about its spacing below a lower start
        top = P.top_level(proc)
        frac = (start / top) ** (1 / 7) if proc.kind == "edm" else start / top
        steps = max(1, round(steps * min(max(frac, 0.0), 1.0)))
    if sampler == "sde" and proc.kind == "flow":
        start = min(1.0 - proc.t_min, 1.0 if start is None else start)
    return P.grid(proc, kind, steps, start)


def sample(proc, model_fn, shape, key, sampler: str, path, *, eta: float = 0.0, variance: str = "small",
           clip: bool = True, churn: float = 0.0, s_noise: float = 1.0, s_tmin: float = 0.0,
           s_tmax: float = float("inf"), x_T=None, post=None):
    """`shape` samples with `sampler` along the static `path` (sampler_path), from x_T ~ N(0, prior_std^2
    I) at path[0] or the given x_T. churn: EDM's S_churn for heun (gamma = min(S_churn / N, sqrt 2 - 1)),
    on the levels whose sigma / alpha lies in [s_tmin, s_tmax]."""
    if sampler not in SAMPLERS:
        raise JgenError(f"unknown sampler '{sampler}' ({' | '.join(SAMPLERS)})")
    path = np.asarray(path)
    key, init_key = jax.random.split(key)
    x = jax.random.normal(init_key, shape) * P.prior_std(proc, path[0]) if x_T is None else x_T
    if sampler == "ddpm":
        if np.any(path[:-1] - path[1:] > 1):
            raise JgenError("the DDPM sampler steps one level at a time; use DDIM for a strided path")
        down = lambda x, t, tn, k: ddpm_step(proc, model_fn, x, t, k, variance, clip)
    elif sampler in ("ddim", "euler"):
        e = eta if sampler == "ddim" else 0.0
        down = lambda x, t, tn, k: ddim_step(proc, model_fn, x, t, tn, k, e, clip)
    elif sampler == "heun":
        gamma = min(churn / max(len(path) - 1, 1), math.sqrt(2) - 1)
        down = lambda x, t, tn, k: heun_step(proc, model_fn, x, t, tn, k, clip, gamma, s_noise, s_tmin, s_tmax)
    elif sampler == "sde":
        down = lambda x, t, tn, k: sde_step(proc, model_fn, x, t, tn, k, clip)
    else:
        memory = {"x0": jnp.zeros(shape, x.dtype), "h": jnp.ones(()), "valid": jnp.zeros((), bool)}
        down = lambda x, t, tn, k, m: dpmpp_2m_step(proc, model_fn, x, t, tn, m, clip)
        return walk(proc, down, x, path, key, post, memory)
    return walk(proc, down, x, path, key, post)


def ddpm_sample(sched: Schedule, model_fn, shape, key, variance: str = "small", clip: bool = True, x_T=None,
                path=None, post=None):
    """Ancestral sampling from x_T ~ N(0, I) (or the given x_T, at level path[0]); returns x_0 of `shape`."""
    path = ddpm_path(sched.num_timesteps) if path is None else path
    return sample(sched, model_fn, shape, key, "ddpm", path, variance=variance, clip=clip, x_T=x_T, post=post)


def ddim_sample(proc, model_fn, shape, key, steps: int = 50, eta: float = 0.0, clip: bool = True,
                x_T=None, path=None, post=None):
    """DDIM with `steps` model calls from x_T (or the given x_T, at level path[0]); eta=0 is
    deterministic, eta=1 matches DDPM's posterior variance."""
    path = sampler_path(proc, "ddim", steps) if path is None else path
    return sample(proc, model_fn, shape, key, "ddim", path, eta=eta, clip=clip, x_T=x_T, post=post)


def ode_sample(proc, model_fn, shape, key, solver: str, steps: int, clip: bool = True, x_T=None,
               path=None, post=None):
    """Deterministic sampling with `solver` ('euler' | 'heun' | 'dpmpp2m') over `steps` levels (or `path`)."""
    if solver not in ("euler", "heun", "dpmpp2m"):
        raise JgenError(f"unknown ODE solver '{solver}' (euler | heun | dpmpp2m)")
    path = sampler_path(proc, solver, steps) if path is None else path
    return sample(proc, model_fn, shape, key, solver, path, clip=clip, x_T=x_T, post=post)
