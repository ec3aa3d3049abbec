"""StyleGAN2 (jgen/nn/stylegan.py, jgen/families/stylegan.py) against its PyTorch twin and float64 formulas:
generator and discriminator outputs and gradients, R1 and its gradient, path lengths, FIR filters,
minibatch standard deviation, truncation, style mixing and the lazy regularisers' schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.config import apply_overrides, load_config
from jgen.families import gan, stylegan
from jgen.nn import stylegan as S

SIZE, CH, W_DIM, Z_DIM = 16, 3, 32, 24
WIDTHS = dict(channel_base=256, channel_max=32)  # 32 channels at 4 and 8 px, 16 at 16 px


def tiny_config(*extra):
    return apply_overrides(load_config("stylegan2_mnist5k"), [
        f"data.image_size={SIZE}", f"data.channels={CH}", f"model.latent_dim={Z_DIM}", f"model.w_dim={W_DIM}",
        "model.channel_base=256", "model.channel_max=32", "model.mbstd_group=2", "train.batch_size=4", *extra])


def _fir_np(x, axis, pad, gain=1.0):
    """Zero-padded correlation with [1, 3, 3, 1] / 8 * gain along `axis`, float64."""
    f = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0 * gain
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    x = np.pad(x, widths)
    return np.apply_along_axis(lambda v: np.correlate(v, f, mode="valid"), axis, x)


def test_fir_up_and_down_match_float64_formula():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3))
    z = np.zeros((2, 12, 12, 3))
    z[:, ::2, ::2] = x
    up = _fir_np(_fir_np(z, 1, (2, 1), 2.0), 2, (2, 1), 2.0)
    down = _fir_np(_fir_np(x, 1, (1, 1)), 2, (1, 1))[:, ::2, ::2]
    np.testing.assert_allclose(S.upsample2x(jnp.asarray(x, jnp.float32)), up, atol=1e-5)
    np.testing.assert_allclose(S.downsample2x(jnp.asarray(x, jnp.float32)), down, atol=1e-5)
    # the filters keep a constant image's level away from the zero-padded border
    ones = jnp.ones((1, 8, 8, 1))
    np.testing.assert_allclose(S.upsample2x(ones)[0, 2:-2, 2:-2, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(S.downsample2x(ones)[0, 1:-1, 1:-1, 0], 1.0, atol=1e-6)


def test_minibatch_std_matches_float64_formula():
    x = np.random.default_rng(1).normal(size=(6, 4, 4, 5))
    out = np.asarray(S.minibatch_std(jnp.asarray(x, jnp.float32), 3))
    groups = x.reshape(3, 2, 4, 4, 5)  # images n and n + 2 share a group
    std = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(out[..., :5], x, atol=1e-6)
    np.testing.assert_allclose(out[:, 0, 0, 5], np.tile(std, 3), rtol=1e-5)
    assert np.ptp(out[..., 5], axis=(1, 2)).max() == 0.0


def _tiny_networks(key):
    mapping, synthesis = S.Mapping(W_DIM, 2), S.Synthesis(SIZE, CH, **WIDTHS)
    disc = S.Discriminator(SIZE, mbstd_group=2, **WIDTHS)
    k = jax.random.split(key, 6)
    z = jax.random.normal(k[0], (4, Z_DIM))
    pm = jax.jit(mapping.init)(k[1], z)["params"]
    ws = jnp.repeat(mapping.apply({"params": pm}, z)[:, None], S.num_ws(SIZE), 1)
    ws = ws + 0.3 * jax.random.normal(k[2], ws.shape)  # a different w per layer, as mixing gives
    noises = S.draw_noise(k[3], 4, SIZE)
    ps = jax.jit(synthesis.init)(k[4], ws, noises)["params"]
    # noise strengths start at 0; move them so the noise path is compared too
    ps = jax.tree_util.tree_map_with_path(
        lambda p, a: a + 0.2 if p[-1].key == "noise_strength" else a, ps)
    pd = jax.jit(disc.init)(k[5], jnp.zeros((4, SIZE, SIZE, CH)))["params"]
    return (mapping, synthesis, disc), (pm, ps, pd), z, ws, noises


def test_stylegan2_equals_pytorch_twin_outputs_gradients_and_r1():
    torch = pytest.importorskip("torch")
    from benchmarks.twins import stylegan2_torch as tw

    (mapping, synthesis, disc), (pm, ps, pd), z, ws, noises = _tiny_networks(jax.random.PRNGKey(0))
    rows = {"b4_fc": (4, 4, WIDTHS["channel_max"])}

    def jgen_loss(pm, ps, pd, z, ws):
        img = synthesis.apply({"params": ps}, ws, noises)
        w = mapping.apply({"params": pm}, z)
        return jnp.sum(disc.apply({"params": pd}, img)) + jnp.sum(jnp.sin(w)), (img, w)

    (loss, (img, w)), grads = jax.jit(jax.value_and_grad(jgen_loss, argnums=(0, 1, 2), has_aux=True))(
        pm, ps, pd, z, ws)
    r1_fn = lambda pd, x: stylegan.r1_penalty(lambda y: disc.apply({"params": pd}, y), x)
    r1, r1_grad = jax.jit(jax.value_and_grad(r1_fn))(pd, img)

    tm, ts, td = tw.Mapping(Z_DIM, W_DIM, 2), tw.Synthesis(SIZE, CH, W_DIM, **WIDTHS), \
        tw.Discriminator(SIZE, CH, mbstd_group=2, **WIDTHS)
    tw.copy_params(tm, pm), tw.copy_params(ts, ps), tw.copy_params(td, pd, rows)
    t = lambda a: torch.tensor(np.asarray(a))
    t_noises = [t(n).permute(0, 3, 1, 2) for n in noises]
    t_img = ts(t(ws), t_noises)
    t_w = tm(t(z))
    t_loss = td(t_img).sum() + torch.sin(t_w).sum()
    t_loss.backward()
    np.testing.assert_allclose(t_img.detach().numpy().transpose(0, 2, 3, 1), img, atol=1e-4 * np.abs(img).max())
    np.testing.assert_allclose(t_w.detach().numpy(), w, atol=1e-5)
    assert abs(float(t_loss) - float(loss)) < 1e-4 * max(1.0, abs(float(loss)))
    for module, jgrads, extra in ((tm, grads[0], None), (ts, grads[1], None), (td, grads[2], rows)):
        twin = tw.grads_like(module, jgrads, extra)
        for a, b in zip(jax.tree.leaves(jgrads), jax.tree.leaves(twin)):
            np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, np.abs(b).max()))

    td.zero_grad()
    x = t(img).permute(0, 3, 1, 2).requires_grad_(True)
    (gx,) = torch.autograd.grad(td(x).sum(), x, create_graph=True)
    t_r1 = gx.square().sum(dim=[1, 2, 3]).mean()
    t_r1.backward()
    assert abs(float(t_r1) - float(r1)) < 1e-4 * max(1.0, float(t_r1))
    twin = tw.grads_like(td, r1_grad, rows)
    for a, b in zip(jax.tree.leaves(r1_grad), jax.tree.leaves(twin)):
        np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, np.abs(b).max()))


def test_path_lengths_equal_pytorch_autograd():
    torch = pytest.importorskip("torch")
    from benchmarks.twins import stylegan2_torch as tw

    config = tiny_config()
    _, (pm, ps, _), _, ws, noises = _tiny_networks(jax.random.PRNGKey(1))
    y = jax.random.normal(jax.random.PRNGKey(2), (4, SIZE, SIZE, CH)) / SIZE
    lengths = jax.jit(lambda p, ws, noises, y: stylegan.path_lengths(config, p, ws, noises, y))(
        {"mapping": pm, "synthesis": ps}, ws, noises, y)
    ts = tw.Synthesis(SIZE, CH, W_DIM, **WIDTHS)
    tw.copy_params(ts, ps)
    t = lambda a: torch.tensor(np.asarray(a))
    t_ws = t(ws).requires_grad_(True)
    img = ts(t_ws, [t(n).permute(0, 3, 1, 2) for n in noises])
    (g,) = torch.autograd.grad((img * t(y).permute(0, 3, 1, 2)).sum(), t_ws)
    np.testing.assert_allclose(lengths, g.square().sum(2).mean(1).sqrt().numpy(), rtol=1e-4)


def _state(config, seed=0):
    """gan.init, jitted: eager Flax init of these networks runs op by op (30 s on a loaded 2-core box)."""
    return jax.jit(lambda key: gan.init(config, key))(jax.random.PRNGKey(seed))


def test_truncation_pulls_towards_the_average_w():
    config = tiny_config()
    params, state = _state(config)
    state["gen"]["w_avg"] = jax.random.normal(jax.random.PRNGKey(3), (W_DIM,))
    variables = {"params": params["gen"], "model_state": state}
    z = jax.random.normal(jax.random.PRNGKey(4), (4, Z_DIM))
    images = jax.jit(lambda v, psi: stylegan.images(config, v, z, psi=psi))
    at = lambda psi: np.asarray(images(variables, psi))
    zero, one = at(0.0), at(1.0)
    assert np.max(np.abs(zero - zero[:1])) < 1e-5 < np.max(np.abs(one - one[:1]))  # psi 0: one image for all z
    w_avg = state["gen"]["w_avg"][None, None]
    ws_avg = jnp.broadcast_to(w_avg, (1, S.num_ws(SIZE), W_DIM))
    np.testing.assert_allclose(zero[:1], np.clip(stylegan.synthesize(config, params["gen"], ws_avg,
                                                                      stylegan.const_noise(config, 1)), -1, 1),
                               atol=1e-5)
    w = stylegan.mapping(config, params["gen"], z)
    ws = jnp.broadcast_to(w[:, None], (4, S.num_ws(SIZE), W_DIM))
    untruncated = np.clip(stylegan.synthesize(config, params["gen"], ws, stylegan.const_noise(config, 4)), -1, 1)
    np.testing.assert_allclose(one, untruncated, atol=1e-5)  # psi 1: the mapping's own w


def test_style_mixing_takes_a_second_w_from_one_cut_on():
    config = tiny_config("gan.style_mixing=1.0")
    params, state = _state(config)
    for seed in range(4):
        ws, new = stylegan._ws(config, params["gen"], state["gen"], jax.random.PRNGKey(seed), 4, jnp.float32)
        ws = np.asarray(ws)
        same = [np.allclose(ws[:, i], ws[:, 0]) for i in range(ws.shape[1])]
        cut = same.index(False)
        assert 1 <= cut < S.num_ws(SIZE) and all(same[:cut]) and not any(same[cut:])
        assert np.allclose(ws[:, cut:], ws[:, cut:cut + 1])
    beta = config.gan.w_avg_beta
    z = jax.random.normal(jax.random.split(jax.random.PRNGKey(3), 4)[0], (4, Z_DIM))  # _ws's first draw
    w = stylegan.mapping(config, params["gen"], z)
    np.testing.assert_allclose(new["w_avg"], (1 - beta) * np.mean(w, 0), atol=1e-6)


def test_lazy_r1_joins_one_step_in_interval_with_the_interval_as_weight():
    config = tiny_config("gan.r1_gamma=0.5", "gan.r1_interval=4")
    params, state = _state(config)
    real = jax.random.uniform(jax.random.PRNGKey(5), (4, SIZE, SIZE, CH), minval=-1, maxval=1)
    fake = jax.random.uniform(jax.random.PRNGKey(6), (4, SIZE, SIZE, CH), minval=-1, maxval=1)
    key = jax.random.PRNGKey(7)
    disc_loss = jax.jit(lambda p, step: gan._disc_loss(config, p, {}, real, fake, key, step)[0])
    loss = lambda step: float(disc_loss(params["disc"], step))
    r1 = float(jax.jit(lambda p: stylegan.r1_penalty(lambda x: stylegan.discriminate(config, p, x), real))(
        params["disc"]))
    assert r1 > 0
    assert loss(1) == loss(2) == loss(3)
    np.testing.assert_allclose(loss(0) - loss(1), 0.5 / 2 * 4 * r1, rtol=1e-4)
    np.testing.assert_allclose(loss(8) - loss(1), 0.5 / 2 * 4 * r1, rtol=1e-4)


def _psnr(a, b, keep=None):
    err = np.square(np.asarray(a) - np.asarray(b))
    mse = err.mean() if keep is None else (err * keep).sum() / (keep.sum() * a.shape[-1])
    return 10 * np.log10(4.0 / mse)


def test_projection_recovers_a_generated_image_and_fills_a_hole():
    """W+ projection of an image the generator made (with its own random noise), 150 steps: PSNR above
    24 dB and 6 dB above the start (w_avg's image); with the right half unknown, the left half fits as
    closely while the right half is the generator's own fill, not the input's."""
    config = tiny_config("data.channels=1", "data.image_size=8")
    params, state = _state(config)
    probe = stylegan.mapping(config, params["gen"], jax.random.normal(jax.random.PRNGKey(9), (500, Z_DIM)))
    state["gen"]["w_avg"] = jnp.mean(probe, 0)
    variables = {"params": params["gen"], "model_state": state}
    target = stylegan.images(config, variables, jax.random.normal(jax.random.PRNGKey(1), (2, Z_DIM)),
                             noise_key=jax.random.PRNGKey(5))
    start = stylegan.images(config, variables, jnp.zeros((2, Z_DIM)), psi=0.0)
    keep = np.ones((2, 8, 8, 1), np.float32)
    half = keep.copy()
    half[:, :, 4:] = 0.0
    fn = jax.jit(lambda t, k: stylegan.project(config, variables, t, k, jax.random.PRNGKey(2), 150, w_plus=True))
    _, _, whole = fn(target, keep)
    assert _psnr(whole, target) > 24.0 and _psnr(whole, target) > _psnr(start, target) + 6.0
    masked_target = target * half  # the hole's pixels are zeros in the input
    _, _, filled = fn(masked_target, half)
    assert _psnr(filled, target, half) > 24.0
    hole = 1.0 - half
    assert _psnr(filled, masked_target, hole) < _psnr(filled, target, hole)  # the hole is not the input's zeros


@pytest.mark.long  # three compiles of a gradient of a gradient; path_lengths itself is checked against PyTorch
def test_lazy_path_length_joins_one_step_in_interval_with_its_weight_and_moves_its_target():
    """_path_length_step: nothing on steps off the interval; on it, gradients linear in pl_weight *
    pl_interval, and pl_mean moved by pl_decay towards the batch's mean length (path_lengths, checked
    against PyTorch above, at the same draws)."""
    base = ["gan.pl_decay=0.5", "gan.pl_batch_shrink=2", "data.image_size=8"]
    config = tiny_config("gan.pl_weight=1.0", "gan.pl_interval=2", *base)
    params, state = _state(config)
    zeros = jax.tree.map(jnp.zeros_like, params["gen"])
    key = jax.random.PRNGKey(3)
    compiled = {}  # one compile per config: the step index is traced

    def step(c, s):
        if id(c) not in compiled:
            compiled[id(c)] = jax.jit(lambda p, st, i: gan._path_length_step(c, p, st, zeros, key, 4, i))
        return compiled[id(c)](params["gen"], state["gen"], s)

    off, off_state = step(config, 1)
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(off)) and float(off_state["pl_mean"]) == 0
    on, on_state = step(config, 4)
    twice, _ = step(tiny_config("gan.pl_weight=2.0", "gan.pl_interval=2", *base), 0)
    four, _ = step(tiny_config("gan.pl_weight=1.0", "gan.pl_interval=4", *base), 0)
    flat = lambda t: np.concatenate([np.ravel(g) for g in jax.tree.leaves(t)])
    assert np.abs(flat(on)).max() > 0
    np.testing.assert_allclose(flat(twice), 2 * flat(on), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(flat(four), 2 * flat(on), rtol=1e-4, atol=1e-9)
    ws_key, noise_key, y_key = jax.random.split(key, 3)  # path_length's draws, at batch 4 / 2
    ws, _ = stylegan._ws(config, params["gen"], state["gen"], ws_key, 2, jnp.float32)
    y = jax.random.normal(y_key, (2, 8, 8, CH)) / 8
    lengths = stylegan.path_lengths(config, params["gen"], ws, S.draw_noise(noise_key, 2, 8), y)
    np.testing.assert_allclose(float(on_state["pl_mean"]), 0.5 * float(jnp.mean(lengths)), rtol=1e-5)
