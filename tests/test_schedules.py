"""Diffusion formulas against float64 NumPy written from the papers' equations."""

import numpy as np
import jax.numpy as jnp
import ml_collections
import pytest

from jgen.diffusion import process as P
from jgen.diffusion import schedules as S

T = 1000


def ref_tables(betas):
    """Ho et al. 2020: alpha_t = 1 - beta_t, abar_t = prod alpha_s, eq. 7 for the posterior."""
    betas = np.asarray(betas, np.float64)
    abar = np.array([np.prod(1 - betas[: t + 1]) for t in range(len(betas))])
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    var = (1 - abar_prev) / (1 - abar) * betas
    c1 = np.sqrt(abar_prev) * betas / (1 - abar)
    c2 = np.sqrt(1 - betas) * (1 - abar_prev) / (1 - abar)
    return abar, abar_prev, var, c1, c2


@pytest.fixture(scope="module")
def sched():
    return S.make_schedule(S.linear_betas(T))


def test_linear_betas_match_paper():
    b = S.linear_betas(T)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(b), (0.02 - 1e-4) / (T - 1), rtol=1e-9)


def test_cosine_alpha_bar_matches_eq17():
    s = 0.008
    f = lambda t: np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2
    abar = np.cumprod(1 - S.cosine_betas(T))
    t = np.arange(1, T + 1)
    # eq. 17 holds exactly wherever beta was not clipped at 0.999 (all but the last few steps)
    np.testing.assert_allclose(abar[:-5], (f(t) / f(0))[:-5], rtol=1e-9)
    assert S.cosine_betas(T).max() <= 0.999


def test_tables_match_reference(sched):
    abar, abar_prev, var, c1, c2 = ref_tables(S.linear_betas(T))
    np.testing.assert_allclose(sched.alphas_cumprod, abar, rtol=1e-5)
    np.testing.assert_allclose(sched.alphas_cumprod_prev, abar_prev, rtol=1e-5)
    np.testing.assert_allclose(sched.posterior_variance, var, rtol=1e-5)
    np.testing.assert_allclose(sched.posterior_mean_coef1, c1, rtol=1e-5)
    np.testing.assert_allclose(sched.posterior_mean_coef2, c2, rtol=1e-5)


def _data(seed=0, b=4):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, (b, 5, 5, 2))
    noise = rng.standard_normal((b, 5, 5, 2))
    t = rng.integers(0, T, b)
    return x0, noise, t


def test_q_sample_and_posterior(sched):
    abar, _, var, c1, c2 = ref_tables(S.linear_betas(T))
    x0, noise, t = _data()
    xt = P.q_sample(sched, jnp.float32(x0), jnp.asarray(t), jnp.float32(noise))
    ref_xt = np.sqrt(abar[t])[:, None, None, None] * x0 + np.sqrt(1 - abar[t])[:, None, None, None] * noise
    np.testing.assert_allclose(xt, ref_xt, atol=1e-5)
    mean, v, logv = S.q_posterior(sched, jnp.float32(x0), jnp.float32(ref_xt), jnp.asarray(t))
    e = lambda a: a[t][:, None, None, None]
    np.testing.assert_allclose(mean, e(c1) * x0 + e(c2) * ref_xt, atol=1e-5)
    np.testing.assert_allclose(v[:, 0, 0, 0], var[t], rtol=1e-5)
    ref_logv = np.log(np.concatenate([[var[1]], var[1:]]))[t]
    np.testing.assert_allclose(logv[:, 0, 0, 0], ref_logv, rtol=1e-5)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_targets_and_inversions(sched, prediction):
    abar = ref_tables(S.linear_betas(T))[0]
    x0, noise, t = _data(1)
    a, s = np.sqrt(abar[t])[:, None, None, None], np.sqrt(1 - abar[t])[:, None, None, None]
    xt = a * x0 + s * noise
    ref_target = {"eps": noise, "x0": x0, "v": a * noise - s * x0}[prediction]
    target = P.training_target(sched, prediction, jnp.float32(x0), jnp.asarray(t), jnp.float32(noise))
    np.testing.assert_allclose(target, ref_target, atol=1e-5)
    # A perfect prediction must give back the true (x0, eps) pair.
    x0_hat, eps_hat = P.to_x0_eps(sched, prediction, jnp.float32(xt), jnp.asarray(t), jnp.float32(ref_target))
    tol = 2e-3 if prediction == "eps" else 1e-4  # eps -> x0 divides by sqrt(abar), ~0.006 at t=999
    np.testing.assert_allclose(x0_hat, x0, atol=tol)
    np.testing.assert_allclose(eps_hat, noise, atol=tol)


def test_simple_loss():
    a, b = np.random.default_rng(2).standard_normal((2, 3, 4, 4, 1))
    assert float(S.simple_loss(jnp.float32(a), jnp.float32(b))) == pytest.approx(np.mean((a - b) ** 2), rel=1e-5)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weight_turns_every_error_into_capped_x0_error(prediction):
    """Hang et al. 2023: weight * |prediction error|^2 = min(SNR, gamma) |x0 error|^2 for the same x_t."""
    betas = S.cosine_betas(1000)
    abar = np.cumprod(1 - betas)
    rng = np.random.default_rng(3)
    t = np.array([0, 10, 200, 500, 900, 999])
    x0, noise, x0_hat = rng.uniform(-1, 1, (3, len(t), 4, 4, 1))
    a, s = np.sqrt(abar[t])[:, None, None, None], np.sqrt(1 - abar[t])[:, None, None, None]
    xt = a * x0 + s * noise
    eps_hat = (xt - a * x0_hat) / s  # the eps and v the same wrong x0 implies
    err = {"eps": eps_hat - noise, "x0": x0_hat - x0, "v": (a * eps_hat - s * x0_hat) - (a * noise - s * x0)}
    d = ml_collections.ConfigDict(dict(loss_weight="min_snr", min_snr_gamma=5.0))
    w = np.asarray(P.loss_weight(S.make_schedule(betas), d, prediction, jnp.asarray(t)), np.float64)
    lhs = w * np.sum(err[prediction] ** 2, axis=(1, 2, 3))
    rhs = np.minimum(abar[t] / (1 - abar[t]), 5.0) * np.sum(err["x0"] ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(lhs, rhs, rtol=2e-4)


def test_weighted_simple_loss():
    a, b = np.random.default_rng(2).standard_normal((2, 3, 4, 4, 1))
    w = np.array([0.5, 2.0, 0.0])
    want = np.mean(w[:, None, None, None] * (a - b) ** 2)
    assert float(S.simple_loss(jnp.float32(a), jnp.float32(b), jnp.float32(w))) == pytest.approx(want, rel=1e-5)


def test_schedule_from_config_rejects_unknown():
    from jgen.errors import JgenError

    cfg = ml_collections.ConfigDict(dict(schedule="quadratic", timesteps=10, beta_start=1e-4, beta_end=0.02))
    with pytest.raises(JgenError, match="quadratic"):
        S.schedule_from_config(cfg)
