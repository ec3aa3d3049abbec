"""The input pipeline's last stage, on the device inside the jitted step: uint8 batches (a quarter of
float32's bytes across the host-to-device link) become images in [-1, 1], flipped left-right per
example when data.random_flip is on. No TensorFlow here: the step imports it."""

import jax
import jax.numpy as jnp

from jgen.images import from_uint8


def model_inputs(batch, data, seed: int):
    """{'image': uint8 [B, H, W, C], 'index': int32 [B], ...} -> the same with 'image' float32 in [-1, 1].

    A flip is a pure function of (seed, index), the example's position in the stream, so a resumed or
    re-sharded run flips exactly what the uninterrupted one did. Float images (already in [-1, 1], as
    tests and benchmarks pass them) go through unchanged.
    """
    image = batch["image"]
    if image.dtype != jnp.uint8:
        return batch
    x = from_uint8(image)
    if data.random_flip:
        base = jax.random.PRNGKey(seed)
        flip = jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(base, i)))(batch["index"])
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
    return dict(batch, image=x)
