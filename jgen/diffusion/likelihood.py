"""Negative log-likelihood of 8-bit images under a diffusion model, in bits per dimension, two ways:

- `vlb_bpd`: the variational bound of Ho et al. 2020, eq. 5: L_T + sum_{t>1} L_{t-1} + L_0, every
  one of the T terms evaluated (as improved-diffusion's calc_bpd_loop), the reverse process being the
  DDPM ancestral sampler's (its variance and x0 clipping). L_0 is the discretised Gaussian decoder
  on the 256 pixel values. An upper bound on the NLL of the 8-bit data.
- `ode_bpd`: the probability-flow ODE of Song et al. 2021 (appendix D), for every process
  (jgen.diffusion.process). In x~ = x / alpha and sigma~ = sigma / alpha it is dx~/dsigma~ =
  eps(alpha x~, level(sigma~)), integrated with classical RK4 on an even grid in log sigma~ from the
  lowest level to the top one (DDPM: levels 0 and T-1; vp [t_min, 1]; edm [sigma_min, sigma_max]; flow
  [t_min, 1 - t_min]), together with the divergence of its right-hand side; log p(x) = log N(x~_T; 0,
  (1 + sigma~_T^2) I) + the divergence integral (the prior of unit-variance data at the top level: VP's
  N(0, I) exactly, EDM's N(0, sigma_max^2 I) to 1e-4). The divergence is Hutchinson's estimate (one Rademacher probe per image, fixed along the
  path) or exact (a vector-Jacobian product per dimension: tiny images only). Pixels are uniformly
  dequantised, x = (k + u - 1/2) / 127.5 - 1, u ~ U[0, 1): an upper bound, in expectation, on the
  NLL of the 8-bit data.

Pixel value k in {0..255} sits at x = k / 127.5 - 1 (jgen.images.from_uint8), so a bin is 2/255
wide and bits/dim = (nats/dim) / log 2 on that discrete space; both numbers are comparable to the
bits/dim that the DDPM, score_sde and VDM papers report for CIFAR-10 (3.70, 2.99, 2.65).

Both take `model_fn(x, t) -> (x0, eps)` (jgen's samplers' interface; t integer for the bound,
fractional for the ODE), so they never know the network, and run per image: jit them with the batch
sharded over the mesh.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import process as P
from jgen.diffusion.schedules import Schedule, q_posterior, reverse_log_variance

BIN = 1.0 / 127.5  # the spacing of 8-bit values on [-1, 1]


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (logvar2 - logvar1 + jnp.exp(logvar1 - logvar2) + jnp.square(mean1 - mean2) * jnp.exp(-logvar2)
                  - 1.0)


def _std_normal_cdf(x):
    return 0.5 * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))


def discretised_gaussian_log_likelihood(x, mean, log_scale):
    """log P(x) per element for 8-bit values x in [-1, 1] (spacing 2/255) under N(mean, e^(2 log_scale))
    integrated over each value's bin (half-width 1/255); the end bins reach -inf and +inf (Ho et al.
    2020, eq. 13)."""
    inv = jnp.exp(-log_scale)
    upper = _std_normal_cdf(inv * (x - mean + BIN / 2))
    lower = _std_normal_cdf(inv * (x - mean - BIN / 2))
    log_upper = jnp.log(jnp.maximum(upper, 1e-12))  # the bin [-inf, x + 1/255] of x = -1
    log_one_minus_lower = jnp.log(jnp.maximum(1.0 - lower, 1e-12))  # [x - 1/255, inf] of x = 1
    middle = jnp.log(jnp.maximum(upper - lower, 1e-12))
    return jnp.where(x < -0.999, log_upper, jnp.where(x > 0.999, log_one_minus_lower, middle))


def _per_image(v):
    return jnp.sum(v.reshape(v.shape[0], -1), axis=1)


def vlb_terms(sched: Schedule, model_fn, x0, key, variance: str = "small", clip: bool = True):
    """(prior [B], kl [B, T], decoder [B]) in nats per image: L_T, L_{t-1} at index t = 1..T-1 (index 0
    holds L_0, the decoder's negative log-likelihood), for 8-bit images x0 [B, H, W, C] in [-1, 1]."""
    T = sched.num_timesteps
    abar_T = sched.alphas_cumprod[T - 1]
    prior = _per_image(normal_kl(jnp.sqrt(abar_T) * x0, jnp.log1p(-abar_T), 0.0, 0.0))
    model_logvar = reverse_log_variance(sched, variance)  # the DDPM sampler's sigma_t^2

    def term(t, k):
        tb = jnp.full((x0.shape[0],), t, jnp.int32)
        xt = P.q_sample(sched, x0, tb, jax.random.normal(k, x0.shape, x0.dtype))
        x0_hat, _ = model_fn(xt, tb)
        if clip:
            x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
        mean_p = q_posterior(sched, x0_hat, xt, tb)[0]
        mean_q, _, logvar_q = q_posterior(sched, x0, xt, tb)
        kl = _per_image(normal_kl(mean_q, logvar_q, mean_p, model_logvar[t]))
        decoder = -_per_image(discretised_gaussian_log_likelihood(x0, mean_p, 0.5 * model_logvar[t]))
        return jnp.where(t == 0, decoder, kl)

    terms = jax.lax.map(lambda t: term(t, jax.random.fold_in(key, t)), jnp.arange(T))  # [T, B]
    return prior, terms.T[:, 1:], terms[0]


def vlb_bpd(sched: Schedule, model_fn, x0, key, variance: str = "small", clip: bool = True):
    """The variational bound in bits/dim per image [B] (x0: 8-bit images [B, H, W, C] in [-1, 1])."""
    prior, kl, decoder = vlb_terms(sched, model_fn, x0, key, variance, clip)
    return (prior + kl.sum(axis=1) + decoder) / (math.log(2.0) * np.prod(x0.shape[1:]))


def ode_log_likelihood(proc, model_fn, x, key, steps: int = 100, exact: bool = False):
    """log p(x) in nats per image [B] of continuous x [B, H, W, C] under the probability-flow ODE (see the
    module docstring), with `steps` RK4 steps (4 model calls each) in log sigma~ over P.level_bounds."""
    lam = P.log_snr(proc, jnp.array(P.level_bounds(proc), jnp.float32))
    u0, u1 = -0.5 * lam[0], -0.5 * lam[1]  # log sigma~ at the lowest and the top level
    d = int(np.prod(x.shape[1:]))
    probe = jax.random.rademacher(key, x.shape, jnp.float32).astype(x.dtype)

    def drift(xs, u):
        """dx~/du = sigma~ eps(alpha x~, level) at u = log sigma~ (dsigma~ = sigma~ du), the level whose
        log-SNR is -2u."""
        level = jnp.full((xs.shape[0],), P.level_of(proc, -2.0 * u))
        alpha = P.alpha_sigma(proc, level)[0].reshape((-1,) + (1,) * (xs.ndim - 1))
        return jnp.exp(u) * model_fn(alpha * xs, level)[1]

    def field(state, u):
        """(drift, its divergence [B]) at (x~, u). Reverse mode (v^T J from a VJP): jgen's CPU convolution
        forms define custom VJPs, which forward mode cannot differentiate."""
        out, pullback = jax.vjp(lambda y: drift(y, u), state[0])
        if exact:
            basis = jnp.eye(d, dtype=out.dtype).reshape((d,) + out.shape[1:])
            div = jax.lax.map(lambda e: _per_image(pullback(jnp.broadcast_to(e, out.shape))[0] * e), basis)
            return out, div.sum(axis=0)
        return out, _per_image(pullback(probe)[0] * probe)

    h = (u1 - u0) / steps

    def rk4(state, i):
        u = u0 + i * h
        k1 = field(state, u)
        k2 = field(jax.tree_util.tree_map(lambda s, k: s + 0.5 * h * k, state, k1), u + 0.5 * h)
        k3 = field(jax.tree_util.tree_map(lambda s, k: s + 0.5 * h * k, state, k2), u + 0.5 * h)
        k4 = field(jax.tree_util.tree_map(lambda s, k: s + h * k, state, k3), u + h)
        new = jax.tree_util.tree_map(lambda s, a, b, c, e: s + h / 6 * (a + 2 * b + 2 * c + e), state, k1, k2, k3, k4)
        return new, None

    (xs, div), _ = jax.lax.scan(rk4, (x, jnp.zeros(x.shape[0], x.dtype)), jnp.arange(steps))
    var_T = 1.0 + jnp.exp(2.0 * u1)  # unit-variance data at the top level: VP's N(0, I) for alpha x~
    log_prior = -0.5 * (_per_image(xs ** 2) / var_T + d * jnp.log(2 * jnp.pi * var_T))
    return log_prior + div


def dequantise(x0, key):
    """8-bit images in [-1, 1] -> a uniform draw from each pixel's bin [x - 1/255, x + 1/255)."""
    return x0 + (jax.random.uniform(key, x0.shape, x0.dtype) - 0.5) * BIN


def ode_bpd(proc, model_fn, x0, key, steps: int = 100, exact: bool = False):
    """The probability-flow ODE's NLL in bits/dim per image [B] of 8-bit images x0 [B, H, W, C] in
    [-1, 1], uniformly dequantised: -(log p(x) + D log(1/127.5)) / (D log 2)."""
    deq_key, probe_key = jax.random.split(key)
    d = np.prod(x0.shape[1:])
    log_p = ode_log_likelihood(proc, model_fn, dequantise(x0, deq_key), probe_key, steps, exact)
    return -(log_p + d * math.log(BIN)) / (d * math.log(2.0))
