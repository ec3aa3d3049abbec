"""Every sampler over every process, on Gaussian data whose denoiser E[x0 | x_t] is exact for any (alpha,
sigma), so the probability-flow ODE has a closed-form solution: x_t = alpha mu + sqrt(alpha^2 s^2 +
sigma^2) z for a fixed z (per dimension, diagonal covariance). Fitted convergence orders (Euler ~1, Heun
and DPM-Solver++ ~2), 1,000 steps within 1e-3 of the exact solution, the SDE sampler's moments, and a
tiny network trained with each process on a 2-D Gaussian mixture."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jgen.diffusion import process as P
from jgen.diffusion import samplers
from jgen.diffusion import schedules as S

MU = np.array([0.3, -0.2, 0.1, 0.5])
STD = np.array([0.2, 0.5, 0.25, 0.4])
PROCESSES = {"discrete": S.make_schedule(S.cosine_betas(1000)), "vp": P.Continuous("vp", "linear"),
             "vp_cosine": P.Continuous("vp", "cosine"), "edm": P.Continuous("edm"), "flow": P.Continuous("flow")}


def exact_denoiser(proc, mu=MU, std=STD):
    mu, var = jnp.float32(mu), jnp.float32(std ** 2)

    def model_fn(x, level):
        a, s = (v[:, None] for v in P.alpha_sigma(proc, level))
        x0 = mu + a * var / (a ** 2 * var + s ** 2) * (x - a * mu)
        return x0, (x - a * x0) / s
    return model_fn


def exact_flow(proc, x_start, start, end):
    """The ODE solution at `end` from x_start at `start` (float64)."""
    (a0, s0), (a1, s1) = (np.asarray(P.alpha_sigma(proc, jnp.asarray(v)), np.float64) for v in (start, end))
    z = (x_start - a0 * MU) / np.sqrt(a0 ** 2 * STD ** 2 + s0 ** 2)
    return a1 * MU + np.sqrt(a1 ** 2 * STD ** 2 + s1 ** 2) * z


def solve(proc, sampler, steps, full=False):
    """(sampler's result, exact solution), both from the same x_T, on the sampler's own grid; without
    `full` the walk stops at the last noisy level (the step to the clean level is a fixed-size jump, not
    part of the ODE's discretisation)."""
    path = samplers.sampler_path(proc, sampler, steps)
    path = path if full else path[:-1]
    x_T = np.random.default_rng(0).standard_normal((64, 4)) * float(P.prior_std(proc, path[0]))
    out = samplers.sample(proc, exact_denoiser(proc), (64, 4), jax.random.PRNGKey(0), sampler, path, clip=False,
                          x_T=jnp.float32(x_T))
    return np.asarray(out, np.float64), exact_flow(proc, x_T, path[0], path[-1])


ORDERS = {"euler": 1.0, "heun": 2.0, "dpmpp2m": 2.0}


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("sampler", ORDERS)
def test_convergence_order(name, sampler):
    """The slope of log error against log steps, past the first coarse grids (at 8-16 steps the big
    first steps in sigma~ of a uniform t grid are not yet in the asymptotic regime)."""
    proc = PROCESSES[name]
    ns = [40, 80, 160] if name == "discrete" else [64, 128, 256]
    errs = [np.abs(np.subtract(*solve(proc, sampler, n))).max() for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - ORDERS[sampler]) < 0.25, (errs, slope)


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp2m"])
def test_many_steps_reach_the_exact_solution(name, sampler):
    """1,000 steps of Heun or DPM-Solver++ land within 1e-3 of the exact solution at the grid's lowest
    noisy level (where the ODE ends: the step to the clean level is the denoiser's x0 there, whose gap to
    the ODE at t = 0 is set by t_min or sigma_min, not by the solver); first-order Euler is 2e-3 to 5e-3
    off at 1,000 steps (its constant on these grids) and needs 10,000 (DDPM's 1,000 levels allow no
    more, so discrete Euler is left to the order test)."""
    if sampler == "euler" and name == "discrete":
        pytest.skip("the discrete process has 1,000 levels; Euler needs more for 1e-3")
    out, exact = solve(PROCESSES[name], sampler, 10000 if sampler == "euler" else 1000)
    assert np.abs(out - exact).max() < 1e-3


@pytest.mark.parametrize("name", ["vp", "edm", "flow"])
def test_sde_sampler_matches_the_data_moments(name):
    proc = PROCESSES[name]
    n = 20000
    path = samplers.sampler_path(proc, "sde", 250)
    x = np.asarray(samplers.sample(proc, exact_denoiser(proc), (n, 4), jax.random.PRNGKey(1), "sde", path,
                                   clip=False), np.float64)
    se = STD / np.sqrt(n)
    assert np.all(np.abs(x.mean(0) - MU) < 5 * se + 2e-3), x.mean(0) - MU
    cov = np.cov(x.T)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), STD, rtol=0.04)
    off = cov - np.diag(np.diag(cov))
    assert np.abs(off).max() < 5 * np.outer(STD, STD).max() / np.sqrt(n)


@pytest.mark.parametrize("name", ["flow", "edm"])
def test_euler_is_the_textbook_euler_step_in_t(name):
    """Flow's and EDM's x is affine in t, so the sampler's Euler step (alpha_n x0 + sigma_n eps) is the
    textbook x + (t_n - t) dx/dt with dx/dt = (x - D(x)) / t (flow: eps - x0; EDM eq. 3 with sigma = t),
    here in float64 with the Gaussian's closed-form denoiser D."""
    proc = PROCESSES[name]
    path = samplers.sampler_path(proc, "euler", 6)[:-1]
    x_T = np.random.default_rng(2).standard_normal((8, 4)) * float(P.prior_std(proc, path[0]))
    out = samplers.sample(proc, exact_denoiser(proc), (8, 4), jax.random.PRNGKey(0), "euler", path, clip=False,
                          x_T=jnp.float32(x_T))
    x = x_T.copy()
    for t, tn in zip(path[:-1], path[1:]):
        a = 1 - t if name == "flow" else 1.0
        d = MU + a * STD ** 2 / (a ** 2 * STD ** 2 + t ** 2) * (x - a * MU)
        x = x + (tn - t) * (x - d) / t
    np.testing.assert_allclose(np.asarray(out), x, rtol=1e-4, atol=1e-4 * float(P.prior_std(proc, path[0])))


@pytest.mark.parametrize("name", ["edm", "flow"])
def test_heun_with_churn_keeps_the_data_moments(name):
    """EDM Algorithm 2 (S_churn 10 over 64 steps, gamma 0.16) with the exact denoiser: the samples'
    mean and spread stay the data's, and no NaN from flow's t = 1 (alpha = 0, no churn there)."""
    proc = PROCESSES[name]
    n = 20000
    path = samplers.sampler_path(proc, "heun", 64)
    x = np.asarray(samplers.sample(proc, exact_denoiser(proc), (n, 4), jax.random.PRNGKey(3), "heun", path,
                                   clip=False, churn=10.0), np.float64)
    assert np.all(np.isfinite(x))
    assert np.all(np.abs(x.mean(0) - MU) < 5 * STD / np.sqrt(n) + 2e-3), x.mean(0) - MU
    np.testing.assert_allclose(x.std(0), STD, rtol=0.04)


def test_churn_only_inside_its_sigma_window():
    """S_tmin/S_tmax: a window holding no level is Algorithm 1 to the bit, one holding every level the
    unwindowed Algorithm 2, and a window over the upper half of the levels churns there only (its samples
    differ from both)."""
    proc = PROCESSES["edm"]
    path = samplers.sampler_path(proc, "heun", 16)
    run = lambda **kw: np.asarray(samplers.sample(proc, exact_denoiser(proc), (64, 4), jax.random.PRNGKey(5), "heun",
                                                  path, clip=False, **kw))
    plain, churned = run(), run(churn=10.0)
    np.testing.assert_array_equal(run(churn=10.0, s_tmin=1e6, s_tmax=1e9), plain)
    np.testing.assert_array_equal(run(churn=10.0, s_tmin=0.0, s_tmax=1e9), churned)
    upper = run(churn=10.0, s_tmin=float(np.median(path)), s_tmax=1e9)
    assert np.abs(upper - plain).max() > 1e-3 and np.abs(upper - churned).max() > 1e-3


# --- a tiny network trained with each process on a 2-D Gaussian mixture ---------------------------------

CENTRES = np.array([[-0.6, -0.6], [0.6, -0.4], [0.0, 0.7]])


def mixture(key, n):
    k1, k2 = jax.random.split(key)
    return jnp.float32(CENTRES)[jax.random.randint(k1, (n,), 0, 3)] + 0.1 * jax.random.normal(k2, (n, 2))


def mlp_init(key, width=128):
    sizes = [(2 + 16, width), (width, width), (width, width), (width, 2)]
    keys = jax.random.split(key, len(sizes))
    return [(jax.random.normal(k, s) * np.sqrt(1.0 / s[0]), jnp.zeros(s[1])) for k, s in zip(keys, sizes)]


def mlp(params, x, t):
    freqs = jnp.exp(jnp.linspace(0.0, 5.0, 8))
    h = jnp.concatenate([x, jnp.sin(t[:, None] / 1000 * freqs), jnp.cos(t[:, None] / 1000 * freqs)], -1)
    for w, b in params[:-1]:
        h = jax.nn.silu(h @ w + b)
    return h @ params[-1][0] + params[-1][1]


def mmd(x, y, scales=(0.05, 0.2, 0.8)):
    """The squared MMD with a sum of Gaussian kernels (biased V-statistic)."""
    def k(a, b):
        d = jnp.sum((a[:, None] - b[None]) ** 2, -1)
        return sum(jnp.exp(-d / (2 * s ** 2)) for s in scales)
    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


RECIPES = {"vp": (P.Continuous("vp", "cosine"), "v", "uniform", "none", "dpmpp2m"),
           "edm": (P.Continuous("edm"), "F", "lognormal", "edm", "heun"),
           "flow": (P.Continuous("flow"), "velocity", "logit_normal", "none", "heun")}


@pytest.mark.parametrize("name", RECIPES)
def test_a_tiny_network_learns_a_mixture_with_each_process(name):
    proc, prediction, sampling, weighting, sampler = RECIPES[name]
    d = ml_collections.ConfigDict(dict(time_sampling=sampling, loss_weight=weighting, logit_mean=0.0, logit_std=1.0,
                                       p_mean=-1.2, p_std=1.2, sigma_data=0.5, min_snr_gamma=5.0, sigmoid_bias=0.0))

    def loss(params, key):
        k1, k2, k3 = jax.random.split(key, 3)
        x0 = mixture(k1, 256)
        t = P.sample_levels(proc, d, k2, 256)
        noise = jax.random.normal(k3, x0.shape)
        x, tin = P.network_inputs(proc, P.q_sample(proc, x0, t, noise), t)
        err = jnp.sum((mlp(params, x, tin) - P.training_target(proc, prediction, x0, t, noise)) ** 2, -1)
        return jnp.mean(err * P.loss_weight(proc, d, prediction, t))

    opt = optax.adam(5e-4)
    params = mlp_init(jax.random.PRNGKey(0))

    @jax.jit
    def train(params):
        def step(carry, key):
            params, state = carry
            g = jax.grad(loss)(params, key)
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), None
        return jax.lax.scan(step, (params, opt.init(params)), jax.random.split(jax.random.PRNGKey(1), 3000))[0][0]

    params = train(params)

    def model_fn(x, level):
        xin, tin = P.network_inputs(proc, x, level)
        return P.to_x0_eps(proc, prediction, x, level, mlp(params, xin, tin))

    path = samplers.sampler_path(proc, sampler, 30)
    samples = samplers.sample(proc, model_fn, (1000, 2), jax.random.PRNGKey(2), sampler, path, clip=False)
    data, again = mixture(jax.random.PRNGKey(3), 1000), mixture(jax.random.PRNGKey(4), 1000)
    floor, got = mmd(data, again), mmd(samples, data)
    assert got < 3 * floor + 2e-3, (got, floor)
    assert mmd(jax.random.normal(jax.random.PRNGKey(5), (1000, 2)) * 0.6, data) > 10 * got  # the test can fail


@pytest.mark.parametrize("name", ["discrete", "vp_cosine", "edm", "flow"])
def test_model_calls_counts_what_each_sampler_really_calls(name):
    """samplers.model_calls (the x axis of the FID-against-calls tables) against a counter the jitted walk
    bumps on every model call it makes: Heun skips its correction on the last step and from alpha = 0 or
    above its sigma limit, so 10 Heun steps are 18 calls on flow's and DDPM's grids and 19 on EDM's."""
    proc, calls = PROCESSES[name], []
    exact = exact_denoiser(proc)

    def counted(x, level):
        jax.debug.callback(lambda: calls.append(1))
        return exact(x, level)
    for sampler, steps in [("heun", 10), ("heun", 4), ("euler", 7), ("dpmpp2m", 6)]:
        calls.clear()
        path = samplers.sampler_path(proc, sampler, steps)
        jax.block_until_ready(samplers.sample(proc, counted, (2, 4), jax.random.PRNGKey(0), sampler, path, clip=False))
        jax.effects_barrier()
        assert len(calls) == samplers.model_calls(proc, sampler, path), (sampler, steps)
    expected = {"discrete": 18, "vp_cosine": 18, "edm": 19, "flow": 18}[name]
    assert samplers.model_calls(proc, "heun", samplers.sampler_path(proc, "heun", 10)) == expected
