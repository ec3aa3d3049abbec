"""What a GPU or a TPU would compile, checked on this CPU: each family's train step and sampler for
the mnist5k, CIFAR-10 and CelebA-64 recipes, exported with jax.export for platforms cuda and tpu, in
float32 and bfloat16, read as StableHLO text.

- The CPU forms (phase convolutions, optimisation barriers, the custom GroupNorm) stay on the CPU:
  no barrier, and a sampler runs exactly one convolution per convolution kernel of its network.
- float32 means float32: every matmul and convolution carries the policy's precision (HIGHEST by
  default), so no TF32 or one-pass bfloat16 sneaks in.
- bfloat16 means bfloat16: every matmul and convolution takes bfloat16 operands, while attention
  logits accumulate in float32 and the loss is float32.
- The FID Inception's convolutions (and its logits layer) are HIGHEST on every platform.
"""

import os
import re
from functools import partial

import jax
import jax.numpy as jnp
import pytest
from jax import export

from jgen import latent
from jgen.config import apply_overrides, load_config
from jgen.eval import inception
from jgen.families import get_family
from jgen.run import Run
from jgen.sharding import make_mesh
from jgen.train.step import state_shapes, train_step

RECIPES = ["ddpm_mnist5k", "dcgan_mnist5k", "betavae_mnist5k", "ddpm_cifar10", "dcgan_cifar10", "betavae_celeba64",
           "dcgan_celeba64", "edm_mnist5k", "stylegan2_celeba64", "ae_mnist5k"]
# latent runs' steps, on their autoencoder recipe's latents (planned: no checkpoint needed)
LATENT = ["ldm_celeba64", "ldm_lsun256"]
# EDM: c_in scaling and Heun's corrector; the DiT's own test is below. StyleGAN2's step holds R1 and the
# path-length term (gradients of gradients), style mixing and ADA's augmentation (set below)
PLATFORMS = ["cuda", "tpu"]
BF16_PRODUCTS = "lhs_precision_type = bf16, rhs_precision_type = bf16, accumulation_type = f32"
OPS = re.compile(r"stablehlo\.(convolution|dot_general)\b.*")


def _ops(text: str) -> list:
    return [m.group(0) for m in OPS.finditer(text)]


def _operand_types(op: str) -> list:
    """The element types of an op's two operands, from its signature `: (tensor<..xT>, tensor<..xT>) -> ..`."""
    signature = op.rsplit(" : (", 1)[1]
    return re.findall(r"tensor<(?:[0-9?]+x)*([a-z0-9]+)>", signature.split(") ->")[0])


def _config(recipe, dtype):
    extra = ["gan.augment=ada"] if recipe.startswith("stylegan2") else []
    if recipe == "ae_mnist5k":  # the digits' recipe has no discriminator; the pod recipes' patch GAN lowers here
        extra = ["ae.disc_weight=0.5"]
    config = apply_overrides(load_config(recipe), [f"train.compute_dtype={dtype}", *extra])
    if latent.is_latent(config):  # latents:runs/ae_X is the ae_X recipe's run
        config = latent.planned_config(config, load_config(os.path.basename(latent.parse(config.data.source)[0])))
    return config


def _check_policy(text: str, dtype: str) -> None:
    ops = _ops(text)
    assert ops and "optimization_barrier" not in text
    for op in ops:
        if dtype == "float32":
            assert op.count("HIGHEST") == 2, op[:300]
        else:  # (or the DiT attention's dot algorithm, which rounds a float32 operand to bfloat16 itself)
            assert _operand_types(op) == ["bf16", "bf16"] or BF16_PRODUCTS in op, op[-200:]


def _kernels(params) -> int:
    return sum(1 for leaf in jax.tree.leaves(params) if len(leaf.shape) == 4)


# CI lowers every recipe's step in float32 and, in bfloat16, one of each network kind (the U-Net with its
# attention logits, the DiT, StyleGAN2, the autoencoder); the other bfloat16 steps, the CIFAR-10 U-Net
# (35.7M parameters, 80 s for the mnist U-Net's code) and DiT-B/2 (DiT-S/2's code) are long checks
BF16_IN_CI = ("ddpm_mnist5k", "ldm_celeba64", "stylegan2_celeba64", "ae_mnist5k")
# StyleGAN2 at 64 px lowers in bfloat16 in CI; its float32 step (the same graph, every dot HIGHEST) is a long check
STEP_CASES = [pytest.param(r, d, marks=pytest.mark.long)
              if r in ("ddpm_cifar10", "ldm_lsun256") or (d == "bfloat16" and r not in BF16_IN_CI)
              or (r, d) == ("stylegan2_celeba64", "float32") else (r, d)
              for r in RECIPES + LATENT for d in ("float32", "bfloat16")]


@pytest.mark.parametrize("recipe,dtype", STEP_CASES)
def test_train_step_lowers_for_gpu_and_tpu_without_cpu_forms(recipe, dtype):
    config = _config(recipe, dtype)
    family = get_family(config.family)
    shapes = state_shapes(family, config)
    s, c = config.data.image_size, config.data.channels
    n = (4 if config.gan.arch == "stylegan2" else 2) * config.gan.n_critic if config.family == "gan" else 2
    batch = {"image": jax.ShapeDtypeStruct((n, s, s, c), jnp.float32), "label": jax.ShapeDtypeStruct((n,), jnp.int32)}
    step = jax.jit(partial(train_step, family, config))
    cpu = export.export(step, platforms=("cpu",))(shapes, batch).mlir_module()
    if not recipe.startswith(("stylegan2", "ldm")):  # StyleGAN2 and the DiT have no CPU forms
        assert "optimization_barrier" in cpu  # the CPU keeps its forms
    for platform in PLATFORMS:
        text = export.export(step, platforms=(platform,))(shapes, batch).mlir_module()
        _check_policy(text, dtype)
        assert len(re.findall(r"stablehlo\.convolution", text)) <= len(re.findall(r"stablehlo\.convolution", cpu))
        if dtype == "bfloat16" and config.family == "diffusion" and config.model.attn_resolutions:
            logits = [op for op in _ops(text) if _operand_types(op) == ["bf16", "bf16"]
                      and re.search(r"-> tensor<(?:[0-9?]+x)*f32>", op)]
            assert logits, "attention logits should accumulate in float32"
    _, metrics = jax.eval_shape(step, shapes, batch)
    assert all(v.dtype == jnp.float32 for v in metrics.values())  # losses and norms in float32


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("recipe", RECIPES)
def test_sampler_runs_one_plain_convolution_per_kernel(recipe, dtype):
    """The sampler the run layer compiles (Run.jit: the precision policy included), forward only: one
    convolution for each convolution kernel of the generating network and model call of a step (two
    for Heun), as the plain forms give."""
    config = _config(recipe, dtype)
    family = get_family(config.family)
    shapes = state_shapes(family, config)
    run = Run(config, family, shapes, make_mesh(), "")
    fn = run.jit("sample/4", partial(family.sample, config, num=4))
    network = shapes.ema_params["decoder"] if config.family in ("vae", "autoencoder") else shapes.ema_params
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    variables = run.variables()
    if config.family == "vae" and config.vae.prior == "gmm":  # the fitted mixture that Run.sample_variables adds
        k, d = config.vae.prior_components, config.model.latent_dim
        variables["prior"] = {name: jax.ShapeDtypeStruct(shape, jnp.float32) for name, shape in
                              (("log_weights", (k,)), ("means", (k, d)), ("chol", (k, d, d)))}
    for platform in PLATFORMS:
        text = export.export(fn, platforms=(platform,))(variables, key).mlir_module()
        _check_policy(text, dtype)
        calls = 2 if config.family == "diffusion" and config.sample.sampler == "heun" else 1  # Heun's corrector
        assert len(re.findall(r"stablehlo\.convolution", text)) == calls * _kernels(network)


def test_precision_policy_default_lets_the_backend_choose():
    config = apply_overrides(load_config("dcgan_mnist5k"), ["train.matmul_precision=default"])
    family = get_family(config.family)
    shapes = state_shapes(family, config)
    run = Run(config, family, shapes, make_mesh(), "")
    fn = run.jit("sample/4", partial(family.sample, config, num=4))
    text = export.export(fn, platforms=("cuda",))(run.variables(), jax.ShapeDtypeStruct((2,), jnp.uint32)).mlir_module()
    assert _ops(text) and not any("HIGHEST" in op for op in _ops(text))


@pytest.mark.parametrize("platform", ["cpu"] + PLATFORMS)
def test_fid_inception_convolutions_are_highest_everywhere(platform):
    """Under the backend's default precision, the extractor still asks for HIGHEST itself."""
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    params = jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3)))
    with jax.default_matmul_precision("default"):
        text = export.export(jax.jit(inception.InceptionV3().apply), platforms=(platform,))(params, x).mlir_module()
    ops = _ops(text)  # 94 convolutions (matmuls over patches on the CPU) and the logits' dense layer
    assert len(ops) >= 95 and all(op.count("HIGHEST") == 2 for op in ops)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dit_forward_and_grad_lower_for_gpu_and_tpu(dtype):
    """A small DiT's loss gradient (params and x cast to the compute dtype, as the trainer does) under
    the float32 policy: every matmul and the patch convolution HIGHEST. Under bfloat16: every product
    takes bfloat16 operands, while jax.nn.dot_product_attention accumulates the logits in float32 (its
    dot algorithm BF16_BF16_F32) and runs the softmax's exponential in float32. Its backward feeds the
    float32 logit cotangent to matmuls with that same algorithm, which round it to bfloat16 for the
    products: bfloat16 operands in all but the declared type, as the U-Net's attention_logits does by hand."""
    from jgen.nn.dit import DiT

    model = DiT(patch_size=2, hidden=64, depth=2, heads=4, out_ch=4, num_classes=10)
    x = jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32)
    t, y = jax.ShapeDtypeStruct((2,), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.int32)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t, y)["params"]
    compute = jnp.dtype(dtype)

    def grad(params, x, t, y):
        def loss(p):
            out = model.apply({"params": jax.tree.map(lambda a: a.astype(compute), p)}, x.astype(compute), t, y)
            return jnp.mean(jnp.square(out.astype(jnp.float32) - x))
        return jax.grad(loss)(params)

    bf16_products = BF16_PRODUCTS
    for platform in PLATFORMS:
        with jax.default_matmul_precision("highest"):
            text = export.export(jax.jit(grad), platforms=(platform,))(params, x, t, y).mlir_module()
        ops = _ops(text)
        assert len(ops) >= 2 * 7 * 3  # per block qkv, logits, weights x v, proj, fc1, fc2, adaLN: forward + 2 grads
        # the softmax over the 16 x 16 token pairs of each head, once per block
        softmax_exp = re.findall(r"stablehlo\.exponential .* : tensor<(?:[0-9]+x)*16x16x([a-z0-9]+)>", text)
        assert len(softmax_exp) == 2 and set(softmax_exp) == {"f32"}, softmax_exp
        if dtype == "float32":
            _check_policy(text, dtype)
            continue
        assert "optimization_barrier" not in text
        logits = [op for op in ops if _operand_types(op) == ["bf16", "bf16"] and bf16_products in op
                  and re.search(r"-> tensor<(?:[0-9?]+x)*f32>", op)]
        assert len(logits) == 2, "attention logits should accumulate in float32"
        for op in ops:
            assert _operand_types(op) == ["bf16", "bf16"] or bf16_products in op, op[-300:]
