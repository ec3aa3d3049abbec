"""GANs as a jgen family: DCGAN (non-saturating loss) and WGAN-GP on the DCGAN networks, and StyleGAN2
(gan.arch=stylegan2: its networks, mixing, truncation and lazy regularisers in jgen.families.stylegan).

One `update` is one generator step: `gan.n_critic` discriminator updates, then the generator
update, each with its own optax optimiser (optim.gen, optim.disc; built by jgen.train.step):
params {'gen', 'disc'}, opt_state {'gen', 'disc'}, model_state {'gen', 'disc'} (BatchNorm
statistics); the trainer's EMA averages the generator.

The batch holds n_critic * m real images; critic update k uses rows k, k + n_critic, ..., so each
device keeps its own rows. With n_critic = 1 the step follows pytorch/examples' DCGAN exactly:
fake = G(z) once; D on real, then D on fake.detach(); D's Adam step; then D (updated) on the same
fake for G's loss, backpropagated through that one G forward pass.
"""

import jax
import jax.numpy as jnp
import optax

import jgen.families.augment as augment
import jgen.families.stylegan as stylegan
from jgen.families.base import Cond, compute_dtype, to_compute
from jgen.nn.dcgan import Discriminator, Generator


def make_models(config):
    m = config.model
    return (Generator(config.data.image_size, config.data.channels, m.ngf, subpixel=m.upsample == "subpixel"),
            Discriminator(config.data.image_size, m.ndf, m.disc_norm))


def _apply(module, params, stats, x, train: bool, dtype=jnp.float32):
    """(float32 output, new BatchNorm statistics); statistics change only in train mode.

    The network runs in `dtype` (train.compute_dtype); BatchNorm keeps float32 statistics.
    """
    variables = {"params": to_compute(params, dtype), "batch_stats": stats}
    if not train:
        return module.apply(variables, x.astype(dtype), train=False).astype(jnp.float32), stats
    out, updated = module.apply(variables, x.astype(dtype), train=True, mutable=["batch_stats"])
    return out.astype(jnp.float32), updated.get("batch_stats", stats)


def _style(config) -> bool:
    return config.gan.arch == "stylegan2"


def init(config, rng):
    """(params {'gen', 'disc'}, model_state {'gen', 'disc'} plus 'ada' {'p', 'sign'} under gan.augment=ada)."""
    params, state = _init_networks(config, rng)
    if config.gan.augment == "ada":
        state["ada"] = {"p": jnp.zeros(()), "sign": jnp.zeros(())}
    return params, state


def _init_networks(config, rng):
    if _style(config):
        return stylegan.init(config, rng)
    gen, disc = make_models(config)
    g_key, d_key = jax.random.split(rng)
    size, channels = config.data.image_size, config.data.channels
    g_vars = gen.init(g_key, jnp.zeros((1, config.model.latent_dim)), train=False)
    d_vars = disc.init(d_key, jnp.zeros((1, size, size, channels)), train=False)
    params = {"gen": g_vars["params"], "disc": d_vars["params"]}
    return params, {"gen": g_vars.get("batch_stats", {}), "disc": d_vars.get("batch_stats", {})}


def generator(params):
    return params["gen"]


def gradient_penalty(critic, real, fake, eps):
    """E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps real + (1 - eps) fake (Gulrajani et al. 2017, eq. 3).

    eps: [B] in [0, 1]. The critic must score images independently (no BatchNorm): then the gradient
    of sum_i D(x_hat_i) with respect to x_hat_i is each image's own gradient.
    """
    e = eps.reshape((-1,) + (1,) * (real.ndim - 1))
    x_hat = e * real + (1.0 - e) * fake
    grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=tuple(range(1, real.ndim))) + 1e-12)
    return jnp.mean(jnp.square(norms - 1.0))


def disc_loss(kind: str, out_real, out_fake):
    """The discriminator's loss from its logits on real and fake images (any shape; patch logits too):
    nonsaturating (Goodfellow et al. 2014: softplus(-D(x)) + softplus(D(G(z)))) or hinge (Lim & Ye 2017;
    Miyato et al. 2018 eq. 16: relu(1 - D(x)) + relu(1 + D(G(z)))), each a mean."""
    if kind == "nonsaturating":
        return jnp.mean(jax.nn.softplus(-out_real)) + jnp.mean(jax.nn.softplus(out_fake))
    return jnp.mean(jax.nn.relu(1.0 - out_real)) + jnp.mean(jax.nn.relu(1.0 + out_fake))


def gen_loss_of(kind: str, out_fake):
    """The generator's loss from D's logits on its images: softplus(-D(G(z))) for nonsaturating, -D(G(z))
    for wgan-gp and hinge (Miyato et al. 2018 eq. 17), each a mean."""
    return jnp.mean(jax.nn.softplus(-out_fake)) if kind == "nonsaturating" else -jnp.mean(out_fake)


def _disc(config, d_params, d_stats, x, train: bool):
    """(logits [N] float32, new statistics) of the run's discriminator."""
    if _style(config):
        return stylegan.discriminate(config, d_params, x, compute_dtype(config)), d_stats
    return _apply(make_models(config)[1], d_params, d_stats, x, train, compute_dtype(config))


def _gen(config, g_params, g_state, key, m: int):
    """(m fake images, new generator state) for a training step, z drawn from `key`."""
    if _style(config):
        return stylegan.generate(config, g_params, g_state, key, m, compute_dtype(config))
    z = jax.random.normal(key, (m, config.model.latent_dim))
    return _apply(make_models(config)[0], g_params, g_state, z, True, compute_dtype(config))


def _disc_loss(config, d_params, d_stats, real, fake, key, step, ada_p=0.0):
    """Discriminator loss on one real and one (detached) fake batch; D sees them as two batches, like
    PyTorch, each through gan.augment. R1 (gan.r1_gamma > 0) joins on one step in gan.r1_interval, times
    the interval, at the (augmented) real images D saw. aux: (statistics, metrics, mean sign of D(real))."""
    gp_key, real_key, fake_key = jax.random.split(key, 3)
    real = augment.augment(config, real, real_key, ada_p)
    fake = augment.augment(config, fake, fake_key, ada_p)
    out_real, d_stats = _disc(config, d_params, d_stats, real, True)
    out_fake, d_stats = _disc(config, d_params, d_stats, fake, True)
    metrics = {"d_real": jnp.mean(out_real), "d_fake": jnp.mean(out_fake)}
    if config.gan.loss in ("nonsaturating", "hinge"):
        loss = disc_loss(config.gan.loss, out_real, out_fake)
    else:
        eps = jax.random.uniform(gp_key, (real.shape[0],))
        gp = gradient_penalty(lambda x: _disc(config, d_params, d_stats, x, False)[0], real, fake, eps)
        loss = jnp.mean(out_fake) - jnp.mean(out_real) + config.gan.gp_weight * gp
        metrics["gp"] = gp
    if config.gan.r1_gamma > 0:
        every = config.gan.r1_interval
        r1 = jax.lax.cond(step % every == 0,
                          lambda: stylegan.r1_penalty(lambda x: _disc(config, d_params, d_stats, x, False)[0], real),
                          lambda: jnp.zeros((), jnp.float32))
        loss = loss + config.gan.r1_gamma / 2 * every * r1
    return loss, (d_stats, metrics, jnp.mean(jnp.sign(out_real)))


def update(config, txs, params, opt_state, model_state, batch, rng, step=0):
    """One generator step on batch['image'] [n_critic * m, H, W, C] in [-1, 1]: n_critic critic
    updates, then the generator's; txs: {'gen', 'disc'} optimisers (built by jgen.train.step);
    step: the train step, which the lazy regularisers read."""
    n = config.gan.n_critic
    real = batch["image"]
    m = real.shape[0] // n
    reals = real.reshape((m, n) + real.shape[1:]).swapaxes(0, 1)  # [n, m, H, W, C]
    z_key, critic_key = jax.random.split(rng)
    g_aug_key, pl_key = jax.random.fold_in(rng, 3), jax.random.fold_in(rng, 7)  # apart from split's 0 and 1
    ada = model_state.get("ada", {"p": jnp.zeros(()), "sign": jnp.zeros(())})
    d_tx = txs["disc"]
    g_params, d_params = params["gen"], params["disc"]

    # The generator's forward pass for its own update, kept as a VJP so it runs once.
    fake, g_vjp, g_stats = jax.vjp(lambda p: _gen(config, p, model_state["gen"], z_key, m), g_params, has_aux=True)

    def critic_update(carry, xs):
        d_params, d_opt, d_stats, g_stats = carry
        real_k, key_k = xs
        fake_key, gp_key = jax.random.split(key_k)
        if n == 1:
            fake_k = fake
        else:  # WGAN-GP draws fresh fakes for every critic iteration
            fake_k, g_stats = _gen(config, g_params, g_stats, fake_key, m)
        (loss, (d_stats, metrics, sign)), grads = jax.value_and_grad(_disc_loss, argnums=1, has_aux=True)(
            config, d_params, d_stats, real_k, jax.lax.stop_gradient(fake_k), gp_key, step, ada["p"])
        updates, d_opt = d_tx.update(grads, d_opt, d_params)
        metrics = dict(metrics, d_loss=loss, d_grad_norm=optax.global_norm(grads), real_sign=sign)
        return (optax.apply_updates(d_params, updates), d_opt, d_stats, g_stats), metrics

    carry = (d_params, opt_state["disc"], model_state["disc"], g_stats)
    critic_keys = jax.random.split(critic_key, n)
    if n == 1:
        carry, metrics = critic_update(carry, (reals[0], critic_keys[0]))
    else:
        carry, metrics = jax.lax.scan(critic_update, carry, (reals, critic_keys))
        metrics = jax.tree.map(lambda v: v[-1], metrics)
    d_params, d_opt, d_stats, g_stats = carry

    def gen_loss(fake):
        out, stats = _disc(config, d_params, d_stats, augment.augment(config, fake, g_aug_key, ada["p"]), True)
        return gen_loss_of(config.gan.loss, out), stats

    (g_loss, d_stats), fake_grad = jax.value_and_grad(gen_loss, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    if _style(config) and config.gan.pl_weight > 0:
        g_grads, g_stats = _path_length_step(config, g_params, g_stats, g_grads, pl_key, m, step)
    updates, g_opt = txs["gen"].update(g_grads, opt_state["gen"], g_params)
    metrics = dict(metrics, g_loss=g_loss, g_grad_norm=optax.global_norm(g_grads))
    new_state = {"gen": g_stats, "disc": d_stats}
    if "ada" in model_state:
        new_state["ada"] = augment.ada_update(config, ada, metrics["real_sign"], m, step)
        metrics["ada_p"] = ada["p"]
    return ({"gen": optax.apply_updates(g_params, updates), "disc": d_params}, {"gen": g_opt, "disc": d_opt},
            new_state, metrics)


def _path_length_step(config, g_params, g_stats, g_grads, key, m, step):
    """g_grads plus the gradient of pl_weight * pl_interval * the path-length penalty, and the new
    pl_mean, on one step in gan.pl_interval; g_grads and the state unchanged on the others."""
    every = config.gan.pl_interval

    def weighted(p):
        penalty, pl_mean = stylegan.path_length(config, p, g_stats, key, m, compute_dtype(config))
        return penalty * config.gan.pl_weight * every, pl_mean

    def with_penalty():
        (_, pl_mean), grads = jax.value_and_grad(weighted, has_aux=True)(g_params)
        return jax.tree.map(jnp.add, g_grads, grads), dict(g_stats, pl_mean=pl_mean)

    return jax.lax.cond(step % every == 0, with_penalty, lambda: (g_grads, g_stats))


def latent_shape(config):
    return (config.model.latent_dim,)


def decode(config, variables, z):
    """Generator images [B, H, W, C] for latents z [B, latent_dim], BatchNorm on its running statistics."""
    if _style(config):
        return stylegan.images(config, variables, z)
    gen, _ = make_models(config)
    return _apply(gen, variables["params"], variables["model_state"]["gen"], z, False, compute_dtype(config))[0]


def sample(config, variables, rng, num: int, cond: Cond = Cond()):
    """`num` images [num, H, W, C] in [-1, 1] from z ~ N(0, I); a GAN takes no condition. StyleGAN2
    draws its noise inputs too, and truncates w at sample.truncation."""
    z_key, noise_key = jax.random.split(rng)
    if _style(config):
        return stylegan.images(config, variables, jax.random.normal(z_key, (num,) + latent_shape(config)), noise_key)
    return decode(config, variables, jax.random.normal(rng, (num,) + latent_shape(config)))
