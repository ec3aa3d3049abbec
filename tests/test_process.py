"""jgen.diffusion.process against float64 NumPy: each process's alpha and sigma, its log-SNR and inverse,
every training target and its conversion back to (x0, eps), the time samplers and every loss weight."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from jgen.diffusion import process as P
from jgen.diffusion import schedules as S

B0, B1 = 0.1, 20.0
PROCESSES = {"vp_linear": P.Continuous("vp", "linear", B0, B1), "vp_cosine": P.Continuous("vp", "cosine"),
             "edm": P.Continuous("edm"), "flow": P.Continuous("flow")}
LEVELS = {"vp_linear": [0.01, 0.1, 0.4, 0.8, 0.99], "vp_cosine": [0.01, 0.1, 0.4, 0.8, 0.99],
          "edm": [0.005, 0.1, 1.0, 10.0, 70.0], "flow": [0.01, 0.1, 0.4, 0.8, 0.99]}


def alpha_sigma_np(name, t):
    """The papers' formulas in float64, with their time derivatives (alpha', sigma')."""
    t = np.asarray(t, np.float64)
    if name == "vp_linear":  # Song et al. 2021, eq. 33: log alpha = -(b0 t + (b1 - b0) t^2 / 2) / 2
        a = np.exp(-0.5 * (B0 * t + 0.5 * (B1 - B0) * t ** 2))
        da = -0.5 * (B0 + (B1 - B0) * t) * a
    elif name == "vp_cosine":  # Nichol & Dhariwal eq. 17, alpha^2 = f(t) / f(0)
        s, f = 0.008, lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2)
        a = f(t) / f(0)
        da = -np.sin((t + s) / (1 + s) * np.pi / 2) * np.pi / 2 / (1 + s) / f(0)
    elif name == "edm":
        return np.ones_like(t), t, np.zeros_like(t), np.ones_like(t)
    else:
        return 1 - t, t, -np.ones_like(t), np.ones_like(t)
    sig = np.sqrt(1 - a ** 2)
    return a, sig, da, -a * da / sig


@pytest.mark.parametrize("name", PROCESSES)
def test_alpha_sigma_log_snr_and_inverse(name):
    proc, t = PROCESSES[name], np.array(LEVELS[name])
    a, s, da, ds = alpha_sigma_np(name, t)
    got = [np.asarray(v, np.float64) for v in P.alpha_sigma(proc, jnp.float32(t))]
    np.testing.assert_allclose(got, [a, s], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(P.derivatives(proc, jnp.float32(t))), [da, ds], rtol=1e-3, atol=1e-5)
    lam = np.log(a ** 2 / s ** 2)
    np.testing.assert_allclose(np.asarray(P.log_snr(proc, jnp.float32(t))), lam, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(P.level_of(proc, jnp.float32(lam))), t, rtol=1e-3, atol=1e-5)


def test_discrete_process_reads_the_tables():
    betas = S.linear_betas(1000)
    sched, abar = S.make_schedule(betas), np.cumprod(1 - betas)
    t = np.array([-1, 0, 10, 999])
    a, s = (np.asarray(v) for v in P.alpha_sigma(sched, jnp.asarray(t)))
    np.testing.assert_allclose(a, np.append(1.0, np.sqrt(abar[t[1:]])), rtol=1e-6)
    np.testing.assert_allclose(s, np.append(0.0, np.sqrt(1 - abar[t[1:]])), rtol=1e-5)


def targets_np(name, prediction, x0, eps, t):
    a, s, da, ds = (v[:, None] for v in alpha_sigma_np(name, t))
    if prediction == "F":  # Karras et al. Table 1 with sigma_data = 0.5
        sd = 0.5
        c_skip, c_out = sd ** 2 / (s ** 2 + sd ** 2), s * sd / np.sqrt(s ** 2 + sd ** 2)
        return (x0 - c_skip * (x0 + s * eps)) / c_out
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0, "velocity": da * x0 + ds * eps}[prediction]


CASES = [(n, p) for n in PROCESSES for p in ("eps", "x0", "v", "velocity")] + [("edm", "F")]


@pytest.mark.parametrize("name,prediction", CASES)
def test_targets_and_their_conversion_to_x0_eps(name, prediction):
    proc, t = PROCESSES[name], np.array(LEVELS[name])
    rng = np.random.default_rng(0)
    x0, eps = rng.uniform(-1, 1, (2, len(t), 6))
    a, s = alpha_sigma_np(name, t)[:2]
    xt = a[:, None] * x0 + s[:, None] * eps
    want = targets_np(name, prediction, x0, eps, t)
    target = P.training_target(proc, prediction, jnp.float32(x0), jnp.float32(t), jnp.float32(eps))
    np.testing.assert_allclose(np.asarray(target), want, rtol=1e-4, atol=2e-5)
    x0_hat, eps_hat = P.to_x0_eps(proc, prediction, jnp.float32(xt), jnp.float32(t), jnp.float32(want))
    scale = np.maximum(1.0, np.abs(xt))  # EDM's x_t reaches 70: float32 keeps ~7 digits of it
    np.testing.assert_allclose(np.asarray(x0_hat) / scale, x0 / scale, atol=5e-5)
    np.testing.assert_allclose(np.asarray(eps_hat) / scale, eps / scale, atol=5e-5)


def config(**kw):
    d = dict(loss_weight="none", min_snr_gamma=5.0, sigma_data=0.5, sigmoid_bias=-1.0, time_sampling="uniform",
             logit_mean=0.3, logit_std=0.8, p_mean=-1.2, p_std=1.2)
    return ml_collections.ConfigDict({**d, **kw})


def dlam_dt_np(name, t):
    a, s, da, ds = alpha_sigma_np(name, t)
    return 2 * (da / a - ds / s)


def density_np(name, d, t):
    """p(lambda) of the training levels: p(level) / |d lambda / d level| (float64, scipy)."""
    if name == "edm":  # ln sigma ~ N(p_mean, p_std), lambda = -2 ln sigma
        return stats.norm.pdf(-2 * np.log(t), -2 * d.p_mean, 2 * d.p_std)
    if d.time_sampling == "uniform":
        p_t = np.full_like(t, 1.0 / (1 - (1e-3 if name.startswith("vp") else 2e-3)))
    else:
        p_t = stats.norm.pdf(np.log(t / (1 - t)), d.logit_mean, d.logit_std) / (t * (1 - t))
    return p_t / np.abs(dlam_dt_np(name, t))


WEIGHT_CASES = ([(n, p, w, "uniform") for n in ("vp_linear", "vp_cosine", "flow") for p in ("eps", "x0", "v", "velocity")
                 for w in ("min_snr", "sigmoid", "elbo")]
                + [("flow", "velocity", w, "logit_normal") for w in ("sigmoid", "elbo", "edm")]
                + [("edm", p, w, "lognormal") for p in ("F", "eps", "x0") for w in ("edm", "min_snr", "sigmoid", "elbo")])


@pytest.mark.parametrize("name,prediction,weighting,sampling", WEIGHT_CASES)
def test_loss_weight_is_the_papers_weight_on_the_noise_error(name, prediction, weighting, sampling):
    """weight * |prediction error|^2 equals the paper's weight times the eps error for the same wrong x0:
    min-SNR min(SNR, 5) / SNR; EDM lambda(sigma) sigma^2; Kingma & Gao w(lambda) / p(lambda)."""
    proc, t, d = PROCESSES[name], np.array(LEVELS[name]), config(loss_weight=weighting, time_sampling=sampling)
    rng = np.random.default_rng(1)
    x0, eps, x0_hat = rng.uniform(-1, 1, (3, len(t), 6))
    a, s = (v[:, None] for v in alpha_sigma_np(name, t)[:2])
    xt = a * x0 + s * eps
    eps_hat = (xt - a * x0_hat) / s  # the noise that the same wrong x0 implies
    pred_err = targets_np(name, prediction, x0_hat, eps_hat, t) - targets_np(name, prediction, x0, eps, t)
    eps_err = np.sum((eps_hat - eps) ** 2, axis=1)
    lam, snr = np.log(a[:, 0] ** 2 / s[:, 0] ** 2), a[:, 0] ** 2 / s[:, 0] ** 2
    want = {"min_snr": np.minimum(snr, 5.0) / snr,
            "edm": (s[:, 0] ** 2 / a[:, 0] ** 2 + 0.25) / 0.25,
            "sigmoid": 1 / (1 + np.exp(lam + 1.0)) / density_np(name, d, t),
            "elbo": 1 / density_np(name, d, t)}[weighting] * eps_err
    w = np.asarray(P.loss_weight(proc, d, prediction, jnp.float32(t)), np.float64)
    np.testing.assert_allclose(w * np.sum(pred_err ** 2, axis=1), want, rtol=2e-3)
    if (name, prediction, weighting) == ("edm", "F", "edm"):
        np.testing.assert_allclose(w, 1.0, rtol=1e-5)  # lambda c_out^2 = 1: EDM's loss is F's plain MSE


@pytest.mark.parametrize("name,sampling", [("flow", "uniform"), ("vp_linear", "uniform"), ("flow", "logit_normal"),
                                           ("edm", "lognormal")])
def test_time_sampling_draws_the_stated_distribution(name, sampling):
    proc, d = PROCESSES[name], config(time_sampling=sampling)
    t = np.asarray(P.sample_levels(proc, d, jax.random.PRNGKey(0), 20000), np.float64)
    lo, hi = 1e-3, (1.0 if name.startswith("vp") else 1 - 1e-3)
    if sampling == "uniform":
        assert stats.kstest(t, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    elif sampling == "logit_normal":
        assert stats.kstest(np.log(t / (1 - t)), stats.norm(0.3, 0.8).cdf).pvalue > 1e-3
    else:
        assert stats.kstest(np.log(t), stats.norm(-1.2, 1.2).cdf).pvalue > 1e-3
    density = np.asarray(P.level_density(proc, d, jnp.float32(np.array([0.2, 0.5, 0.9]))))
    want = {"uniform": np.full(3, 1 / (hi - lo)),
            "logit_normal": stats.norm.pdf(np.log([0.25, 1.0, 9.0]), 0.3, 0.8) / (np.array([0.2, 0.5, 0.9]) *
                                                                                   np.array([0.8, 0.5, 0.1])),
            "lognormal": stats.lognorm.pdf([0.2, 0.5, 0.9], 1.2, scale=math.exp(-1.2))}[sampling]
    np.testing.assert_allclose(density, want, rtol=1e-4)


def test_grids_are_the_papers():
    edm = P.grid(PROCESSES["edm"], "karras", 18)  # EDM eq. 5, rho = 7
    i = np.arange(18)
    want = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(edm, np.append(want, 0.0), rtol=1e-4)
    np.testing.assert_allclose(P.grid(PROCESSES["flow"], "uniform", 10), np.linspace(1, 0, 11), atol=1e-12)
    vp = PROCESSES["vp_linear"]
    g = P.grid(vp, "logsnr", 12)
    assert g[0] == 1.0 and g[-1] == 0.0 and g[-2] == pytest.approx(1e-3, rel=1e-3)
    lam = np.asarray(P.log_snr(vp, jnp.float32(g[:-1])), np.float64)
    np.testing.assert_allclose(np.diff(lam), np.full(11, (lam[-1] - lam[0]) / 11), rtol=2e-3)


@pytest.mark.parametrize("weighting", ["sigmoid", "elbo"])
def test_discrete_kingma_gao_weights_use_the_lambda_tables_slope(weighting):
    """On DDPM's levels, p(lambda) = (1 / T) / |d lambda / dt| with the slope of the lambda table (central
    differences, one-sided at both ends): finite and positive at every level, T-1 included."""
    betas = S.cosine_betas(1000)
    abar = np.cumprod(1 - betas)
    lam = np.log(abar / (1 - abar))
    t = np.array([0, 1, 500, 998, 999])
    d = config(loss_weight=weighting)
    w = np.asarray(P.loss_weight(S.make_schedule(betas), d, "eps", jnp.asarray(t)), np.float64)
    p_lam = (1 / 1000) / np.abs(np.gradient(lam)[t])
    want = (1 / (1 + np.exp(lam[t] + 1.0)) if weighting == "sigmoid" else 1.0) / p_lam
    np.testing.assert_allclose(w, want, rtol=2e-3)


def test_flow_training_levels_stay_inside_the_open_interval():
    """Drawn levels never reach t = 0 or 1, where the SNR-based weights are 0/0 or infinite."""
    proc = PROCESSES["flow"]
    for sampling in ("uniform", "logit_normal"):
        d = config(time_sampling=sampling, loss_weight="elbo", logit_std=4.0)
        t = P.sample_levels(proc, d, jax.random.PRNGKey(1), 200000)
        assert float(t.min()) >= 1e-3 - 1e-7 and float(t.max()) <= 1 - 1e-3 + 1e-7  # float32 of the bounds
        assert np.all(np.isfinite(np.asarray(P.loss_weight(proc, d, "x0", t))))
