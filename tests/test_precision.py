"""Mixed precision (train.compute_dtype) and gradient accumulation (train.grad_accum) on the real families."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import MNIST_CONFIG, TINY, TINY_VAE, VAE_CONFIG, rel_err
from jgen.config import apply_overrides, load_config
from jgen.data.pipeline import local_batches
from jgen.data.sources import open_source
from jgen.families import get_family
from jgen.train.step import accumulated_grad, init_state, train_step


def test_accumulated_grad_equals_the_full_batch_gradient():
    """Mean loss, gradient and per-row aux over 4 micro-batches == one pass over the batch (float64 NumPy)."""
    rng = np.random.default_rng(0)
    x, y, w = rng.normal(size=(12, 3)), rng.normal(size=12), rng.normal(size=3)

    def loss_fn(w, micro, j):
        r = micro["x"] @ w - micro["y"]
        return jnp.mean(r ** 2), r

    (loss, resid), grad = accumulated_grad(loss_fn, jnp.float32(w), {"x": jnp.float32(x), "y": jnp.float32(y)}, 4)
    r = x @ w - y
    assert rel_err(loss, np.mean(r ** 2)) < 1e-6
    assert rel_err(grad, 2 * x.T @ r / 12) < 1e-6
    assert rel_err(resid, r) < 1e-6  # rows back in their original order


def _config(path, tiny, *extra):
    return apply_overrides(load_config(path), list(tiny) + list(extra))


def _batches(config, n):
    it = local_batches(open_source(config.data.source), config.data, config.train.batch_size, config.seed)
    return [{k: jnp.asarray(v) for k, v in next(it).items()} for _ in range(n)]


# CI keeps the beta-VAE (the same accumulation code, a smaller compile); the U-Net's is a long check
@pytest.mark.parametrize("path,tiny", [pytest.param(MNIST_CONFIG, TINY, marks=pytest.mark.long), (VAE_CONFIG, TINY_VAE)],
                         ids=["ddpm", "betavae"])
def test_grad_accum_matches_one_large_batch(path, tiny):
    """Two steps at batch 16 as 4 micro-batches of 4 == as one batch of 16 (loss, gradient norm, params).

    optim.eps=1 keeps Adam's step linear in the gradient, so parameter differences show gradient
    differences instead of Adam's sign-like first steps amplifying rounding.
    """
    extra = ["model.dropout=0.0"] if path == MNIST_CONFIG else []
    runs = []
    for accum in (1, 4):
        config = _config(path, tiny, "optim.eps=1.0", f"train.grad_accum={accum}", *extra)
        family = get_family(config.family)
        state = init_state(family, config, jax.random.PRNGKey(0))
        step = jax.jit(lambda s, b: train_step(family, config, s, b))
        metrics = []
        for batch in _batches(config, 2):
            state, m = step(state, batch)
            metrics.append(m)
        runs.append((state, metrics))
    (a, ma), (b, mb) = runs
    for x, y in zip(ma, mb):
        assert rel_err(y["loss"], x["loss"]) < 1e-5 and rel_err(y["grad_norm"], x["grad_norm"]) < 1e-5
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        assert np.max(np.abs(np.asarray(x) - np.asarray(y))) < 1e-6


# the full-size recipe's U-Net in two precisions; CI checks every step's bfloat16 policy by lowering
@pytest.mark.long
def test_bfloat16_ddpm_loss_within_two_percent_of_float32():
    """The offline DDPM recipe on mnist5k, 20 steps on the same batches and noise: bfloat16 compute
    (float32 params, optimiser and loss) tracks the float32 loss within 2%."""
    batches, losses = None, {}
    for dtype in ("float32", "bfloat16"):
        config = _config(MNIST_CONFIG, [], f"train.compute_dtype={dtype}")
        batches = batches or _batches(config, 20)
        family = get_family(config.family)
        state = init_state(family, config, jax.random.PRNGKey(0))
        step = jax.jit(lambda s, b: train_step(family, config, s, b))
        hlo = step.lower(state, batches[0]).as_text()
        assert ("bf16" in hlo) == (dtype == "bfloat16")  # the compute really is narrow, and only when asked
        out = []
        for batch in batches:
            state, m = step(state, batch)
            out.append(float(m["loss"]))
        losses[dtype] = np.array(out)
        if dtype == "bfloat16":  # the params stay float32; only the compute is narrow
            assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((state.params, state.opt_state))
                       if jnp.issubdtype(x.dtype, jnp.floating))
    f32, bf16 = losses["float32"], losses["bfloat16"]
    assert f32[-5:].mean() < 0.97 * f32[:5].mean()  # it trains (still in lr warm-up)
    assert abs(bf16.mean() - f32.mean()) / f32.mean() < 0.02
    assert abs(bf16[-5:].mean() - f32[-5:].mean()) / f32[-5:].mean() < 0.02
    assert not np.array_equal(f32, bf16)
