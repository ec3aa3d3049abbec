"""DDPM (Algorithm 2) and DDIM (eq. 12) against float64 NumPy, and on a Gaussian whose score is exact."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from helpers import gaussian_model
from jgen.diffusion import samplers
from jgen.diffusion import process as P
from jgen.diffusion import schedules as S

T = 1000
BETAS = S.linear_betas(T)
ABAR = np.cumprod(1 - BETAS)


def eps_net_np(x, t):
    """A fixed stand-in network, the same function in NumPy and JAX."""
    return 0.3 * x + 0.01 * t[:, None, None, None] / T


def eps_net_jax(sched):
    def model_fn(x, t):
        eps = 0.3 * x + 0.01 * t.astype(jnp.float32)[:, None, None, None] / T
        return P.to_x0_eps(sched, "eps", x, t, eps)[0], eps
    return model_fn


@pytest.mark.parametrize("variance", ["small", "large"])
@pytest.mark.parametrize("t", [0, 1, 500, 999])
def test_ddpm_step_is_algorithm_2(variance, t):
    sched = S.make_schedule(BETAS)
    x = np.random.default_rng(t).standard_normal((3, 4, 4, 1))
    key = jax.random.PRNGKey(7)
    out = samplers.ddpm_step(sched, eps_net_jax(sched), jnp.float32(x), t, key, variance, clip=False)
    z = np.asarray(jax.random.normal(key, x.shape), np.float64)
    eps = eps_net_np(x, np.full(3, t))
    abar_prev = ABAR[t - 1] if t > 0 else 1.0
    sigma2 = BETAS[t] * (1 - abar_prev) / (1 - ABAR[t]) if variance == "small" else BETAS[t]
    ref = (x - BETAS[t] / np.sqrt(1 - ABAR[t]) * eps) / np.sqrt(1 - BETAS[t]) + (t > 0) * np.sqrt(sigma2) * z
    np.testing.assert_allclose(out, ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("steps,eta", [(10, 0.0), (50, 0.0), (7, 1.0)])
def test_ddim_trajectory_is_eq12(steps, eta):
    sched = S.make_schedule(BETAS)
    shape = (2, 3, 3, 1)
    key = jax.random.PRNGKey(3)
    out = samplers.ddim_sample(sched, eps_net_jax(sched), shape, key, steps=steps, eta=eta, clip=False)
    key, init_key = jax.random.split(key)  # the sampler's own split: x_T and per-step noise keys
    x = np.asarray(jax.random.normal(init_key, shape), np.float64)
    ts = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(int))
    for i in range(len(ts) - 1, -1, -1):
        t = ts[i]
        a_prev = ABAR[ts[i - 1]] if i > 0 else 1.0
        eps = eps_net_np(x, np.full(shape[0], t))
        x0 = (x - np.sqrt(1 - ABAR[t]) * eps) / np.sqrt(ABAR[t])
        sigma = eta * np.sqrt((1 - a_prev) / (1 - ABAR[t])) * np.sqrt(1 - ABAR[t] / a_prev)
        z = np.asarray(jax.random.normal(jax.random.fold_in(key, len(ts) - 1 - i), shape), np.float64)  # i-th move
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - sigma ** 2) * eps + sigma * z
    np.testing.assert_allclose(out, x, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_recover_a_gaussian(sampler):
    """With the true score, both samplers turn N(0, I) into the data distribution N(0.3, 0.2^2)."""
    sched = S.make_schedule(BETAS)
    mu, s = 0.3, 0.2
    shape = (4000, 1, 1, 1)
    fn = gaussian_model(sched, mu, s)
    key = jax.random.PRNGKey(0)
    if sampler == "ddpm":
        x = samplers.ddpm_sample(sched, fn, shape, key, clip=False)
    else:
        x = samplers.ddim_sample(sched, fn, shape, key, steps=100, eta=0.0, clip=False)
    x = np.asarray(x).ravel()
    assert abs(x.mean() - mu) < 0.02
    assert abs(x.std() - s) < 0.02


def test_ddim_timesteps():
    np.testing.assert_array_equal(samplers.ddim_timesteps(1000, 1), [0])
    ts = samplers.ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 0 and ts[-1] == 999 and np.all(np.diff(ts) > 0)
    assert len(samplers.ddim_timesteps(10, 10)) == 10


def _exact_ode_solution(sched, x_T, mu, s):
    """The probability-flow ODE from level T-1 to 0 for data ~ N(mu, s^2), in closed form (float64): in
    x~ = x / sqrt(abar), sigma = sqrt((1 - abar) / abar), x~ - mu shrinks by sqrt(s^2 + sigma^2)."""
    a_T = float(sched.alphas_cumprod[-1])
    sigma_T = np.sqrt((1 - a_T) / a_T)
    return mu + (np.asarray(x_T, np.float64) / np.sqrt(a_T) - mu) * s / np.sqrt(s ** 2 + sigma_T ** 2)


def test_ode_samplers_converge_at_their_order_to_the_exact_solution():
    """With the exact Gaussian denoiser, the terminal error falls as steps double at slope ~1 for DDIM
    (Euler) and ~2 for Heun and DPM-Solver++(2M), each on its own grid; with every level (1,000 steps)
    Heun and DPM-Solver++ are within 1e-3 of the exact solution, on the linear and cosine schedules."""
    mu, s = 0.3, 0.2
    x_T = jax.random.normal(jax.random.PRNGKey(0), (64, 1, 1, 1))
    for betas, check_order in ((S.linear_betas(1000), True), (S.cosine_betas(1000), False)):
        sched = S.make_schedule(betas)
        fn, exact = gaussian_model(sched, mu, s), _exact_ode_solution(sched, x_T, mu, s)

        def error(solver, steps):
            if solver == "ddim":
                x = samplers.ddim_sample(sched, fn, x_T.shape, jax.random.PRNGKey(1), steps=steps, clip=False, x_T=x_T)
            else:
                x = samplers.ode_sample(sched, fn, x_T.shape, jax.random.PRNGKey(1), solver, steps, clip=False, x_T=x_T)
            return float(np.max(np.abs(np.asarray(x, np.float64) - exact)))

        for solver, order in (("ddim", 1.0), ("heun", 2.0), ("dpmpp2m", 2.0)):
            errors = [error(solver, n) for n in (10, 20, 40, 80)]
            slope = -np.polyfit(np.log([10, 20, 40, 80]), np.log(errors), 1)[0]
            if check_order:  # the cosine schedule's log-SNR grid merges integer levels near both ends
                assert abs(slope - order) < 0.4, (solver, errors, slope)
            assert errors[-1] < errors[0]
            if solver != "ddim":
                assert error(solver, 1000) < 1e-3, solver


def test_logsnr_path_is_even_in_log_snr_and_ends_at_the_clean_image():
    abar = np.cumprod(1 - S.linear_betas(1000))
    path = samplers.logsnr_path(abar, 20)
    assert path[0] == 999 and path[-2:].tolist() == [0, -1] and np.all(np.diff(path) < 0)
    steps = np.diff(0.5 * np.log(abar[path[:-1]] / (1 - abar[path[:-1]])))
    assert steps.max() < 1.6 * np.median(steps)  # integer levels: near-even, not exact
    assert samplers.logsnr_path(abar, 20, start=300)[0] == 300  # SDEdit starts lower
