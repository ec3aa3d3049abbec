"""Slerp against the geometry it promises: ends, the great circle, equal angular steps."""

import jax.numpy as jnp
import numpy as np

from jgen.interpolate import interpolation_latents, slerp


def test_slerp_follows_the_great_circle():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=64), rng.normal(size=64)
    t = np.linspace(0, 1, 7)[:, None]
    path = np.asarray(slerp(jnp.float32(z0), jnp.float32(z1), jnp.float32(t)), np.float64)
    np.testing.assert_allclose(path[0], z0, atol=1e-5)
    np.testing.assert_allclose(path[-1], z1, atol=1e-5)
    # every point is in the plane of z0 and z1
    basis, _ = np.linalg.qr(np.stack([z0, z1], 1))
    np.testing.assert_allclose(basis @ (basis.T @ path.T), path.T, atol=1e-4)
    # with equal-norm ends: the path stays on their sphere (a straight line would dip inside), and
    # consecutive points are equal angles apart, summing to the angle between the ends
    z1s = z1 * np.linalg.norm(z0) / np.linalg.norm(z1)
    path = np.asarray(slerp(jnp.float32(z0), jnp.float32(z1s), jnp.float32(t)), np.float64)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-5)
    unit = path / np.linalg.norm(path, axis=1, keepdims=True)
    steps = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], 1), -1, 1))
    total = np.arccos(z0 @ z1 / np.linalg.norm(z0) / np.linalg.norm(z1))
    np.testing.assert_allclose(steps, total / 6, atol=1e-4)


def test_slerp_of_parallel_latents_is_the_line():
    z = jnp.float32(np.arange(1.0, 5.0))
    np.testing.assert_allclose(slerp(z, 2 * z, jnp.float32([[0.5]])), [1.5 * np.arange(1.0, 5.0)], rtol=1e-6)


def test_interpolation_grid_layout():
    import jax
    z = np.asarray(interpolation_latents(jax.random.PRNGKey(0), (2, 3), rows=4, cols=5))
    assert z.shape == (20, 2, 3)
    rows = z.reshape(4, 5, 6)
    assert not np.allclose(rows[:, 0], rows[:, -1])  # each row moves
    assert not np.allclose(rows[0], rows[1])  # rows differ
