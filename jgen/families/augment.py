"""Augmentation on the discriminator's side, for every GAN in jgen (gan.augment).

Both methods transform the real and the generated images that D sees, every time it sees them
(its own loss, R1, and the generator's loss, through which gradients flow back to G), so D never
sees an un-augmented image and G is not pushed to make augmented-looking ones.

- `diffaug` (Zhao et al. 2020, DiffAugment with its policy color,translation,cutout): random
  brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) about the pixel's channel mean) and contrast
  (x U(0.5, 1.5) about the image's mean); a translation by whole pixels of up to 1/8 of the side,
  zero-filled; a zeroed square of half the side at a random centre. Each image its own draw.
- `ada` (Karras et al. 2020, adaptive discriminator augmentation): each transform is applied to each
  image with probability p, and p follows the sign of D's outputs on real images: every
  gan.ada_interval steps r_t = E[sign D(x_real)] over those steps, and p moves by
  sign(r_t - ada_target) * (images seen) / (ada_kimg * 1000), clipped to [0, 1]. jgen's pipeline is
  the paper's pixel blitting (x-flip with probability 1/2 once chosen, 90-degree rotations, integer
  translation up to 1/8 with the image mirrored at the border) and part of its colour group
  (brightness +N(0, 0.2), contrast x lognormal(0, 0.5 ln 2) about 0, saturation x lognormal(0, ln 2)
  about the pixel's channel mean); the paper's luma flip, hue rotation, general geometric (bilinear)
  and filter groups are left out. R1 is taken at the augmented reals D saw, where the papers
  differentiate through the augmentation to the originals.

Every draw comes from the step's key, on the device.
"""

import math

import jax
import jax.numpy as jnp


def _per_image(key, n, lo=0.0, hi=1.0):
    return jax.random.uniform(key, (n, 1, 1, 1), minval=lo, maxval=hi)


def _reflect(i, n: int):
    """Indices reflected into [0, n): -1 -> 1, n -> n - 2 (numpy's 'reflect' padding)."""
    period = 2 * (n - 1)
    m = jnp.mod(i, period)
    return jnp.where(m >= n, period - m, m)


def translate(x, shift, reflect: bool = False):
    """x [N, H, W, C] moved by whole pixels shift [N, 2] (rows, columns): zeros shifted in (DiffAugment),
    or the image mirrored at its border (reflect; ADA's pixel blitting)."""
    n, h, w, c = x.shape
    rows = jnp.arange(h)[None, :] - shift[:, :1]  # source row of each output row
    cols = jnp.arange(w)[None, :] - shift[:, 1:]
    if reflect:
        return jax.vmap(lambda img, r, q: img[_reflect(r, h)][:, _reflect(q, w)])(x, rows, cols)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    gathered = jax.vmap(lambda img, r, q: img[jnp.clip(r, 0, h - 1)][:, jnp.clip(q, 0, w - 1)])(x, rows, cols)
    return gathered * valid[..., None].astype(x.dtype)


def color(x, brightness, saturation, contrast):
    """DiffAugment's colour ops with per-image factors [N, 1, 1, 1]: x + b; then (x - channel mean) s +
    channel mean; then (x - image mean) c + image mean."""
    x = x + brightness
    mean = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean) * saturation + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * contrast + mean


def cutout(x, first, size: int):
    """x with the size x size square whose top-left pixel is first [N, 2] (rows, columns; may lie
    outside the image, the square then clipped) set to 0."""
    n, h, w, c = x.shape
    inside = lambda idx, f: (idx[None, :] >= f) & (idx[None, :] < f + size)
    hole = inside(jnp.arange(h), first[:, :1])[:, :, None] & inside(jnp.arange(w), first[:, 1:])[:, None, :]
    return x * (1.0 - hole[..., None].astype(x.dtype))


def diffaugment(x, key):
    """DiffAugment's color, translation and cutout on x [N, H, W, C] in [-1, 1]."""
    n, h, w, c = x.shape
    k = jax.random.split(key, 5)
    x = color(x, _per_image(k[0], n) - 0.5, _per_image(k[1], n) * 2.0, _per_image(k[2], n) + 0.5)
    s = int(h * 0.125 + 0.5)
    x = translate(x, jax.random.randint(k[3], (n, 2), -s, s + 1))
    size = int(h * 0.5 + 0.5)  # centre drawn in [0, side + 1 - size % 2), as DiffAugment's
    first = jax.random.randint(k[4], (n, 2), 0, h + (1 - size % 2)) - size // 2
    return cutout(x, first, size)


def ada_augment(x, key, p):
    """The ADA pipeline (blit and colour groups) on x [N, H, W, C], each transform with probability p."""
    n, h, w, c = x.shape
    k = jax.random.split(key, 12)
    on = lambda i: (jax.random.uniform(k[i], (n, 1, 1, 1)) < p)
    coin = jax.random.uniform(k[11], (n, 1, 1, 1)) < 0.5  # a chosen flip is flip or not: rate p / 2 < 1/2
    x = jnp.where(on(0) & coin, x[:, :, ::-1], x)
    quarter = jax.random.randint(k[1], (n,), 0, 4)
    if h == w:
        turns = [jnp.rot90(x, q, axes=(1, 2)) for q in range(4)]
        rotated = jnp.select([quarter[:, None, None, None] == q for q in range(4)], turns)
        x = jnp.where(on(2), rotated, x)
    s = max(1, int(h * 0.125 + 0.5))
    shift = jax.random.randint(k[3], (n, 2), -s, s + 1)
    x = jnp.where(on(4), translate(x, shift, reflect=True), x)
    x = x + jnp.where(on(5), 0.2 * jax.random.normal(k[6], (n, 1, 1, 1)), 0.0)
    contrast = jnp.exp(0.5 * math.log(2) * jax.random.normal(k[7], (n, 1, 1, 1)))
    x = jnp.where(on(8), x * contrast, x)  # about 0, the middle of [-1, 1]
    if c > 1:
        mean = jnp.mean(x, axis=3, keepdims=True)
        sat = jnp.exp(math.log(2) * jax.random.normal(k[9], (n, 1, 1, 1)))
        x = jnp.where(on(10), (x - mean) * sat + mean, x)
    return x


def augment(config, x, key, p):
    """gan.augment applied to x [N, H, W, C]: none | diffaug | ada (at probability p)."""
    kind = config.gan.augment
    if kind == "diffaug":
        return diffaugment(x, key)
    if kind == "ada":
        return ada_augment(x, key, p)
    return x


def ada_update(config, state, real_sign, images: int, step):
    """ADA's state {'p', 'sign'} after a step whose D(real) had mean sign `real_sign` over `images`
    images: the signs accumulate, and every gan.ada_interval steps p moves by sign(r_t - ada_target)
    times the images seen since over ada_kimg thousand (Karras et al. 2020 sec. 2.3)."""
    g = config.gan
    total = state["sign"] + real_sign
    due = (step + 1) % g.ada_interval == 0
    adjust = jnp.sign(total / g.ada_interval - g.ada_target) * images * g.ada_interval / (g.ada_kimg * 1000.0)
    p = jnp.where(due, jnp.clip(state["p"] + adjust, 0.0, 1.0), state["p"])
    return {"p": p, "sign": jnp.where(due, 0.0, total)}
