"""StyleGAN2's parts of the GAN family (gan.arch=stylegan2; jgen.families.gan drives the update).

The generator's params are {'mapping', 'synthesis'} (jgen.nn.stylegan); its model_state holds
w_avg, the running mean of w that truncation pulls towards (Karras et al. 2019 sec. 3; updated by
every training forward pass with rate 1 - gan.w_avg_beta), and pl_mean, the running mean of the
path lengths (Karras et al. 2020 eq. 4). The discriminator has no state.

Regularisers, both lazy (Karras et al. 2020 sec. 3.1): R1 (Mescheder et al. 2018), gamma/2 E||grad
D(x_real)||^2, computed on one step in gan.r1_interval and weighted by the interval; path length,
E(||J_w^T y|| - a)^2 with y ~ N(0, I) / sqrt(H W), on one step in gan.pl_interval at
batch / gan.pl_batch_shrink, weighted by the interval. Unlike stylegan2-ada-pytorch the lazy terms
are added to that step's main loss, one optimiser step, with Adam's settings unchanged.
"""

import jax
import jax.numpy as jnp

from jgen.families.base import compute_dtype, to_compute
from jgen.nn import stylegan as S


def models(config):
    m, size = config.model, config.data.image_size
    widths = dict(channel_base=m.channel_base, channel_max=m.channel_max)
    return (S.Mapping(m.w_dim, m.mapping_layers, m.mapping_lr),
            S.Synthesis(size, config.data.channels, **widths),
            S.Discriminator(size, mbstd_group=m.mbstd_group, **widths))


def init(config, rng):
    mapping, synthesis, disc = models(config)
    keys = jax.random.split(rng, 3)
    size, m = config.data.image_size, config.model
    ws = jnp.zeros((1, S.num_ws(size), m.w_dim))
    gen = {"mapping": mapping.init(keys[0], jnp.zeros((1, m.latent_dim)))["params"],
           "synthesis": synthesis.init(keys[1], ws, S.draw_noise(keys[1], 1, size))["params"]}
    disc_params = disc.init(keys[2], jnp.zeros((1, size, size, config.data.channels)))["params"]
    state = {"w_avg": jnp.zeros((m.w_dim,)), "pl_mean": jnp.zeros(())}
    return {"gen": gen, "disc": disc_params}, {"gen": state, "disc": {}}


def mapping(config, g_params, z, dtype=jnp.float32):
    """w [N, w_dim] for z [N, latent_dim]."""
    return models(config)[0].apply({"params": to_compute(g_params["mapping"], dtype)}, z.astype(dtype))


def synthesize(config, g_params, ws, noises, dtype=jnp.float32):
    """Images [N, H, W, C] (float32, unclipped) for ws [N, num_ws, w_dim] and per-layer noises (or None)."""
    noises = None if noises is None else [n.astype(dtype) for n in noises]
    img = models(config)[1].apply({"params": to_compute(g_params["synthesis"], dtype)}, ws.astype(dtype), noises)
    return img.astype(jnp.float32)


def discriminate(config, d_params, x, dtype=jnp.float32):
    """Logits [N] (float32) for images [N, H, W, C]."""
    return models(config)[2].apply({"params": to_compute(d_params, dtype)}, x.astype(dtype)).astype(jnp.float32)


def _ws(config, g_params, g_state, key, m, dtype):
    """Training ws [m, num_ws, w_dim] with style mixing, and the state with w_avg moved towards their mean."""
    z_key, mix_key, cut_key, z2_key = jax.random.split(key, 4)
    nz, n_ws = config.model.latent_dim, S.num_ws(config.data.image_size)
    w = mapping(config, g_params, jax.random.normal(z_key, (m, nz)), dtype).astype(jnp.float32)
    beta = config.gan.w_avg_beta
    w_avg = beta * g_state["w_avg"] + (1.0 - beta) * jax.lax.stop_gradient(jnp.mean(w, axis=0))
    ws = jnp.broadcast_to(w[:, None], (m, n_ws, w.shape[-1]))
    if config.gan.style_mixing > 0:  # one cut-off for the batch: layers from it on take a second w
        w2 = mapping(config, g_params, jax.random.normal(z2_key, (m, nz)), dtype).astype(jnp.float32)
        cut = jnp.where(jax.random.uniform(mix_key) < config.gan.style_mixing,
                        jax.random.randint(cut_key, (), 1, n_ws), n_ws)
        ws = jnp.where((jnp.arange(n_ws) < cut)[None, :, None], ws, w2[:, None])
    return ws, dict(g_state, w_avg=w_avg)


def generate(config, g_params, g_state, key, m: int, dtype):
    """(fake images [m, H, W, C], new generator state) for one training step: fresh z, mixing, noise."""
    ws_key, noise_key = jax.random.split(key)
    ws, g_state = _ws(config, g_params, g_state, ws_key, m, dtype)
    noises = S.draw_noise(noise_key, m, config.data.image_size)
    return synthesize(config, g_params, ws, noises, dtype), g_state


def r1_penalty(d_fn, real):
    """E_x ||grad_x D(x)||^2 over real images [N, H, W, C] (Mescheder et al. 2018 eq. 9, without gamma/2)."""
    grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(real)
    return jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))


def path_lengths(config, g_params, ws, noises, y, dtype=jnp.float32):
    """||J_w^T y|| per image [N]: the gradient of sum(G(ws) * y) with respect to ws [N, num_ws, w_dim],
    squared, summed over w_dim, averaged over the layers, square-rooted (Karras et al. 2020 eq. 4)."""
    grads = jax.grad(lambda w: jnp.sum(synthesize(config, g_params, w, noises, dtype) * y))(ws)
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


def path_length(config, g_params, g_state, key, m: int, dtype):
    """((||J_w^T y|| - a)^2 averaged, new a) on m / gan.pl_batch_shrink fresh images, y ~ N(0, I) / side;
    a moves towards the batch's mean length by gan.pl_decay."""
    ws_key, noise_key, y_key = jax.random.split(key, 3)
    n, size = max(1, m // config.gan.pl_batch_shrink), config.data.image_size
    ws, _ = _ws(config, g_params, g_state, ws_key, n, dtype)
    y = jax.random.normal(y_key, (n, size, size, config.data.channels)) / size
    lengths = path_lengths(config, g_params, ws, S.draw_noise(noise_key, n, size), y, dtype)
    a = g_state["pl_mean"] + config.gan.pl_decay * (jax.lax.stop_gradient(jnp.mean(lengths)) - g_state["pl_mean"])
    return jnp.mean(jnp.square(lengths - a)), a


def truncate(w, w_avg, psi: float):
    """w_avg + psi (w - w_avg): psi = 1 keeps w, 0 gives the average image (Karras et al. 2019 sec. 3)."""
    return w_avg + psi * (w - w_avg)


def const_noise(config, n: int) -> list:
    """One fixed noise image per layer, shared by every sample: decoding a z is then deterministic."""
    fixed = S.draw_noise(jax.random.PRNGKey(config.seed), 1, config.data.image_size)
    return [jnp.broadcast_to(x, (n,) + x.shape[1:]) for x in fixed]


def images(config, variables, z, noise_key=None, psi=None):
    """Images [N, H, W, C] in [-1, 1] for z [N, latent_dim] at truncation psi (sample.truncation when
    None), with fresh noise from `noise_key`, or the fixed noise of `const_noise` when it is None."""
    params, state, dtype = variables["params"], variables["model_state"]["gen"], compute_dtype(config)
    psi = config.sample.truncation if psi is None else psi
    w = truncate(mapping(config, params, z, dtype).astype(jnp.float32), state["w_avg"], psi)
    ws = jnp.broadcast_to(w[:, None], (z.shape[0], S.num_ws(config.data.image_size), w.shape[-1]))
    n = z.shape[0]
    noises = const_noise(config, n) if noise_key is None else S.draw_noise(noise_key, n, config.data.image_size)
    return jnp.clip(synthesize(config, params, ws, noises, dtype), -1.0, 1.0)


def noise_regularisation(noises) -> jnp.ndarray:
    """Karras et al. 2020 (Appendix D): the squared autocorrelation of each noise map at one-pixel shifts
    (rows and columns, wrapping), at its own side and at every 2x2-average-pooled side down to 8 px,
    summed over maps, averaged over images: near zero for white noise, large when the optimiser hides the
    image in the noise."""
    total = jnp.zeros(())
    for n in noises:
        x = n
        while True:
            for axis in (1, 2):  # per image, averaged over the batch as the pixel loss is
                total += jnp.mean(jnp.square(jnp.mean(x * jnp.roll(x, 1, axis=axis), axis=(1, 2, 3))))
            if x.shape[1] <= 8:
                break
            b, h, w, c = x.shape
            x = jnp.mean(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))
    return total


def _standardise(x):
    """Each image's map [B, H, W, 1] shifted and scaled to mean 0 and variance 1."""
    x = x - jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=(1, 2, 3), keepdims=True) + 1e-8)


def project(config, variables, target, keep, key, steps: int, w_plus: bool = False, features=None,
            feature_weight: float = 1.0, noise_weight: float = 1e5, lr: float = 0.1):
    """The latent whose image matches `target` [B, H, W, C] in [-1, 1] on the pixels where keep [B, H, W, 1]
    is 1 (Karras et al. 2020 sec. 5, Appendix D): Adam on w (one per image, or one per layer with
    w_plus) and on the per-layer noise maps, from w_avg and unit noise; w is perturbed by noise
    decaying to 0 over the first 3/4 of the steps; the rate ramps up over the first 5% and down over
    the last 25%; each step renormalises the noise maps to zero mean and unit variance. Loss: the mean
    squared pixel error on the known pixels, plus feature_weight times the squared distance of
    features(image * keep) to features(target * keep) (an extractor's penultimate features, a
    stand-in for LPIPS, which needs downloaded weights), plus noise_weight times noise_regularisation.

    Returns (ws [B, num_ws, w_dim], noises, image [B, H, W, C] in [-1, 1]).
    """
    import optax

    params, state = variables["params"], variables["model_state"]["gen"]
    size, n = config.data.image_size, target.shape[0]
    n_ws = S.num_ws(size)
    w_key, noise_key, probe_key = jax.random.split(key, 3)
    probe = mapping(config, params, jax.random.normal(probe_key, (1000, config.model.latent_dim)))
    w_std = jnp.sqrt(jnp.sum(jnp.var(probe, axis=0)))  # the spread of w, for the perturbation's scale
    w0 = jnp.broadcast_to(state["w_avg"], (n, n_ws if w_plus else 1, state["w_avg"].shape[0]))
    latent = {"w": jnp.asarray(w0), "noise": S.draw_noise(noise_key, n, size)}
    keep = jnp.broadcast_to(keep, target.shape[:3] + (1,)).astype(jnp.float32)
    target_features = None if features is None else features(target * keep)

    def image(lat, perturb):
        ws = jnp.broadcast_to(lat["w"] + perturb, (n, n_ws, lat["w"].shape[-1]))
        return synthesize(config, params, ws, lat["noise"])

    def loss(lat, perturb):
        img = image(lat, perturb)
        pixel = jnp.sum(jnp.square(img - target) * keep) / (jnp.sum(keep) * target.shape[-1])
        total = pixel + noise_weight * noise_regularisation(lat["noise"])
        if features is not None:
            total += feature_weight * jnp.mean(jnp.sum(jnp.square(features(img * keep) - target_features), -1))
        return total

    def rate(i):
        t = i / steps
        down = 0.5 - 0.5 * jnp.cos(jnp.pi * jnp.minimum(1.0, (1.0 - t) / 0.25))
        return lr * down * jnp.minimum(1.0, t / 0.05)

    tx = optax.adam(rate, b1=0.9, b2=0.999)
    opt = tx.init(latent)

    def step(carry, i):
        lat, opt = carry
        scale = w_std * 0.05 * jnp.square(jnp.maximum(0.0, 1.0 - i / (0.75 * steps)))
        perturb = scale * jax.random.normal(jax.random.fold_in(w_key, i), lat["w"].shape)
        value, grads = jax.value_and_grad(loss)(lat, perturb)
        updates, opt = tx.update(grads, opt)
        lat = optax.apply_updates(lat, updates)
        lat = dict(lat, noise=[_standardise(x) for x in lat["noise"]])
        return (lat, opt), value

    (latent, _), _ = jax.lax.scan(step, (latent, opt), jnp.arange(steps))
    ws = jnp.broadcast_to(latent["w"], (n, n_ws, latent["w"].shape[-1]))
    return ws, latent["noise"], jnp.clip(image(latent, 0.0), -1.0, 1.0)


def mix_styles(ws_a, ws_b, cut: int):
    """ws taking layers [0, cut) from ws_a and the rest from ws_b (both [B, num_ws, w_dim]): a low cut keeps
    a's coarse layout and takes b's finer styles; a high cut the opposite (Karras et al. 2019 sec. 3.1)."""
    return jnp.concatenate([ws_a[:, :cut], ws_b[:, cut:]], axis=1)
