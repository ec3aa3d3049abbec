"""Diffusion likelihoods against closed forms: for Gaussian data the exact denoiser is known, the
probability-flow ODE transports N(mu, Sigma + sigma^2 I) exactly, and its likelihood must give the
analytic Gaussian NLL; the variational bound must lie just above it. The bound's terms are checked
against float64 NumPy/SciPy formulas."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from helpers import jgen, one_line_error, tiny_gan_args
from jgen.diffusion import likelihood as L
from jgen.diffusion import process as P
from jgen.diffusion import schedules as S


def test_normal_kl_against_the_textbook_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(2, 50))
    s1, s2 = rng.uniform(0.1, 2.0, size=(2, 50))
    want = np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    got = L.normal_kl(jnp.float32(m1), jnp.float32(2 * np.log(s1)), jnp.float32(m2), jnp.float32(2 * np.log(s2)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_discretised_decoder_integrates_each_bin_and_sums_to_one():
    k = np.arange(256)
    x = k / 127.5 - 1
    mean, scale = 0.1, 0.3
    edges = np.concatenate([[-np.inf], (k[:-1] + 0.5) / 127.5 - 1, [np.inf]])
    want = np.log(np.diff(norm.cdf(edges, loc=mean, scale=scale)))  # float64, the end bins open
    got = L.discretised_gaussian_log_likelihood(jnp.float32(x), jnp.float32(mean), jnp.float32(np.log(scale)))
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-5)
    assert abs(np.exp(np.asarray(got, np.float64)).sum() - 1) < 1e-4


def gaussian_case(dim=16, seed=0):
    """mu, Sigma (full, eigenvalues 0.002..0.02) and its exact denoiser model_fn(x_t, t) -> (E[x0|x_t], E[eps|x_t])."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    lam = rng.uniform(0.002, 0.02, dim)
    mu = rng.uniform(-0.3, 0.3, dim)
    sched = S.make_schedule(S.linear_betas(1000))
    qj, lamj, muj = jnp.float32(q), jnp.float32(lam), jnp.float32(mu)

    def model_fn(x, t):
        a, s = P.alpha_sigma(sched, t)
        a, s = a.reshape(-1, 1), s.reshape(-1, 1)
        r = x.reshape(x.shape[0], -1) - a * muj
        inv = ((r @ qj) / (a ** 2 * lamj + s ** 2)) @ qj.T  # (a^2 Sigma + s^2 I)^-1 r
        eps = s * inv
        x0 = muj + a * ((inv @ qj) * lamj) @ qj.T
        return x0.reshape(x.shape), eps.reshape(x.shape)

    def log_density(x, extra=0.0):  # float64, N(mu, Sigma + extra I) per image
        z = (x.reshape(len(x), -1) - mu) @ q
        return -0.5 * (np.sum(z ** 2 / (lam + extra), 1) + np.sum(np.log(2 * np.pi * (lam + extra))))

    draw = lambda n, s: (mu + (rng.normal(size=(n, dim)) * np.sqrt(lam)) @ q.T).reshape(n, 4, 4, 1)
    return sched, model_fn, log_density, draw


@pytest.mark.parametrize("exact", [False, True])
def test_probability_flow_likelihood_equals_the_gaussian_density(exact):
    sched, model_fn, log_density, draw = gaussian_case()
    x = draw(64 if exact else 1024, 1)  # Hutchinson's error is ~1.8 nats per image here: average many
    got = jax.jit(lambda x, k: L.ode_log_likelihood(sched, model_fn, x, k, steps=60, exact=exact))(
        jnp.float32(x), jax.random.PRNGKey(0))
    want = log_density(x)
    if exact:  # per image, against the density the ODE starts from: the data plus the first level's noise
        beta0 = S.linear_betas(1000)[0]
        np.testing.assert_allclose(np.asarray(got, np.float64), log_density(x, beta0 / (1 - beta0)), rtol=1e-3)
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0.02)
    else:  # Hutchinson: unbiased, so the mean over images
        assert abs(np.mean(got) - np.mean(want)) < 0.01 * abs(np.mean(want)), (np.mean(got), np.mean(want))
        assert np.std(np.asarray(got) - want) > 1e-3  # a real probe, not the exact trace


def test_variational_bound_is_an_upper_bound_on_8_bit_gaussian_data():
    """With sigma_t^2 = beta_t the bound is within a few percent of the analytic NLL; with the posterior
    variance it is looser, by as much as its KL terms' closed-form expectation says (the data's spread
    dwarfs the noise of the first levels, where that variance is too small)."""
    sched, model_fn, log_density, draw = gaussian_case(seed=1)
    x = np.clip(np.round((draw(256, 2) + 1) * 127.5), 0, 255) / 127.5 - 1  # 8-bit data
    d = x[0].size
    # the analytic NLL of the 8-bit values: the density times each bin's volume (bins << the data's spread)
    exact_bpd = np.mean(-(log_density(x) + d * np.log(1 / 127.5)) / (d * np.log(2)))
    large = jax.jit(lambda x, k: L.vlb_bpd(sched, model_fn, x, k, "large", False))(jnp.float32(x), jax.random.PRNGKey(1))
    assert exact_bpd < np.mean(large) < 1.05 * exact_bpd, (np.mean(large), exact_bpd)
    ode = jax.jit(lambda x, k: L.ode_bpd(sched, model_fn, x, k, steps=60))(jnp.float32(x), jax.random.PRNGKey(2))
    assert abs(np.mean(ode) - exact_bpd) < 0.01 * exact_bpd, (np.mean(ode), exact_bpd)

    prior, kl, decoder = jax.jit(lambda x, k: L.vlb_terms(sched, model_fn, x, k, "small", False))(
        jnp.float32(x), jax.random.PRNGKey(1))
    small_bpd = np.mean(prior + kl.sum(1) + decoder) / (d * np.log(2))
    assert small_bpd > np.mean(large)
    # E KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) = coef1_t^2 tr Cov(x0 | x_t) / (2 posterior variance_t), float64
    rng = np.random.default_rng(1)
    np.linalg.qr(rng.normal(size=(d, d)))
    lam = rng.uniform(0.002, 0.02, d)  # Sigma's eigenvalues, as gaussian_case(seed=1) drew them
    betas = S.linear_betas(1000)
    abar = np.cumprod(1 - betas)
    abar_prev = np.append(1.0, abar[:-1])
    t = np.arange(1, 1000)
    coef1, post_var = betas * np.sqrt(abar_prev) / (1 - abar), betas * (1 - abar_prev) / (1 - abar)
    cov = np.sum(lam * (1 - abar[t, None]) / (abar[t, None] * lam + 1 - abar[t, None]), axis=1)
    expected_kl = np.sum(coef1[t] ** 2 * cov / (2 * post_var[t]))
    assert abs(np.mean(np.sum(np.asarray(kl, np.float64), 1)) - expected_kl) < 0.03 * expected_kl


def test_jgen_eval_nll_reports_both_and_refuses_other_families(tmp_path, capsys, straight_run):
    out = tmp_path / "nll.json"
    stdout, _ = jgen(capsys, "eval", "--workdir", straight_run, "--metrics", "nll", "--num", "8", "--batch", "4",
                     "--nll-steps", "2", "--out", out)
    report = json.loads(out.read_text())
    assert report["num_nll"] == 8 and "bits/dim" in stdout and "FID" not in stdout
    for method in ("vlb", "ode"):
        assert math.isfinite(report[f"nll_{method}_bpd"]) and report[f"nll_{method}_bpd"] > 0
    gan = tmp_path / "gan"
    jgen(capsys, *tiny_gan_args(gan, "train.steps=1"))
    _, err = jgen(capsys, "eval", "--workdir", gan, "--metrics", "nll", code=2)
    one_line_error(err, "diffusion")
