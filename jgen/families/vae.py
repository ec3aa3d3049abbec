"""beta-VAE as a jgen family: Higgins et al. 2017's objective and Burgess et al. 2018's capacity form.

loss = -E_q[log p(x|z)] + beta * KL(q(z|x) || N(0, I))            (vae.objective = "beta")
loss = -E_q[log p(x|z)] + gamma * |KL - C(step)|                  (vae.objective = "capacity")
with C rising linearly from 0 to vae.capacity_max nats over vae.capacity_steps steps. Both terms
are summed over pixels and latents and averaged over the batch, so they are nats per image.

Samples decode draws from N(0, I), or with vae.prior=gmm from a Gaussian mixture fitted to the
training set's posterior means after training (jgen.families.gmm; jgen.run fits it and hands it to
`sample` as variables['prior']). `jgen interpolate` walks between N(0, I) draws either way.

Likelihoods (vae.likelihood): "bernoulli" (decoder logits; pixel intensities in [0, 1] as the
targets, the usual choice for MNIST-like data), "gaussian" (decoder means, fixed vae.sigma on the
[-1, 1] scale) and "gaussian_learned" (one learned log-sigma).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jgen.errors import JgenError
from jgen.families.base import Cond, compute_dtype, to_compute
from jgen.families.gmm import fit_gmm, gmm_sample
from jgen.nn.vae import Decoder, Encoder


class VAE(nn.Module):
    size: int
    channels: int
    latent_dim: int
    learned_sigma: bool = False

    def setup(self):
        self.encoder = Encoder(self.size, self.latent_dim)
        self.decoder = Decoder(self.size, self.channels)
        if self.learned_sigma:
            self.log_sigma = self.param("log_sigma", nn.initializers.zeros, ())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, z):
        """Both halves at once; `init` calls it so that every parameter exists."""
        return self.encoder(x), self.decoder(z)


def make_model(config) -> VAE:
    return VAE(config.data.image_size, config.data.channels, config.model.latent_dim,
               learned_sigma=config.vae.likelihood == "gaussian_learned")


def kl_normal(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension: 0.5 (mean^2 + var - 1 - logvar)."""
    return 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)


def bernoulli_log_likelihood(logits, x):
    """sum over pixels of log Bernoulli(p | sigmoid(logits)), targets p = (x + 1) / 2 in [0, 1]; [B]."""
    p = (x + 1.0) / 2.0
    ll = p * jax.nn.log_sigmoid(logits) + (1.0 - p) * jax.nn.log_sigmoid(-logits)
    return jnp.sum(ll, axis=tuple(range(1, x.ndim)))


def gaussian_log_likelihood(mean, x, log_sigma):
    """sum over pixels of log N(x | mean, sigma^2); [B]."""
    ll = -0.5 * jnp.square((x - mean) * jnp.exp(-log_sigma)) - log_sigma - 0.5 * math.log(2 * math.pi)
    return jnp.sum(ll, axis=tuple(range(1, x.ndim)))


def capacity(v, step):
    """C(step) = capacity_max * min(1, step / capacity_steps) (Burgess et al. 2018, section 4)."""
    frac = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / max(v.capacity_steps, 1))
    return v.capacity_max * frac


def init(config, rng):
    s, c = config.data.image_size, config.data.channels
    params = make_model(config).init(rng, jnp.zeros((1, s, s, c)), jnp.zeros((1, config.model.latent_dim)))
    return params["params"], {}


def generator(params):
    return params


def elbo_terms(config, params, x, eps):
    """Per-image reconstruction log-likelihood [B], KL per latent [B, L] and the posterior mean [B, L].

    eps: [B, L] standard normal noise of the reparameterisation z = mean + sigma * eps. The networks
    run in train.compute_dtype; the likelihood and KL in float32.
    """
    model, dtype = make_model(config), compute_dtype(config)
    cparams = to_compute(params, dtype)
    mean, logvar = model.apply({"params": cparams}, x.astype(dtype), method=VAE.encode)
    mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
    z = mean + jnp.exp(0.5 * logvar) * eps
    out = model.apply({"params": cparams}, z.astype(dtype), method=VAE.decode).astype(jnp.float32)
    if config.vae.likelihood == "bernoulli":
        recon = bernoulli_log_likelihood(out, x)
    else:
        log_sigma = params["log_sigma"] if config.vae.likelihood == "gaussian_learned" else math.log(config.vae.sigma)
        recon = gaussian_log_likelihood(out, x, log_sigma)
    return recon, kl_normal(mean, logvar), mean


def elbo_metrics(recon, kl_dims, mean, num_pixels: int):
    """Batch means of the ELBO's parts: nats per image, bits per dim, and the active units.

    A latent is active when the variance over the batch of its posterior mean exceeds 0.01
    (Burda et al. 2016).
    """
    kl = jnp.sum(kl_dims, axis=1)
    elbo = jnp.mean(recon - kl)
    metrics = {"recon": jnp.mean(recon), "kl": jnp.mean(kl), "elbo": elbo,
               "bits_per_dim": -elbo / (num_pixels * math.log(2)),
               "active_units": jnp.sum(jnp.var(mean, axis=0) > 0.01).astype(jnp.float32)}
    for i, v in enumerate(jnp.mean(kl_dims, axis=0)):
        metrics[f"kl_dim_{i:02d}"] = v
    return metrics


def prepare(config, batch, rng):
    """The images and the reparameterisation noise eps [B, latent] of every example."""
    x = batch["image"]
    return {"x": x, "eps": jax.random.normal(rng, (x.shape[0], config.model.latent_dim))}


def loss(config, params, inputs, rng, step):
    """The beta or capacity objective (module docstring); aux: the per-image ELBO terms."""
    v = config.vae
    recon, kl_dims, mean = elbo_terms(config, params, inputs["x"], inputs["eps"])
    kl = jnp.mean(jnp.sum(kl_dims, axis=1))
    if v.objective == "beta":
        value = -jnp.mean(recon) + v.beta * kl
    else:  # |mean KL - C| is not a mean over images: accumulation needs the beta objective
        value = -jnp.mean(recon) + v.gamma * jnp.abs(kl - capacity(v, step))
    return value, (recon, kl_dims, mean)


def metrics(config, aux, step):
    recon, kl_dims, mean = aux
    out = elbo_metrics(recon, kl_dims, mean, config.data.image_size ** 2 * config.data.channels)
    if config.vae.objective == "capacity":
        out["capacity"] = capacity(config.vae, step)
    return out


def latent_shape(config):
    return (config.model.latent_dim,)


def reconstruct(config, variables, x, rng):
    """(decoded posterior means [B, H, W, C], the ELBO's parts for x with one posterior sample per image)."""
    mean, _ = encode(config, variables, x)
    terms = elbo_terms(config, variables["params"], x, jax.random.normal(rng, mean.shape))
    return decode(config, variables, mean), elbo_metrics(*terms, x[0].size)


def traversal(config, variables, x, index: int, cols: int, radius: float):
    """One row per latent, ordered by its mean KL over x (most informative first): that latent swept
    over `cols` values in [-radius, radius], the others at image `index`'s posterior mean.
    Returns (images [latent * cols, H, W, C], KL per latent [latent], the row order [latent])."""
    mean, logvar = encode(config, variables, x)
    kl = jnp.mean(kl_normal(mean, logvar), axis=0)
    order = jnp.argsort(-kl)
    n = mean.shape[1]
    z = jnp.tile(mean[index], (n, cols, 1))
    z = z.at[jnp.arange(n)[:, None], jnp.arange(cols)[None, :], order[:, None]].set(
        jnp.linspace(-radius, radius, cols)[None, :])
    return decode(config, variables, z.reshape(-1, n)), kl, order


def _apply(config, variables, x, method):
    """The network in train.compute_dtype, its output back in float32."""
    dtype = compute_dtype(config)
    out = make_model(config).apply({"params": to_compute(variables["params"], dtype)}, x.astype(dtype), method=method)
    return jax.tree.map(lambda a: a.astype(jnp.float32), out)


def encode(config, variables, x):
    """Posterior (mean, log-variance) [B, latent] for images x [B, H, W, C]."""
    return _apply(config, variables, x, VAE.encode)


def decode(config, variables, z):
    """Mean images [B, H, W, C] in [-1, 1] of p(x|z) for z [B, latent]."""
    out = _apply(config, variables, z, VAE.decode)
    return jax.nn.sigmoid(out) * 2.0 - 1.0 if config.vae.likelihood == "bernoulli" else jnp.clip(out, -1.0, 1.0)


def fit_prior(config, codes):
    """The ex-post prior (vae.prior=gmm): vae.prior_components Gaussians fitted to posterior means [N, latent]."""
    prior, _ = fit_gmm(codes, config.vae.prior_components, seed=config.seed)
    return prior


def sample(config, variables, rng, num: int, cond: Cond = Cond()):
    """`num` images from the prior (N(0, I), or the fitted mixture of vae.prior=gmm), shown as the
    decoder's means; a VAE takes no condition."""
    if config.vae.prior == "gmm":
        if "prior" not in variables:
            raise JgenError("vae.prior=gmm samples need the fitted prior: sample through jgen.run's Run.sampler")
        z = gmm_sample(variables["prior"], rng, num)
    else:
        z = jax.random.normal(rng, (num,) + latent_shape(config))
    return decode(config, variables, z)
