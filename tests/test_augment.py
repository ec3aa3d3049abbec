"""Augmentation on the discriminator's side (jgen/families/augment.py) against float64 NumPy formulas:
DiffAugment's colour, translation and cutout, ADA's pipeline at p = 0 and 1, and ADA's p controller."""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import apply_overrides, load_config
from jgen.families import augment

RNG = np.random.default_rng(0)


def test_translate_moves_whole_pixels_and_fills_zeros():
    x = RNG.normal(size=(3, 8, 8, 2))
    shift = np.array([[2, -1], [0, 0], [-3, 3]])
    out = np.asarray(augment.translate(jnp.asarray(x, jnp.float32), jnp.asarray(shift)))
    for i, (dr, dc) in enumerate(shift):
        ref = np.zeros_like(x[i])
        for r in range(8):
            for c in range(8):
                if 0 <= r - dr < 8 and 0 <= c - dc < 8:
                    ref[r, c] = x[i, r - dr, c - dc]
        np.testing.assert_allclose(out[i], ref, atol=1e-6)


def test_cutout_zeroes_one_clipped_square():
    x = RNG.normal(size=(2, 8, 8, 1)) + 5.0
    out = np.asarray(augment.cutout(jnp.asarray(x, jnp.float32), jnp.array([[2, 3], [-2, 6]]), 4))
    for i, (r0, c0) in enumerate([(2, 3), (-2, 6)]):
        hole = np.zeros((8, 8), bool)
        hole[max(r0, 0):r0 + 4, max(c0, 0):c0 + 4] = True
        np.testing.assert_allclose(out[i, hole], 0.0)
        np.testing.assert_allclose(out[i, ~hole], x[i, ~hole], rtol=1e-6)
    assert (out[0] == 0).sum() == 16 and (out[1] == 0).sum() == 2 * 2


def test_color_follows_diffaugment_formulas():
    x = RNG.normal(size=(2, 4, 4, 3))
    b, s, c = (RNG.uniform(size=(2, 1, 1, 1)) for _ in range(3))
    y = x + b
    y = (y - y.mean(3, keepdims=True)) * s + y.mean(3, keepdims=True)
    y = (y - y.mean((1, 2, 3), keepdims=True)) * c + y.mean((1, 2, 3), keepdims=True)
    out = augment.color(*(jnp.asarray(a, jnp.float32) for a in (x, b, s, c)))
    np.testing.assert_allclose(out, y, atol=1e-5)


def test_diffaugment_draws_per_image_and_passes_gradients():
    x = jnp.asarray(RNG.uniform(-1, 1, size=(8, 16, 16, 3)), jnp.float32)
    a, b = augment.diffaugment(x, jax.random.PRNGKey(0)), augment.diffaugment(x, jax.random.PRNGKey(1))
    assert a.shape == x.shape and float(jnp.max(jnp.abs(a - b))) > 0.1
    # cutout's 8 x 8 square (64 of 256 pixels, fewer when clipped) and up to 2 rows and columns shifted in
    zeroed = np.mean(np.asarray(a) == 0.0, axis=(1, 2, 3))
    assert np.all(zeroed > 0.05) and np.all(zeroed <= (64 + 2 * 16 + 2 * 14) / 256)
    g = jax.grad(lambda x: jnp.sum(augment.diffaugment(x, jax.random.PRNGKey(0)) ** 2))(x)
    assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).max()) > 0


def test_translate_reflects_at_the_border_for_ada():
    x = RNG.normal(size=(1, 6, 6, 1))
    out = np.asarray(augment.translate(jnp.asarray(x, jnp.float32), jnp.array([[2, -3]]), reflect=True))
    ref = np.pad(x[0, :, :, 0], 3, mode="reflect")[3 - 2:3 - 2 + 6, 3 + 3:3 + 3 + 6]
    np.testing.assert_allclose(out[0, :, :, 0], ref, atol=1e-6)


def test_ada_pipeline_is_the_identity_at_p_0_and_changes_every_image_at_p_1():
    x = jnp.asarray(RNG.uniform(-1, 1, size=(16, 8, 8, 3)), jnp.float32)
    np.testing.assert_array_equal(augment.ada_augment(x, jax.random.PRNGKey(0), 0.0), x)
    y = augment.ada_augment(x, jax.random.PRNGKey(0), 1.0)  # brightness alone moves every image
    assert np.all(np.max(np.abs(np.asarray(y - x)), axis=(1, 2, 3)) > 1e-3)
    many = jnp.asarray(RNG.uniform(-1, 1, size=(4096, 8, 8, 1)), jnp.float32)
    half = np.asarray(augment.ada_augment(many, jax.random.PRNGKey(2), 0.5))
    untouched = np.mean(np.max(np.abs(half - np.asarray(many)), axis=(1, 2, 3)) < 1e-6)
    # grey images, p = 1/2: a flip happens at p/2 (3/4 untouched), a quarter turn at p * 3/4 (5/8), a shift
    # of up to 1 px at p * 8/9 (5/9), brightness and contrast at p (1/2 each): 0.0651 untouched (+-0.004)
    expected = (3 / 4) * (5 / 8) * (5 / 9) * (1 / 2) * (1 / 2)
    assert abs(untouched - expected) < 0.012  # a flip at rate p would give 0.0434


def test_ada_p_follows_the_sign_of_the_real_logits():
    config = apply_overrides(load_config("dcgan_mnist5k"), ["gan.augment=ada", "gan.ada_interval=4",
                                                            "gan.ada_target=0.6", "gan.ada_kimg=0.1"])
    signs = [1.0, 1.0, 0.8, 1.0, 0.0, 0.2, 0.0, 0.4, 1.0, 1.0, 1.0, 1.0]
    state, p, acc, ps = {"p": jnp.zeros(()), "sign": jnp.zeros(())}, 0.0, 0.0, []
    for step, s in enumerate(signs):
        state = augment.ada_update(config, state, jnp.float32(s), 32, step)
        acc += s
        if (step + 1) % 4 == 0:  # float64 reference: r_t over the interval against the target
            p = min(1.0, max(0.0, p + np.sign(acc / 4 - 0.6) * 32 * 4 / 100.0))
            acc = 0.0
        ps.append(p)
        np.testing.assert_allclose(float(state["p"]), p, atol=1e-6)
    assert ps[3] > 0 and ps[7] == 0.0 and ps[11] > 0  # up while D is sure of the reals, then down, then up
