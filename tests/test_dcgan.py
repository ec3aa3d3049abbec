"""DCGAN networks and GAN losses: the fast transposed convolution, the gradient penalty, and the PyTorch twin."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_variables, rel_err
from jgen.families.gan import gradient_penalty
from jgen.nn.conv import conv_down, conv_transpose_phases, conv_transpose_reference
from jgen.nn.dcgan import Discriminator, Generator, layout


@pytest.mark.parametrize("shape,cout", [((2, 5, 6, 3), 5), ((3, 4, 4, 16), 3), ((1, 7, 7, 2), 1), ((2, 3, 2, 4), 8)])
def test_phases_equal_conv_transpose_with_gradients(shape, cout):
    """Both branches: per-phase convolutions (cout > 4) and one convolution over all phases (cout <= 4)."""
    rng = np.random.default_rng(shape[1])  # NumPy data: eager jax.random compiles per shape (seconds)
    x, w = jnp.float32(rng.normal(size=shape)), jnp.float32(rng.normal(size=(4, 4, shape[-1], cout)))
    ref = jax.jit(conv_transpose_reference)(x, w)
    assert ref.shape == (shape[0], 2 * shape[1], 2 * shape[2], cout)
    assert rel_err(jax.jit(conv_transpose_phases)(x, w), ref) < 1e-5
    g = jnp.float32(rng.normal(size=ref.shape))
    grads = [jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) * g), argnums=(0, 1)))(x, w)
             for f in (conv_transpose_phases, conv_transpose_reference)]
    assert rel_err(grads[0][0], grads[1][0]) < 1e-5 and rel_err(grads[0][1], grads[1][1]) < 1e-5


@pytest.mark.parametrize("cin", [3, 6])
def test_strided_conv_gradients_equal_float64_loops(cin):
    """conv_down against float64 loops: the space-to-depth form (cin 3) and the phase-form input gradient (cin 6)."""
    rng = np.random.default_rng(cin)
    x, w, dy = rng.normal(size=(2, 8, 6, cin)), rng.normal(size=(4, 4, cin, 5)), rng.normal(size=(2, 4, 3, 5))
    y, vjp = jax.vjp(conv_down, jnp.float32(x), jnp.float32(w))
    dx, dw = vjp(jnp.float32(dy))
    ref_y, ref_dx, ref_dw = np.zeros((2, 4, 3, 5)), np.zeros_like(x), np.zeros_like(w)
    for i in range(4):
        for j in range(3):
            for kh in range(4):
                for kw in range(4):
                    r, c = 2 * i + kh - 1, 2 * j + kw - 1  # output (i, j) reads input (2i + kh - 1, 2j + kw - 1)
                    if 0 <= r < 8 and 0 <= c < 6:
                        ref_y[:, i, j] += x[:, r, c] @ w[kh, kw]
                        ref_dx[:, r, c] += dy[:, i, j] @ w[kh, kw].T
                        ref_dw[kh, kw] += x[:, r, c].T @ dy[:, i, j]
    assert rel_err(y, ref_y) < 1e-5 and rel_err(dx, ref_dx) < 1e-5 and rel_err(dw, ref_dw) < 1e-5


def test_conv_transpose_reference_is_pytorchs_scatter_rule():
    """Output 2m - 1 + k receives input m through tap k, written out as loops in float64."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(1, 3, 2, 2)), rng.normal(size=(4, 4, 2, 3))
    out = np.zeros((1, 8, 6, 3))
    for i in range(3):
        for j in range(2):
            for a in range(4):
                for b in range(4):
                    oi, oj = 2 * i - 1 + a, 2 * j - 1 + b
                    if 0 <= oi < 6 and 0 <= oj < 4:
                        out[0, oi, oj] += x[0, i, j] @ w[a, b]
    got = conv_transpose_reference(jnp.float32(x), jnp.float32(w))
    assert rel_err(got, out[:, :6, :4]) < 1e-5


def test_layout_and_shapes():
    assert layout(28) == (7, 2) and layout(32) == (4, 3) and layout(64) == (4, 4)
    for size, channels in [(28, 1), (32, 3), (64, 3)]:
        g, d = Generator(size, channels, ngf=8), Discriminator(size, ndf=8)
        z = jnp.zeros((2, 16))
        x = jax.eval_shape(lambda z: g.init_with_output(jax.random.PRNGKey(0), z, train=False)[0], z)
        assert x.shape == (2, size, size, channels)
        logits = jax.eval_shape(lambda x: d.init_with_output(jax.random.PRNGKey(1), x, train=False)[0], x)
        assert logits.shape == (2,)


def test_gradient_penalty_matches_float64_finite_differences():
    """A tiny tanh critic in float64 NumPy, its input gradient by central differences, the penalty by hand."""
    rng = np.random.default_rng(1)
    shape, hidden = (3, 2, 2, 2), 5
    d = int(np.prod(shape[1:]))
    W, b, v = rng.normal(size=(d, hidden)), rng.normal(size=hidden), rng.normal(size=hidden)
    real, fake, eps = rng.normal(size=shape), rng.normal(size=shape), rng.uniform(size=shape[0])

    def critic64(x):
        return np.tanh(x.reshape(len(x), -1) @ W + b) @ v

    x_hat = eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake
    h = 1e-6
    grads = np.zeros_like(x_hat)
    for idx in np.ndindex(*shape[1:]):
        dx = np.zeros(shape[1:])
        dx[idx] = h
        grads[(slice(None),) + idx] = (critic64(x_hat + dx) - critic64(x_hat - dx)) / (2 * h)
    expected = np.mean((np.sqrt(np.sum(grads ** 2, axis=(1, 2, 3))) - 1.0) ** 2)

    def critic(x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ jnp.float32(W) + jnp.float32(b)) @ jnp.float32(v)

    got = gradient_penalty(critic, jnp.float32(real), jnp.float32(fake), jnp.float32(eps))
    assert abs(float(got) - expected) / expected < 1e-4


def test_gradient_penalty_parameter_gradient_of_a_linear_critic():
    """D(x) = w.x has grad_x D = w, so the penalty is (|w| - 1)^2 with d/dw = 2 (|w| - 1) w / |w|."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=12)
    real, fake, eps = rng.normal(size=(4, 2, 2, 3)), rng.normal(size=(4, 2, 2, 3)), rng.uniform(size=4)
    n = np.linalg.norm(w)

    def penalty(w):
        return gradient_penalty(lambda x: x.reshape(4, -1) @ w, jnp.float32(real), jnp.float32(fake), jnp.float32(eps))

    assert abs(float(penalty(jnp.float32(w))) - (n - 1) ** 2) < 1e-5
    assert rel_err(jax.grad(penalty)(jnp.float32(w)), 2 * (n - 1) * w / n) < 1e-5


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
def test_generator_and_discriminator_equal_pytorch_twin(size, channels):
    torch = pytest.importorskip("torch")
    from benchmarks.twins.dcgan_torch import TorchDiscriminator, TorchGenerator, copy_discriminator, copy_generator

    rng = np.random.default_rng(size)
    nz, ngf, ndf, batch = 16, 8, 8, 4
    gen, disc = Generator(size, channels, ngf), Discriminator(size, ndf)
    z = jnp.float32(rng.normal(size=(batch, nz)))
    x = jnp.float32(rng.uniform(-1, 1, size=(batch, size, size, channels)))
    gv, dv = random_variables(gen, rng, z, train=False), random_variables(disc, rng, x, train=False)
    tg, td = TorchGenerator(size, channels, nz, ngf), TorchDiscriminator(size, channels, ndf)
    copy_generator(tg, gv["params"], gv["batch_stats"])
    copy_discriminator(td, dv["params"], dv["batch_stats"])
    zt, xt = torch.from_numpy(np.array(z)), torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)

    def nhwc(t):
        return t.detach().permute(0, 2, 3, 1).numpy()

    for train in (False, True):
        tg.train(train)
        td.train(train)
        with torch.no_grad():
            g_ref, d_ref = nhwc(tg(zt)), td(xt).numpy()
        g_out, g_upd = jax.jit(partial(gen.apply, train=train, mutable=["batch_stats"]))(gv, z)
        d_out, d_upd = jax.jit(partial(disc.apply, train=train, mutable=["batch_stats"]))(dv, x)
        assert rel_err(g_out, g_ref) < 1e-4 and rel_err(d_out, d_ref) < 1e-4, train
    # after the train-mode pass, the running statistics moved exactly as torch's (momentum 0.1, unbiased var)
    twin_bns = [m for m in tg.main if isinstance(m, torch.nn.BatchNorm2d)]
    names = ["project_bn"] + [f"up{i}_bn" for i in range(len(twin_bns) - 1)]
    for name, bn in zip(names, twin_bns):
        assert rel_err(g_upd["batch_stats"][name]["mean"], bn.running_mean.numpy()) < 1e-4
        assert rel_err(g_upd["batch_stats"][name]["var"], bn.running_var.numpy()) < 1e-4


def test_critic_without_norm_equals_pytorch_twin():
    torch = pytest.importorskip("torch")
    from benchmarks.twins.dcgan_torch import TorchDiscriminator, copy_discriminator

    x = jnp.float32(np.random.default_rng(3).uniform(-1, 1, size=(3, 32, 32, 3)))
    disc = Discriminator(32, ndf=8, norm="none")
    dv = random_variables(disc, np.random.default_rng(4), x, train=False)  # biases non-zero too
    td = TorchDiscriminator(32, 3, 8, norm="none")
    copy_discriminator(td, dv["params"], {})
    with torch.no_grad():
        ref = td(torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)).numpy()
    assert rel_err(jax.jit(partial(disc.apply, train=True))(dv, x), ref) < 1e-4
