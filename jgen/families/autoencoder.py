"""The KL autoencoder as a jgen family: the first stage of latent diffusion (Rombach et al. 2022, section 3.1
and appendix G), trained as Esser et al. 2021 train theirs.

  L_AE = sum_pixels (|x - D(z)| + w_p P(x, D(z))) + kl_weight KL(q(z|x) || N(0, I)) + lambda f(step) L_G
  L_D  = f(step) (hinge or non-saturating loss of the patch discriminator on x and D(z))

z = mean + sigma * eps (one posterior sample per image); sums are per image, averaged over the batch
(the reference's normalisation, so kl_weight = 1e-6 means what it means there). P is a perceptual
distance (ae.perceptual, off by default: features of a local `jgen train-classifier` network, compared
layer by layer after unit-normalising channels, as LPIPS does without its learned weights). f(step) is 1
from ae.disc_start on, 0 before; lambda is Esser et al.'s adaptive weight (eq. 7):
  lambda = disc_weight * ||grad_{G_L} L_rec|| / (||grad_{G_L} L_G|| + 1e-4), clipped to [0, 1e4],
at G_L, the decoder's last convolution: the adversarial term is scaled to pull as hard as the
reconstruction does there.

The discriminator's losses are the GAN family's (jgen.families.gan.disc_loss / gen_loss_of). params and
opt_state are {'gen': the autoencoder, 'disc': the patch discriminator}: the trainer's two optimisers.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from jgen.errors import JgenError
from jgen.families.base import Cond, compute_dtype, to_compute
from jgen.families.gan import disc_loss, gen_loss_of
from jgen.families.vae import kl_normal
from jgen.nn.autoencoder import AutoencoderKL, PatchDiscriminator
from jgen.nn.classifier import load_classifier


def make_model(config) -> AutoencoderKL:
    m = config.model
    return AutoencoderKL(tuple(m.ch * k for k in m.ch_mult), m.num_res_blocks, m.z_channels, config.data.channels,
                         m.num_groups, m.mid_attention, m.dropout)


def make_disc(config) -> PatchDiscriminator:
    return PatchDiscriminator(config.ae.disc_ndf, config.ae.disc_layers)


def factor(config) -> int:
    """f: the side shrinks by 2 per level after the first."""
    return 2 ** (len(config.model.ch_mult) - 1)


def latent_shape(config):
    s = config.data.image_size // factor(config)
    return (s, s, config.model.z_channels)


def init(config, rng):
    s, c = config.data.image_size, config.data.channels
    g_key, d_key = jax.random.split(rng)
    gen = make_model(config).init(g_key, jnp.zeros((1, s, s, c)), jnp.zeros((1,) + latent_shape(config)))
    disc = make_disc(config).init(d_key, jnp.zeros((1, s, s, c)))
    return {"gen": gen["params"], "disc": disc["params"]}, {}


def generator(params):
    return params["gen"]


def _apply(config, params, x, method, **kw):
    dtype = compute_dtype(config)
    out = make_model(config).apply({"params": to_compute(params, dtype)}, x.astype(dtype), method=method, **kw)
    return jax.tree.map(lambda a: a.astype(jnp.float32), out)


def encode(config, variables, x):
    """The posterior's (mean, log-variance), each [B, H/f, W/f, z], of images x [B, H, W, C] in [-1, 1]."""
    return _apply(config, variables["params"], x, AutoencoderKL.encode)


def decode(config, variables, z):
    """Images [B, H, W, C], clipped to [-1, 1], of latents z [B, H/f, W/f, z]."""
    return jnp.clip(_apply(config, variables["params"], z, AutoencoderKL.decode), -1.0, 1.0)


def reconstruct(config, variables, x):
    """D(mean of q(z|x)): what the evaluator's PSNR and reconstruction FID score."""
    return decode(config, variables, encode(config, variables, x)[0])


def sample(config, variables, rng, num: int, cond: Cond = Cond()):
    """Decoded N(0, I) latents. An autoencoder with a tiny KL weight is no generator (its latents are not
    N(0, I)): this grid only shows that the decoder runs; its quality is `jgen eval`'s PSNR and rFID."""
    return decode(config, variables, jax.random.normal(rng, (num,) + latent_shape(config)))


def psnr(x, y):
    """Peak signal-to-noise ratio per image [B] in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = jnp.mean(jnp.square(x - y), axis=tuple(range(1, x.ndim)))
    return 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-12))


@functools.lru_cache(maxsize=2)
def _perceptual_net(path: str):
    try:
        return load_classifier(path)[:2]
    except JgenError:
        raise JgenError(f"ae.perceptual={path} is not a `jgen train-classifier` directory") from None


def perceptual(path: str, x, y):
    """Per-image perceptual distance [B]: at each convolution of the classifier at `path`, the squared
    distance of channel-unit-normalised activations averaged over positions, summed over layers
    (LPIPS's form, Zhang et al. 2018 eq. 1, with unit layer weights)."""
    model, params = _perceptual_net(path)
    is_conv = lambda mdl, name: name == "__call__" and mdl.name is not None and mdl.name.startswith("conv")

    def maps(images):
        _, inter = model.apply({"params": params}, images, capture_intermediates=is_conv)
        return [v["__call__"][0] for v in inter["intermediates"].values()]

    def unit(a):
        return a * jax.lax.rsqrt(jnp.sum(jnp.square(a), axis=-1, keepdims=True) + 1e-10)

    return sum(jnp.mean(jnp.sum(jnp.square(unit(a) - unit(b)), -1), axis=(1, 2)) for a, b in zip(maps(x), maps(y)))


def nll(config, x, rec):
    """Per-image reconstruction term [B]: sum over pixels of |x - rec| (ae.recon=l1) or (x - rec)^2 (l2),
    plus perceptual_weight * P(x, rec) at every pixel."""
    a = config.ae
    err = jnp.abs(x - rec) if a.recon == "l1" else jnp.square(x - rec)
    out = jnp.sum(err, axis=tuple(range(1, x.ndim)))
    if a.perceptual:
        out = out + a.perceptual_weight * x[0].size * perceptual(a.perceptual, x, rec)
    return out


def _disc(config, d_params, x):
    dtype = compute_dtype(config)
    return make_disc(config).apply({"params": to_compute(d_params, dtype)}, x.astype(dtype)).astype(jnp.float32)


def _last_layer(grads):
    return grads["decoder"]["conv_out"]["kernel"]


def update(config, txs, params, opt_state, model_state, batch, rng, step=0):
    """One step: the autoencoder's update (posterior sample, reconstruction, KL, adaptive adversarial term),
    then the discriminator's on the images and the same (detached) reconstructions."""
    a, x = config.ae, batch["image"]
    g_params, d_params = params["gen"], params["disc"]

    def forward(p):
        mean, logvar = _apply(config, p, x, AutoencoderKL.encode)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape)
        kl = jnp.mean(jnp.sum(kl_normal(mean, logvar), axis=(1, 2, 3)))
        return _apply(config, p, z, AutoencoderKL.decode), kl

    (rec, kl), vjp = jax.vjp(forward, g_params)
    rec_loss, d_rec = jax.value_and_grad(lambda r: jnp.mean(nll(config, x, r)))(rec)
    (grads,) = vjp((d_rec, jnp.asarray(a.kl_weight, jnp.float32)))
    metrics = {"rec": rec_loss, "kl": kl, "psnr": jnp.mean(psnr(x, jnp.clip(rec, -1.0, 1.0))),
               "grad_norm": optax.global_norm(grads)}
    if a.disc_weight == 0:
        # No adversarial term: the discriminator is neither run nor trained, and reports nothing (static).
        updates, g_opt = txs["gen"].update(grads, opt_state["gen"], g_params)
        metrics.update(loss=rec_loss + a.kl_weight * kl)
        return ({"gen": optax.apply_updates(g_params, updates), "disc": d_params},
                {"gen": g_opt, "disc": opt_state["disc"]}, model_state, metrics)
    on = step >= a.disc_start
    # Both terms are computed on every step and selected: XLA:CPU runs a lax.cond branch ~10x slower than
    # the same ops inline (measured 8.7 against 0.8 s a step here), and the adversarial part is cheap.
    g_loss, d_fake = jax.value_and_grad(lambda r: gen_loss_of(a.disc_loss, _disc(config, d_params, r)))(rec)
    (g_grads,) = vjp((d_fake, jnp.zeros((), jnp.float32)))
    weight = jnp.linalg.norm(_last_layer(grads)) / (jnp.linalg.norm(_last_layer(g_grads)) + 1e-4)
    weight = jnp.where(on, a.disc_weight * jax.lax.stop_gradient(jnp.clip(weight, 0.0, 1e4)), 0.0)
    grads = jax.tree.map(lambda g, h: g + weight * h, grads, g_grads)
    updates, g_opt = txs["gen"].update(grads, opt_state["gen"], g_params)

    fake = jax.lax.stop_gradient(rec)

    def loss(p):
        real_out, fake_out = _disc(config, p, x), _disc(config, p, fake)
        return disc_loss(a.disc_loss, real_out, fake_out), (jnp.mean(real_out), jnp.mean(fake_out))

    (d_loss, (real_out, fake_out)), d_grads = jax.value_and_grad(loss, has_aux=True)(d_params)
    d_updates, d_opt = txs["disc"].update(d_grads, opt_state["disc"], d_params)
    # before disc_start the discriminator and its optimiser state stay as they were
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(on, n, o), new, old)
    d_params, d_opt = keep((optax.apply_updates(d_params, d_updates), d_opt), (d_params, opt_state["disc"]))
    g_loss, d_loss = g_loss * on, d_loss * on
    metrics.update(loss=rec_loss + a.kl_weight * kl + weight * g_loss, g_loss=g_loss, d_weight=weight,
                   d_loss=d_loss, d_real=real_out * on, d_fake=fake_out * on)
    return ({"gen": optax.apply_updates(g_params, updates), "disc": d_params}, {"gen": g_opt, "disc": d_opt},
            model_state, metrics)
