"""beta-VAE: its terms against float64 references, the capacity schedule, and the PyTorch twin."""

from functools import partial

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from helpers import random_variables, rel_err
from jgen.families.vae import bernoulli_log_likelihood, capacity, gaussian_log_likelihood, kl_normal
from jgen.nn.vae import Decoder, Encoder


def test_kl_equals_closed_form_and_monte_carlo():
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(size=(3, 4)), rng.normal(scale=0.5, size=(3, 4))
    var = np.exp(logvar)
    # KL(N(m, v) || N(0, 1)) = 0.5 (m^2 + v - 1 - log v), per dimension
    closed = 0.5 * (mean ** 2 + var - 1.0 - np.log(var))
    got = np.asarray(kl_normal(jnp.float32(mean), jnp.float32(logvar)), np.float64)
    assert rel_err(got, closed) < 1e-5
    # E_q[log q(z) - log p(z)] by sampling, in float64
    z = mean + np.sqrt(var) * rng.normal(size=(400000, 3, 4))
    log_q = -0.5 * ((z - mean) ** 2 / var + np.log(2 * np.pi * var))
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
    mc = np.mean(log_q - log_p, axis=0)
    stderr = np.std(log_q - log_p, axis=0) / np.sqrt(400000)
    assert np.all(np.abs(mc - got) < 5 * stderr + 1e-6)


def test_log_likelihoods_equal_float64_references():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(2, 3, 3, 1))
    logits, mean = rng.normal(size=x.shape) * 3, rng.normal(size=x.shape)
    p = (x + 1) / 2
    sig = 1 / (1 + np.exp(-logits))
    bern = np.sum(p * np.log(sig) + (1 - p) * np.log(1 - sig), axis=(1, 2, 3))
    assert rel_err(bernoulli_log_likelihood(jnp.float32(logits), jnp.float32(x)), bern) < 1e-5
    sigma = 0.3
    gauss = np.sum(-0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi)), axis=(1, 2, 3))
    assert rel_err(gaussian_log_likelihood(jnp.float32(mean), jnp.float32(x), np.log(sigma)), gauss) < 1e-5


def test_capacity_rises_linearly_then_holds():
    v = ml_collections.ConfigDict(dict(capacity_max=25.0, capacity_steps=1000))
    got = [float(capacity(v, s)) for s in (0, 100, 500, 1000, 5000)]
    np.testing.assert_allclose(got, [0.0, 2.5, 12.5, 25.0, 25.0], rtol=1e-6)


@pytest.mark.parametrize("size,channels", [(28, 1), (64, 3)])
def test_encoder_and_decoder_equal_pytorch_twin(size, channels):
    torch = pytest.importorskip("torch")
    from benchmarks.twins.vae_torch import TorchDecoder, TorchEncoder, copy_decoder, copy_encoder

    rng = np.random.default_rng(size)
    latent = 6
    x = jnp.float32(rng.uniform(-1, 1, size=(3, size, size, channels)))
    z = jnp.float32(rng.normal(size=(3, latent)))
    enc, dec = Encoder(size, latent), Decoder(size, channels)
    ev = random_variables(enc, rng, x)
    dv = random_variables(dec, rng, z)
    te, td = TorchEncoder(size, channels, latent), TorchDecoder(size, channels, latent)
    copy_encoder(te, ev["params"])
    copy_decoder(td, dv["params"])
    with torch.no_grad():
        m_ref, lv_ref = te(torch.from_numpy(np.array(x)).permute(0, 3, 1, 2))
        out_ref = td(torch.from_numpy(np.array(z))).permute(0, 2, 3, 1).numpy()
    m, lv = jax.jit(partial(enc.apply))(ev, x)
    assert rel_err(m, m_ref.numpy()) < 1e-4 and rel_err(lv, lv_ref.numpy()) < 1e-4
    assert rel_err(jax.jit(dec.apply)(dv, z), out_ref) < 1e-4
