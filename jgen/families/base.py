"""The family contract: what the trainer, the run layer and the applications may ask of a model family.

A family is a plain module (jgen.families.diffusion, gan, vae); `Family` below states its functions so
that a reader, a type checker and a new family's author see the whole contract in one place. The
trainer owns the optimisers, the update, EMA and the non-finite skip (jgen.train.step); a family
only says what its model is, what it minimises and how it samples.

  init(config, rng) -> (params, model_state)         model_state: non-trained variables ({} if none)
  generator(params) -> the params that generate; the EMA averages these (a GAN's params['gen'])
  prepare(config, batch, rng) -> inputs              everything random for a step, drawn for the whole
                                                     batch before micro-batching ([B, ...] leaves)
  loss(config, params, inputs, rng, step) -> (loss, aux)   aux: [B, ...] leaves
  metrics(config, aux, step) -> dict                 scalars logged beside loss and grad_norm
  update(config, txs, params, opt_state, model_state, batch, rng, step)
      -> (params, opt_state, model_state, metrics)   instead of prepare/loss/metrics, for families
                                                     with several optimisers (the GAN); step: the
                                                     train step (lazy regularisers read it)
  sample(config, variables, rng, num, cond) -> [num, H, W, C] in [-1, 1]
  latent_shape(config); decode(config, variables, z); encode(config, variables, x) where it exists
  fit_prior(config, codes) where it exists: a prior fitted to encoded training data after training
      (the VAE's vae.prior=gmm); jgen.run passes it to `sample` as variables['prior']

`variables` is {'params': generator params (EMA or raw), 'model_state': ...}.
"""

import dataclasses
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from jgen.errors import JgenError


@struct.dataclass
class Cond:
    """What a sample is conditioned on; every field optional. Arrays are traced, the rest static.

    labels [N] int: class-conditional runs (classifier-free guidance at `guidance`, a float);
    lowres [N, H/s, W/s, C]: SR3 runs; x_T [N, H, W, C] at level `start`: SDEdit and decoding;
    post(x, level, key) -> x after every step and `path` (a tuple of levels): RePaint and ILVR.
    """
    labels: Any = None
    guidance: Any = None
    lowres: Any = None
    x_T: Any = None
    start: Optional[int] = struct.field(pytree_node=False, default=None)
    post: Optional[Callable] = struct.field(pytree_node=False, default=None)
    path: Optional[tuple] = struct.field(pytree_node=False, default=None)

    def given(self) -> list:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


def check_cond(config, cond: Cond, num: int) -> None:
    """The one check of a condition against a run: which fields its family and condition.kind take,
    label ranges and batch sizes. Raises JgenError naming the command-line flag."""
    given = cond.given()
    if given and config.family != "diffusion":
        raise JgenError(f"conditioning ({', '.join(given)}) applies to diffusion runs; this is a {config.family} run")
    kind = config.condition.kind
    if (cond.labels is not None or cond.guidance is not None) and kind != "class":
        raise JgenError("--label and --guidance need a class-conditional run (condition.kind=class, e.g. "
                        "configs/ddpm_mnist5k_cfg.py)")
    if cond.labels is not None and not isinstance(cond.labels, jax.core.Tracer):
        labels = jnp.asarray(cond.labels)
        k = config.condition.num_classes
        if labels.shape != (num,):
            raise JgenError(f"{labels.shape[0] if labels.ndim else 1} labels for {num} samples")
        bad = labels[(labels < 0) | (labels >= k)]
        if bad.size:
            raise JgenError(f"--label must be in [0, {k}), got {int(bad[0])}")
    if cond.lowres is not None and kind != "lowres":
        raise JgenError("a low-resolution input needs an SR3 run (condition.kind=lowres)")
    for name in ("lowres", "x_T"):
        value = getattr(cond, name)
        if value is not None and value.shape[0] != num:
            raise JgenError(f"{name} holds {value.shape[0]} images for {num} samples")


@runtime_checkable
class Family(Protocol):
    """What every family module defines; `encode(config, variables, x)` too where there is an encoder."""

    def init(self, config, rng) -> tuple: ...
    def generator(self, params) -> Any: ...
    def sample(self, config, variables, rng, num: int, cond: Cond) -> jax.Array: ...
    def latent_shape(self, config) -> tuple: ...
    def decode(self, config, variables, z) -> jax.Array: ...


@runtime_checkable
class LossFamily(Family, Protocol):
    """A family with one optimiser: the trainer differentiates its loss (micro-batched, clipped, ...)."""

    def prepare(self, config, batch, rng) -> Any: ...
    def loss(self, config, params, inputs, rng, step) -> tuple: ...
    def metrics(self, config, aux, step) -> dict: ...


@runtime_checkable
class UpdateFamily(Family, Protocol):
    """A family with several optimisers (the GAN): it moves its own networks with the trainer's `txs`."""

    def update(self, config, txs, params, opt_state, model_state, batch, rng, step) -> tuple: ...


def precision(config):
    """The context every traced step and sampler runs in: train.matmul_precision for each matmul and
    convolution that does not name its own (the FID Inception names HIGHEST itself)."""
    return jax.default_matmul_precision(config.train.matmul_precision)


def compute_dtype(config):
    """The activation/matmul dtype of config.train.compute_dtype; params, optimiser and loss stay float32."""
    return jnp.dtype(config.train.compute_dtype)


def to_compute(tree, dtype):
    """Floating leaves of `tree` (params, inputs) cast to the compute dtype for one forward pass.

    Flax layers compute in the dtype of their inputs and parameters, so casting both is the whole
    mixed-precision policy; gradients flow back through the cast to the float32 parameters.
    """
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)
