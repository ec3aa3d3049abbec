"""The optimiser's rate schedule (optim.warmup_steps, optim.decay) against its float64 formula, seen
through what Adam does with it: for a constant gradient Adam's bias-corrected step is the rate itself."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jgen.configs.base import get_config
from jgen.train.step import make_optimizer, optimizers


def expected_rate(k: int, lr: float, warmup: int, total: int, decay: str) -> float:
    if k < warmup:
        return lr * k / warmup
    if decay == "none":
        return lr
    return 0.5 * lr * (1 + np.cos(np.pi * min(k - warmup, total - warmup) / (total - warmup)))


@pytest.mark.parametrize("warmup,decay", [(0, "cosine"), (7, "cosine"), (7, "none")])
def test_each_adam_step_moves_by_the_scheduled_rate(warmup, decay):
    optim = ml_collections.ConfigDict(dict(lr=1e-2, warmup_steps=warmup, decay=decay, b1=0.9, b2=0.999,
                                           eps=1e-12, weight_decay=0.0, grad_clip=0.0))
    total = 40
    tx = make_optimizer(optim, total)
    params = jnp.zeros(3)
    state = tx.init(params)
    for k in range(total + 5):  # past the end the cosine stays at 0
        updates, state = tx.update(jnp.ones(3), state, params)
        np.testing.assert_allclose(-np.asarray(updates), expected_rate(k, 1e-2, warmup, total, decay),
                                   rtol=1e-4, atol=1e-8)


def test_the_discriminator_decays_over_all_its_updates():
    """With n_critic updates of the critic per step, its cosine spans n_critic * train.steps updates."""
    config = get_config("gan")
    config.gan.n_critic, config.train.steps = 5, 10
    config.optim.gen.decay = config.optim.disc.decay = "cosine"
    txs = optimizers(config)
    for name, updates in (("gen", 10), ("disc", 50)):
        state = txs[name].init(jnp.zeros(1))
        steps = []
        for _ in range(updates):
            u, state = txs[name].update(jnp.ones(1), state, jnp.zeros(1))
            steps.append(-float(u[0]))
        assert steps[-1] == pytest.approx(expected_rate(updates - 1, 2e-4, 0, updates, "cosine"), rel=1e-4)
        assert steps[-1] > 0
