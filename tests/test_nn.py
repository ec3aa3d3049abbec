"""The U-Net's parts against float64 NumPy, and the paper's CIFAR-10 parameter count."""

import math
import os

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jgen.config import load_config
from jgen.families.diffusion import make_model
from jgen.nn.layers import GroupNorm, group_norm_affine, group_norm_plain, timestep_embedding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def group_norm_np(x, groups, eps=1e-6):
    b, h, w, c = x.shape
    g = x.reshape(b, h * w, groups, c // groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)


def test_cifar10_unet_has_paper_parameter_count():
    config = load_config(os.path.join(ROOT, "configs", "ddpm_cifar10.py"))
    shapes = jax.eval_shape(lambda: make_model(config).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,))))
    n = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    assert round(n / 1e6, 1) == 35.7  # Ho et al. 2020, section 4: "35.7 million parameters"


FORMS = {"cpu": group_norm_affine, "plain": group_norm_plain}  # the CPU form and what GPUs and TPUs run


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shape,groups", [((2, 5, 6, 8), 4), ((3, 4, 4, 6), 3), ((1, 7, 7, 32), 32)])
def test_group_norm_matches_numpy(shape, groups, form):
    x = np.random.default_rng(0).standard_normal(shape) * 3 + 1
    ones, zeros = jnp.ones(shape[-1]), jnp.zeros(shape[-1])
    np.testing.assert_allclose(FORMS[form](jnp.float32(x), ones, zeros, groups, 1e-6), group_norm_np(x, groups),
                               atol=2e-5)
    module = GroupNorm(groups)
    params = {"params": {"scale": jnp.arange(shape[-1], dtype=jnp.float32), "bias": jnp.ones(shape[-1])}}
    ref = group_norm_np(x, groups) * np.arange(shape[-1]) + 1
    np.testing.assert_allclose(module.apply(params, jnp.float32(x)), ref, atol=1e-4)


@pytest.mark.parametrize("form", FORMS)
def test_group_norm_gradient_matches_finite_differences(form):
    """The backward pass (x, scale and bias; hand-written for the CPU form, autodiff for the plain one)
    against central differences of the float64 NumPy forward."""
    rng = np.random.default_rng(1)
    x, scale, bias = rng.standard_normal((2, 3, 4, 6)) * 2 + 0.5, rng.standard_normal(6), rng.standard_normal(6)
    w = rng.standard_normal(x.shape)  # loss = sum(w * sin(GN(x) * scale + bias))
    loss_jax = lambda *a: jnp.sum(jnp.float32(w) * jnp.sin(FORMS[form](*a, 3, 1e-6)))
    grads = jax.grad(loss_jax, argnums=(0, 1, 2))(*(jnp.float32(v) for v in (x, scale, bias)))
    loss = lambda x, scale, bias: np.sum(w * np.sin(group_norm_np(x, 3) * scale + bias))
    for seed in range(3):
        d = [np.random.default_rng(10 + seed).standard_normal(v.shape) for v in (x, scale, bias)]
        h = 1e-5
        for i, (g, dv) in enumerate(zip(grads, d)):  # each argument's gradient on its own
            step = lambda sign: [v + sign * h * dv if j == i else v for j, v in enumerate((x, scale, bias))]
            fd = (loss(*step(1)) - loss(*step(-1))) / (2 * h)
            assert float(jnp.sum(g * dv)) == pytest.approx(fd, rel=1e-3, abs=1e-4)


def test_timestep_embedding_matches_formula():
    t = np.array([0.0, 1.0, 17.0, 999.0])
    dim = 16
    half = dim // 2
    freqs = np.exp(-np.log(10000.0) * np.arange(half) / (half - 1))
    ref = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
    np.testing.assert_allclose(timestep_embedding(jnp.asarray(t), dim), ref, atol=1e-4)


def test_small_unet_shapes_and_zero_init_output():
    config = load_config(os.path.join(ROOT, "configs", "ddpm_mnist5k.py"))
    model = make_model(config)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, 28, 1))
    variables = jax.jit(model.init)(jax.random.PRNGKey(1), x, jnp.zeros((2,)))  # one compile, not one per op
    out = jax.jit(model.apply)(variables, x, jnp.array([3, 900]))
    assert out.shape == (2, 28, 28, 1)
    # The output convolution starts at ~zero (DDPM's init_scale=0), so the initial prediction is ~0.
    assert float(jnp.abs(out).max()) < 1e-3


@pytest.mark.parametrize("shape", [(2, 4, 5, 3), (1, 7, 7, 6)])
def test_upsample_conv_equals_conv_of_upsampled_with_gradients(shape):
    """The phase form against lax's SAME 3x3 convolution of the nearest-upsampled image, values and gradients."""
    from jgen.nn.conv import upsample_conv3x3
    from jgen.nn.layers import upsample_nearest
    rng = np.random.default_rng(shape[-1])
    x, w = jnp.float32(rng.normal(size=shape)), jnp.float32(rng.normal(size=(3, 3, shape[-1], 4)))
    ref = lambda x, w: jax.lax.conv_general_dilated(upsample_nearest(x), w, (1, 1), "SAME",
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = jnp.float32(rng.normal(size=(shape[0], 2 * shape[1], 2 * shape[2], 4)))
    outs = [jax.jit(f)(x, w) for f in (upsample_conv3x3, ref)]
    grads = [jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) * g), argnums=(0, 1)))(x, w)
             for f in (upsample_conv3x3, ref)]
    err = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    assert outs[0].shape == outs[1].shape and err(*outs) < 1e-5
    assert err(grads[0][0], grads[1][0]) < 1e-5 and err(grads[0][1], grads[1][1]) < 1e-5
