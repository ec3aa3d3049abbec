"""jgen's DiT (jgen/nn/dit.py) against its PyTorch twin, the paper's parameter counts, a float64 position
embedding and the shape checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_variables, rel_err
from jgen.errors import JgenError
from jgen.nn.dit import SIZES, DiT, TokenDense, attention_heads_first, check_shape, pos_embed_2d

TINY = dict(patch_size=2, hidden=64, depth=2, heads=4, out_ch=4)


def inputs(num_classes, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.float32(rng.uniform(-1, 1, size=(3, 8, 8, 4)))
    t = jnp.float32([-3.5, 17.25, 999.0])  # fractional and negative (EDM's 250 ln sigma) timesteps too
    y = jnp.int32([0, 7, num_classes]) if num_classes else None  # the last: the null class
    return x, t, y


def random_params(model, x, t, y, seed):
    """N(0, 0.1) everywhere (helpers.random_variables): the zero-initialised adaLN and output layers,
    left at zero, would hide every bug upstream of them."""
    return random_variables(model, np.random.default_rng(seed), x, t, y)["params"]


def test_init_is_adaln_zero_and_position_embedding_is_no_parameter():
    model = DiT(num_classes=10, **{**TINY, "depth": 1})  # one block: a jitted init compiles per parameter
    x, t, y = inputs(10)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x, t, y)["params"]
    for name in ("final_adaLN_modulation", "final_linear"):
        assert not np.any(params[name]["kernel"]) and not np.any(params[name]["bias"])
    assert not np.any(params["block_0"]["adaLN_modulation"]["kernel"])
    assert params["y_embedder"]["embedding"].shape == (11, 64)  # num_classes + the null row
    assert np.std(params["t_embedder_0"]["kernel"]) == pytest.approx(0.02, rel=0.1)
    # patch embedding: xavier uniform over the flattened [p*p*C, D] kernel, bound sqrt(6 / (16 + 64))
    assert np.max(np.abs(params["x_embedder"]["kernel"])) <= np.sqrt(6 / 80)
    assert np.max(np.abs(params["x_embedder"]["kernel"])) > 0.9 * np.sqrt(6 / 80)
    assert not any(leaf.shape == (16, 64) for leaf in jax.tree.leaves(params))  # 4x4 tokens: no pos_embed param
    out = jax.jit(model.apply)({"params": params}, x, t, y)
    assert out.shape == (3, 8, 8, 4) and not np.any(out)  # every block and the output start at zero


@pytest.mark.parametrize("num_classes", [10, 0])
def test_dit_equals_pytorch_twin_outputs_and_gradients(num_classes):
    torch = pytest.importorskip("torch")
    from benchmarks.twins import dit_torch

    torch.set_num_threads(2)
    model = DiT(num_classes=num_classes, **TINY)
    x, t, y = inputs(num_classes)
    params = random_params(model, x, t, y, seed=1)
    target = jnp.float32(np.random.default_rng(2).normal(size=(3, 8, 8, 4)))

    def loss(p):
        out = model.apply({"params": p}, x, t, y)
        return jnp.mean(jnp.square(out - target)), out

    (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    twin = dit_torch.TorchDiT(4, 8, num_classes=num_classes, **TINY)
    dit_torch.copy_dit(twin, params)
    assert sum(p.numel() for p in twin.parameters()) == sum(v.size for v in jax.tree.leaves(params))
    nchw = lambda a: torch.from_numpy(np.array(a, np.float32)).permute(0, 3, 1, 2)
    ref = twin(nchw(x), torch.from_numpy(np.array(t)), None if y is None else torch.from_numpy(np.array(y)).long())
    ref_loss = torch.mean((ref - nchw(target)) ** 2)
    ref_loss.backward()
    assert rel_err(out, ref.detach().permute(0, 2, 3, 1).numpy()) < 1e-4
    assert rel_err(value, ref_loss.item()) < 1e-4

    # jgen's gradients laid out as torch weights by the same copier, compared array by array
    as_torch = dit_torch.TorchDiT(4, 8, num_classes=num_classes, **TINY)
    dit_torch.copy_dit(as_torch, grads)
    got = dict(as_torch.named_parameters())
    for name, p in twin.named_parameters():
        assert np.any(p.grad.numpy()), name  # every array has a gradient to compare
        assert rel_err(got[name].detach().numpy(), p.grad.numpy()) < 1e-4, name


@pytest.mark.parametrize("size,millions", [("S", 33), ("B", 130), ("L", 458), ("XL", 675)])
def test_parameter_counts_are_the_papers(size, millions):
    """DiT-{S,B,L,XL}/2 on 32x32x4 latents, 1000 ImageNet classes (+ the null row), learn_sigma's
    out_ch = 2 * 4 = 8, as the paper counts them (its Table 4: 33M, 130M, 458M, 675M). The paper counts
    trainable parameters: the reference code's frozen 256 x D position embedding, added, would make
    B/2 130.5M (131). Here it is no parameter at all. Counted from shapes: XL is never materialised."""
    depth, hidden, heads = SIZES[size]
    model = DiT(patch_size=2, hidden=hidden, depth=depth, heads=heads, out_ch=8, num_classes=1000)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 4)), jnp.zeros((1,)),
                            jnp.zeros((1,), jnp.int32))
    count = sum(leaf.size for leaf in jax.tree.leaves(shapes))
    assert round(count / 1e6) == millions


def test_position_embedding_against_float64_formula():
    dim, grid = 16, 3
    ref = np.zeros((grid * grid, dim))
    for r in range(grid):
        for c in range(grid):
            for i in range(dim // 4):
                w = 10000.0 ** (-i / (dim // 4))
                ref[r * grid + c, i] = np.sin(c * w)  # first half: the column
                ref[r * grid + c, dim // 4 + i] = np.cos(c * w)
                ref[r * grid + c, dim // 2 + i] = np.sin(r * w)  # second half: the row
                ref[r * grid + c, 3 * dim // 4 + i] = np.cos(r * w)
    got = pos_embed_2d(dim, grid)
    assert got.dtype == np.float32 and np.max(np.abs(got - ref)) < 1e-6


def test_token_dense_is_nn_dense_on_any_leading_axes():
    """TokenDense (2-D rows on a CPU) against flax's nn.Dense with the same kernel init: the same
    parameter tree and initial values, and outputs equal to a float64 x W + b on [2, 3, 5] inputs; in
    bfloat16 the same dtype as nn.Dense gives."""
    import flax.linen as nn

    x = jnp.float32(np.random.default_rng(6).normal(size=(2, 3, 5)))
    ours, flax_dense = TokenDense(4), nn.Dense(4, kernel_init=nn.initializers.xavier_uniform())
    params = ours.init(jax.random.PRNGKey(0), x)
    want = flax_dense.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, want)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want)))
    params = jax.tree.map(lambda a: a + 0.1, params)  # a non-zero bias too
    k, b = (np.float64(params["params"][n]) for n in ("kernel", "bias"))
    assert np.max(np.abs(jax.jit(ours.apply)(params, x) - (np.float64(x) @ k + b))) < 1e-5
    x16 = x.astype(jnp.bfloat16)
    bf = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    assert ours.apply(bf, x16).dtype == flax_dense.apply(bf, x16).dtype == jnp.bfloat16


def test_cpu_attention_against_float64_formula_and_jax():
    """The CPU form of the attention against softmax(q k^T / sqrt(d)) v in float64 NumPy, per head
    (Vaswani et al. eq. 1), and its gradient against jax.nn.dot_product_attention's (the form used off
    the CPU); in bfloat16 it keeps the dtype and stays close."""
    rng = np.random.default_rng(4)
    q, k, v = (rng.normal(size=(2, 5, 3, 4)) for _ in range(3))  # [B, T, heads, d]
    logits = np.einsum("bthd,bshd->bhts", q, k) / 2.0
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    ref = np.einsum("bhts,bshd->bthd", probs / probs.sum(-1, keepdims=True), v)
    q32, k32, v32 = (jnp.float32(a) for a in (q, k, v))
    assert np.max(np.abs(attention_heads_first(q32, k32, v32) - ref)) < 1e-5
    grads = [jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1, 2))(q32, k32, v32)
             for f in (attention_heads_first, jax.nn.dot_product_attention)]
    for got, want in zip(*grads):
        assert np.max(np.abs(got - want)) < 1e-5
    out16 = attention_heads_first(*(a.astype(jnp.bfloat16) for a in (q32, k32, v32)))
    assert out16.dtype == jnp.bfloat16 and np.max(np.abs(out16.astype(np.float32) - ref)) < 0.05


def test_bfloat16_compute_stays_bfloat16_and_close():
    model = DiT(num_classes=10, **TINY)
    x, t, y = inputs(10)
    params = random_params(model, x, t, y, seed=3)
    out32 = jax.jit(model.apply)({"params": params}, x, t, y)
    bf16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    out16 = jax.jit(model.apply)({"params": bf16}, x.astype(jnp.bfloat16), t, y)
    assert out16.dtype == jnp.bfloat16
    assert rel_err(out16.astype(jnp.float32), out32) < 0.05


@pytest.mark.parametrize("args,numbers", [((28, 3, 384, 6), ("3", "28")), ((32, 2, 384, 5), ("5", "384"))])
def test_check_shape_names_both_numbers(args, numbers):
    with pytest.raises(JgenError) as err:
        check_shape(*args)
    message = str(err.value)
    assert "\n" not in message and all(f"={n}" in message for n in numbers)
    check_shape(28, 2, 384, 6)  # fine
