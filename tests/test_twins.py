"""jgen against its PyTorch twins (benchmarks/twins/): the U-Net's outputs with copied weights, and two
optimiser steps of every family fed the same data and random draws change both alike.

Updates are compared as deltas, ||dp_jgen - dp_torch|| / ||dp_torch|| per parameter array, so the
test sees the optimiser step itself rather than weights that barely moved.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import GAN_CONFIG, MNIST_CONFIG, VAE_CONFIG, random_variables, rel_err
from jgen.config import apply_overrides, load_config
from jgen.diffusion.schedules import schedule_from_config
from jgen.families import diffusion, gan, vae
from jgen.nn.unet import UNet
from jgen.train.step import init_state, make_optimizer, train_step

torch = pytest.importorskip("torch")
from benchmarks.twins import dcgan_torch, steps, unet_torch, vae_torch  # noqa: E402

torch.set_num_threads(2)


def nchw(x):
    return torch.from_numpy(np.array(x, np.float32)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("size,kw", [
    (16, dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), num_groups=4)),
    (28, dict(ch=8, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=(7, 28), num_groups=8)),
])
def test_unet_equals_pytorch_twin(size, kw):
    rng = np.random.default_rng(size)
    x = jnp.float32(rng.uniform(-1, 1, size=(3, size, size, 2)))
    t = jnp.asarray([0, 17, 999])
    model = UNet(dropout=0.0, out_ch=2, **kw)
    variables = random_variables(model, rng, x, t)  # all weights random: no zero-initialised branch hides a bug
    twin = unet_torch.TorchUNet(2, size, dropout=0.0, **kw).eval()
    unet_torch.copy_unet(twin, variables["params"])
    assert sum(p.numel() for p in twin.parameters()) == sum(v.size for v in jax.tree.leaves(variables))
    with torch.no_grad():
        ref = twin(nchw(x), torch.from_numpy(np.array(t))).permute(0, 2, 3, 1).numpy()
    assert rel_err(jax.jit(model.apply)(variables, x, t), ref) < 1e-4


def perturbed(params, seed):
    """params + N(0, 0.02): wakes the zero-initialised layers, whose upstream gradients are exactly 0."""
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return tree.unflatten([leaf + jnp.float32(0.02 * rng.normal(size=leaf.shape)) for leaf in leaves])


def assert_same_updates(before, after, twin_before, twin_after, copy_fn, tol=1e-4, skip=(), whole=False):
    """Copies jgen's before/after trees into fresh twins via copy_fn and compares parameter deltas,
    per array, or (whole) as one vector of all of them."""
    ref0, ref1 = dict(twin_before), dict(twin_after)
    got0, got1 = copy_fn(before), copy_fn(after)
    assert ref0.keys() == got0.keys()
    if whole:
        names = [k for k in ref0 if not k.endswith(skip)]
        ref0, ref1, got0, got1 = ({"all": np.concatenate([d[k].ravel() for k in names])}
                                  for d in (ref0, ref1, got0, got1))
    for name in ref0:
        if name.endswith(skip):
            continue
        d_ref, d_got = ref1[name] - ref0[name], got1[name] - got0[name]
        if np.all(d_ref == 0):
            assert np.all(d_got == 0), name
        else:
            # each side's new float32 weight is rounded to within half a unit in the last place:
            # differences up to one ulp are storage, not the step (updates of 2e-4 on weights near
            # 1 are only ~1,700 ulps)
            ulp = np.spacing(np.abs(ref1[name]).astype(np.float32))
            excess = np.maximum(np.abs(d_got - d_ref) - ulp, 0.0)
            assert np.linalg.norm(excess) / np.linalg.norm(d_ref) < tol, (name, rel_err(d_got, d_ref))


def state_dict_np(module):
    """Weights and running statistics; BatchNorm's num_batches_tracked is a counter jgen does not keep."""
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items() if "num_batches" not in k}


def run_jgen_steps(family, config, state, batch, n):
    step = jax.jit(partial(train_step, family, config))
    for _ in range(n):
        state, _ = step(state, batch)
    return state


# CI keeps eps 10 (the stricter, array-by-array comparison); the usual Adam's is a long check
@pytest.mark.parametrize("lr,eps", [(1e3, 10.0), pytest.param(2e-4, 1e-8, marks=pytest.mark.long)])
def test_ddpm_step_equals_pytorch_twin(lr, eps):
    """eps 10, far above |g|, makes the step about -100 g (lr 1e3): the comparison, array by array,
    sees the clipped gradients themselves. eps 1e-8 is the usual Adam, whose first step is nearly
    -lr * sign(g); it is compared as one vector, since in an array whose gradients are all near
    1e-8 the sign-like step amplifies rounding."""
    config = apply_overrides(load_config(MNIST_CONFIG), [
        "data.image_size=16", "model.ch=16", "model.ch_mult=(1,2)", "model.attn_resolutions=(8,)",
        "model.num_groups=4", "model.dropout=0.0", "optim.warmup_steps=0", f"optim.lr={lr}", f"optim.eps={eps}",
        f"optim.weight_decay={0.01 if eps < 1 else 0.0}", "optim.grad_clip=1.0", "optim.ema_decay=0.9"])
    rng = np.random.default_rng(0)
    x0 = jnp.float32(rng.uniform(-1, 1, size=(4, 16, 16, 1)))
    state = init_state(diffusion, config, jax.random.PRNGKey(0))
    params = perturbed(state.params, 1)
    state = state.replace(params=params, ema_params=params,
                          opt_state=make_optimizer(config.optim).init(params))
    n = 1
    after = run_jgen_steps(diffusion, config, state, {"image": x0}, n)

    sched = schedule_from_config(config.diffusion)
    kw = dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), num_groups=4, dropout=0.0)

    def twin_of(p):
        twin = unet_torch.TorchUNet(1, 16, **kw)
        unet_torch.copy_unet(twin, p)
        return twin

    def as_np(p):
        return state_dict_np(twin_of(p))

    twin = twin_of(params)
    before = state_dict_np(twin)
    step = steps.DDPMStep(twin, config, np.asarray(sched.sqrt_alphas_cumprod),
                          np.asarray(sched.sqrt_one_minus_alphas_cumprod))
    for k in range(n):  # jgen's draws for step k (jgen.families.diffusion.prepare)
        t_key, noise_key, _ = jax.random.split(jax.random.fold_in(state.rng, k), 3)
        t = jax.random.randint(t_key, (4,), 0, sched.num_timesteps)
        noise = jax.random.normal(noise_key, x0.shape)
        step(nchw(x0), torch.from_numpy(np.array(t)).long(), nchw(noise))
    # the key bias of attention has a zero gradient in exact arithmetic (softmax ignores a constant
    # added to every logit): both frameworks see rounding noise there
    skip = ("k.bias",)
    whole = eps < 1
    assert_same_updates(params, after.params, before, state_dict_np(twin), as_np, skip=skip, whole=whole)
    assert_same_updates(params, after.ema_params, before, state_dict_np(step.ema.copy), as_np, skip=skip,
                        whole=whole)


def test_dcgan_steps_equal_pytorch_twin():
    config = apply_overrides(load_config(GAN_CONFIG), [
        "data.image_size=16", "model.ngf=8", "model.ndf=8", "model.latent_dim=8", "model.upsample=subpixel"])
    m, nz = 8, 8
    real = jnp.float32(np.random.default_rng(0).uniform(-1, 1, size=(m, 16, 16, 1)))
    state = init_state(gan, config, jax.random.PRNGKey(0))
    n = 2
    after = run_jgen_steps(gan, config, state, {"image": real}, n)

    def twins_of(params, stats):
        g, d = dcgan_torch.TorchGenerator(16, 1, nz, 8), dcgan_torch.TorchDiscriminator(16, 1, 8)
        dcgan_torch.copy_generator(g, params["gen"], stats["gen"])
        dcgan_torch.copy_discriminator(d, params["disc"], stats["disc"])
        return g, d

    def as_np(tree):
        g, d = twins_of(*tree)
        return {**{"g." + k: v for k, v in state_dict_np(g).items()},
                **{"d." + k: v for k, v in state_dict_np(d).items()}}

    g, d = twins_of(state.params, state.model_state)
    before = as_np((state.params, state.model_state))
    step = steps.DCGANStep(g, d, config)
    for k in range(n):  # jgen's latents for step k (jgen.families.gan.update)
        z_key, _ = jax.random.split(jax.random.fold_in(state.rng, k))
        step(nchw(real), torch.from_numpy(np.array(jax.random.normal(z_key, (m, nz)))))
    twin_after = {**{"g." + k: v for k, v in state_dict_np(g).items()},
                  **{"d." + k: v for k, v in state_dict_np(d).items()}}
    # params and both networks' BatchNorm running statistics
    assert_same_updates((state.params, state.model_state), (after.params, after.model_state), before,
                        twin_after, as_np)
    g_ema = state_dict_np(step.ema.copy)
    twin_ema = {"g." + k: v for k, v in g_ema.items() if "running" not in k}
    jgen_ema = {k: v for k, v in as_np(({"gen": after.ema_params, "disc": after.params["disc"]},
                                        after.model_state)).items() if k in twin_ema}
    for k in twin_ema:
        assert rel_err(jgen_ema[k], twin_ema[k]) < 1e-5, k


def test_vae_steps_equal_pytorch_twin():
    config = apply_overrides(load_config(VAE_CONFIG), ["data.image_size=16", "model.latent_dim=4",
                                                        "optim.grad_clip=1.0", "optim.warmup_steps=1"])
    x = jnp.float32(np.random.default_rng(0).uniform(-1, 1, size=(8, 16, 16, 1)))
    state = init_state(vae, config, jax.random.PRNGKey(0))
    n = 3
    after = run_jgen_steps(vae, config, state, {"image": x}, n)

    def twins_of(params):
        e, d = vae_torch.TorchEncoder(16, 1, 4), vae_torch.TorchDecoder(16, 1, 4)
        vae_torch.copy_encoder(e, params["encoder"])
        vae_torch.copy_decoder(d, params["decoder"])
        return e, d

    def as_np(params):
        e, d = twins_of(params)
        return {**{"e." + k: v for k, v in state_dict_np(e).items()},
                **{"d." + k: v for k, v in state_dict_np(d).items()}}

    e, d = twins_of(state.params)
    before = as_np(state.params)
    step = steps.VAEStep(e, d, config)
    for k in range(n):  # jgen's reparameterisation noise for step k (jgen.families.vae.prepare)
        eps = jax.random.normal(jax.random.fold_in(state.rng, k), (8, 4))
        step(nchw(x), torch.from_numpy(np.array(eps)))
    twin_after = {**{"e." + k: v for k, v in state_dict_np(e).items()},
                  **{"d." + k: v for k, v in state_dict_np(d).items()}}
    assert_same_updates(state.params, after.params, before, twin_after, as_np)
