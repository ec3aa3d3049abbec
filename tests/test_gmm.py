"""The VAE's ex-post prior: EM against the mixture that made the data, sampling against the mixture's
moments, both in float64 NumPy/SciPy."""

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jgen.errors import JgenError
from jgen.families.gmm import fit_gmm, gmm_log_likelihood, gmm_sample

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0], [6.0, 1.0], [-2.0, 7.0]])
COVS = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.2], [-0.2, 1.5]], [[2.0, 0.0], [0.0, 0.3]]])


def draw_truth(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = rng.choice(3, size=n, p=WEIGHTS)
    return np.stack([rng.multivariate_normal(MEANS[j], COVS[j]) for j in k])


def scipy_log_likelihood(weights, means, covs, x):
    dens = sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(weights, means, covs))
    return np.log(dens)


def test_em_recovers_the_generating_mixture():
    x = draw_truth(6000)
    prior, history = fit_gmm(x, 3, seed=0)
    order = np.argsort(prior["means"][:, 0])[[1, 2, 0]]  # the truth's order: x ~ 0, 6, -2
    weights = np.exp(prior["log_weights"][order])
    means = prior["means"][order]
    covs = np.einsum("kij,klj->kil", prior["chol"][order], prior["chol"][order])
    np.testing.assert_allclose(weights, WEIGHTS, atol=0.02)
    np.testing.assert_allclose(means, MEANS, atol=0.08)
    np.testing.assert_allclose(covs, COVS, atol=0.12)
    # EM never lowers the likelihood, and its optimum is at least as likely as the truth (scipy's density)
    assert all(b >= a - 1e-9 for a, b in zip(history, history[1:]))
    fitted = scipy_log_likelihood(weights, means, covs, x).mean()
    assert fitted >= scipy_log_likelihood(WEIGHTS, MEANS, COVS, x).mean() - 1e-6
    np.testing.assert_allclose(gmm_log_likelihood(prior, x).mean(), fitted, rtol=1e-5)


def test_samples_have_the_mixture_moments():
    chol = np.linalg.cholesky(COVS)
    prior = {"log_weights": np.log(WEIGHTS).astype(np.float32), "means": MEANS.astype(np.float32),
             "chol": chol.astype(np.float32)}
    z = np.asarray(jax.jit(gmm_sample, static_argnums=2)(prior, jax.random.PRNGKey(0), 200_000), np.float64)
    mean = WEIGHTS @ MEANS
    second = np.einsum("k,kij->ij", WEIGHTS, COVS + np.einsum("ki,kj->kij", MEANS, MEANS))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(z.T), second - np.outer(mean, mean), atol=0.1)
    # the share of draws nearest each mean follows the weights (the clusters barely overlap)
    nearest = np.argmin(((z[:, None] - MEANS[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest) / len(z), WEIGHTS, atol=0.01)


def test_too_few_codes_is_one_line():
    with pytest.raises(JgenError, match="at least 10 latent codes"):
        fit_gmm(np.zeros((5, 2)), 10)
