"""Guidance (jgen.diffusion.guidance) through the real samplers: exact constraints, and exact
denoisers of Gaussian data as independent references for what the constraints should produce."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import MNIST_CONFIG, TINY, gaussian_model, random_variables, rel_err
from jgen.config import apply_overrides, load_config
from jgen.diffusion import guidance as G
from jgen.diffusion import samplers
from jgen.diffusion import process as P
from jgen.diffusion import schedules as S
from jgen.families import diffusion
from jgen.families.base import Cond
from jgen.train.step import init_state

SCHED = S.make_schedule(S.linear_betas(1000))
MU, SD = 0.3, 0.2  # the toy data: every pixel ~ N(MU, SD^2), independent; gaussian_model denoises it exactly


def test_repaint_path_walks_every_stretch_resample_times():
    path = samplers.ddim_path(1000, 40)  # 40 levels + the clean image
    out = G.repaint_path(path, jump=10, resample=3)
    moves = np.diff(out)
    assert out[0] == path[0] and out[-1] == -1
    climbs = np.flatnonzero(moves > 0)
    # a climb after each of the 3 inner jump points (10, 20, 30), resample - 1 = 2 times each
    assert len(climbs) == 3 * 2
    for i in climbs:  # each climb goes back exactly `jump` grid points
        assert np.flatnonzero(path == out[i])[0] - np.flatnonzero(path == out[i + 1])[0] == 10
    assert np.sum(moves < 0) == 40 + 3 * 2 * 10  # model calls
    np.testing.assert_array_equal(G.repaint_path(path, 10, 1), path)


@pytest.mark.parametrize("resample", [1, 3])
def test_inpainting_keeps_known_pixels_and_fills_the_hole_from_the_model(resample):
    keep = jnp.asarray(G.box_mask(16, 0.5))[None]
    known = jnp.full((400, 16, 16, 1), -0.9)  # far from the data: a filled hole must not look like it
    path = G.repaint_path(samplers.ddpm_path(1000), jump=10, resample=resample)
    out = samplers.ddpm_sample(SCHED, gaussian_model(SCHED, MU, SD), known.shape, jax.random.PRNGKey(0), clip=False,
                               path=path, post=G.paste_known(SCHED, known, keep))
    out = np.asarray(out)
    assert np.max(np.abs(out - np.asarray(known)) * np.asarray(keep)) < 1e-6
    hole = out[:, np.asarray(keep)[0, ..., 0] == 0]
    # independent pixels: the hole's conditional law is the data's, N(0.3, 0.2^2)
    assert abs(hole.mean() - MU) < 0.01 and abs(hole.std() - SD) < 0.01


def test_ilvr_output_downsampled_is_the_low_resolution_input():
    low = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (8, 4, 4, 1)), jnp.float32)
    out = samplers.ddim_sample(SCHED, gaussian_model(SCHED, MU, SD), (8, 16, 16, 1), jax.random.PRNGKey(1), steps=50,
                               eta=1.0, clip=False, post=G.ilvr(SCHED, low, 4))
    np.testing.assert_allclose(np.asarray(G.downsample(out, 4)), np.asarray(low), atol=1e-5)
    assert float(jnp.max(jnp.abs(out))) <= 1.0  # in range: the last step fits the means with clipping
    # within each 4x4 block the model still adds detail (the toy data is independent noise per pixel)
    assert float(jnp.std(out - G.upsample_nearest(low, 4))) > 0.1


def test_match_block_means_fits_means_inside_the_range():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(0, 0.3, (3, 8, 8, 1)), jnp.float32)
    low = jnp.asarray(rng.uniform(-0.9, 0.9, (3, 2, 2, 1)), jnp.float32)
    low = low.at[0, 0, 0, 0].set(-1.0).at[1, 1, 1, 0].set(1.0)  # all-black and all-white blocks
    out = np.asarray(G.match_block_means(x, low, 4))
    assert out.min() >= -1.0 and out.max() <= 1.0
    np.testing.assert_allclose(out.reshape(3, 2, 4, 2, 4, 1).mean(axis=(2, 4), dtype=np.float64), low, atol=2e-6)
    # in blocks where no pixel is clipped, the shift is one constant: x's detail is kept
    shift = (out - np.asarray(x)).reshape(3, 2, 4, 2, 4).transpose(0, 1, 3, 2, 4).reshape(12, 16)
    inside = np.all(np.abs(out.reshape(3, 2, 4, 2, 4).transpose(0, 1, 3, 2, 4).reshape(12, 16)) < 1, axis=1)
    assert inside.sum() >= 2
    np.testing.assert_allclose(shift[inside], shift[inside][:, :1] + 0 * shift[inside], atol=1e-6)


def test_downsample_is_block_means_and_low_pass_a_projection():
    x = np.random.default_rng(1).normal(size=(2, 8, 12, 3))
    ref = x.reshape(2, 4, 2, 6, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(G.downsample(jnp.asarray(x), 2)), ref, atol=1e-6)
    lp = G.low_pass(jnp.asarray(x), 2)
    np.testing.assert_allclose(np.asarray(G.low_pass(lp, 2)), np.asarray(lp), atol=1e-6)


def test_masks():
    assert G.box_mask(28, 0.5)[..., 0].mean() == pytest.approx(1 - 14 * 14 / 28 ** 2)
    assert G.half_mask(28)[..., 0].mean() == 0.5
    keep = G.stroke_mask(28, np.random.default_rng(0))
    assert keep.shape == (28, 28, 1) and 0.05 < 1 - keep.mean() < 0.7 and set(np.unique(keep)) <= {0.0, 1.0}


@pytest.fixture(scope="module")
def tiny():
    config = apply_overrides(load_config(MNIST_CONFIG), TINY)
    return config, init_state(diffusion, config, jax.random.PRNGKey(0))


def test_sdedit_at_strength_zero_returns_the_input(tiny):
    config, state = tiny
    x = jax.random.uniform(jax.random.PRNGKey(2), (4, 8, 8, 1), minval=-1, maxval=1)
    sched = S.schedule_from_config(config.diffusion)
    x_t, level = G.sdedit_start(sched, x, 0.0, jax.random.PRNGKey(3))
    variables = {"params": state.ema_params, "model_state": state.model_state}
    out = diffusion.sample(config, variables, jax.random.PRNGKey(4), 4, Cond(x_T=x_t, start=level))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))
    x_t, level = G.sdedit_start(sched, x, 0.5, jax.random.PRNGKey(3))
    assert level == 499 and diffusion.sampler_path(config, level)[0] == 499
    # halfway: x_t = sqrt(abar) x + sqrt(1 - abar) z, checked against the float64 table
    abar = np.cumprod(1 - S.cosine_betas(1000))[499]
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(3), x.shape))
    np.testing.assert_allclose(np.asarray(x_t), np.sqrt(abar) * np.asarray(x) + np.sqrt(1 - abar) * z, atol=1e-5)


def test_classifier_free_guidance_at_0_and_1_is_the_unconditional_and_conditional_model():
    config = apply_overrides(load_config(MNIST_CONFIG), TINY)
    config.condition.kind = "class"
    model = diffusion.make_model(config)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 8, 8, 1))
    t = jnp.array([0, 10, 200, 500, 900, 999])
    y = jnp.array([0, 1, 2, 3, 9, 5])
    params = random_variables(model, np.random.default_rng(0), x, t, y)["params"]
    sched = S.schedule_from_config(config.diffusion)

    def model_fn(x, t, labels):
        return P.to_x0_eps(sched, "v", x, t, model.apply({"params": params}, x, t, labels))

    cond, uncond = model_fn(x, t, y), model_fn(x, t, jnp.full_like(y, 10))
    assert rel_err(cond[1], uncond[1]) > 1e-2  # the label matters
    for scale, ref in ((0.0, uncond), (1.0, cond)):
        guided = G.classifier_free(model_fn, y, 10, scale)(x, t)
        for a, b in zip(guided, ref):
            assert rel_err(a, b) < 1e-5
    two = G.classifier_free(model_fn, y, 10, 2.0)(x, t)[1]
    assert rel_err(two, 2 * np.asarray(cond[1], np.float64) - np.asarray(uncond[1], np.float64)) < 1e-5


@pytest.mark.parametrize("kind", ["class", "lowres"])
def test_training_drops_a_fraction_of_conditions(kind):
    config = apply_overrides(load_config(MNIST_CONFIG), TINY + [f"condition.kind={kind}", "condition.drop=0.3",
                                                                "condition.scale=4"])
    n = 2000
    batch = {"image": jax.random.uniform(jax.random.PRNGKey(0), (n, 8, 8, 1), minval=-1, maxval=1),
             "label": jnp.arange(n) % 10}
    cond = np.asarray(diffusion.prepare(config, batch, jax.random.PRNGKey(1))["cond"])
    if kind == "class":
        dropped = cond == 10
        np.testing.assert_array_equal(cond[~dropped], np.arange(n)[~dropped] % 10)
    else:
        dropped = np.all(cond == 0, axis=(1, 2, 3))
        ref = np.asarray(G.upsample_bicubic(G.downsample(batch["image"], 4), 4))
        np.testing.assert_allclose(cond[~dropped], ref[~dropped], atol=1e-6)
    assert abs(dropped.mean() - 0.3) < 0.04
