"""Spherical interpolation between latents, laid out as a grid (one row per pair of endpoints).

Under N(0, I) in many dimensions almost all mass lies near the sphere of radius sqrt(d); a straight
line between two latents passes through its low-norm interior, which the generator never saw.
Slerp (White 2016) keeps the path on the shell.
"""

import jax
import jax.numpy as jnp


def slerp(z0, z1, t):
    """Spherical interpolation from z0 (t=0) to z1 (t=1) along the great circle through both.

    z0, z1: [..., D]; t: broadcastable to [..., 1]. Falls back to the straight line when the two
    are (anti)parallel, where the great circle is undefined.
    """
    n0 = z0 / jnp.linalg.norm(z0, axis=-1, keepdims=True)
    n1 = z1 / jnp.linalg.norm(z1, axis=-1, keepdims=True)
    omega = jnp.arccos(jnp.clip(jnp.sum(n0 * n1, axis=-1, keepdims=True), -1.0, 1.0))
    so = jnp.sin(omega)
    safe = so > 1e-6
    so = jnp.where(safe, so, 1.0)
    w0 = jnp.where(safe, jnp.sin((1.0 - t) * omega) / so, 1.0 - t)
    w1 = jnp.where(safe, jnp.sin(t * omega) / so, t)
    return w0 * z0 + w1 * z1


def interpolation_latents(rng, latent_shape, rows: int, cols: int):
    """[rows * cols, *latent_shape]: row r runs from one random N(0, I) latent to another in `cols` steps."""
    k0, k1 = jax.random.split(rng)
    d = 1
    for s in latent_shape:
        d *= s
    z0 = jax.random.normal(k0, (rows, 1, d))
    z1 = jax.random.normal(k1, (rows, 1, d))
    t = jnp.linspace(0.0, 1.0, cols)[None, :, None]
    return slerp(z0, z1, t).reshape((rows * cols,) + tuple(latent_shape))
