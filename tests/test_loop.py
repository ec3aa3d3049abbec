"""The training loop reads nothing back from the device except on log steps, checkpoints and the end:
the host queues the next step while the device runs this one."""

import contextlib
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np

from helpers import MNIST_CONFIG, TINY
from jgen.config import apply_overrides, load_config
from jgen.families import diffusion
from jgen.sharding import batch_sharding, make_mesh, replicated
from jgen.train.loop import train_loop
from jgen.train.step import init_state, jit_train_step


class _NoCheckpoints:
    """What the loop asks of an Orbax manager, writing nothing."""

    def save(self, step, args):
        self.saved = step

    def check_for_errors(self):
        pass

    def wait_until_finished(self):
        pass

    def latest_step(self):
        return None


def test_only_log_steps_transfer_from_the_device(tmp_path):
    """12 real steps, log_every 4: after each of the 9 other steps a device-to-host transfer guard is
    on (explicit device_get included) until the next step starts, and the loop never trips it."""
    config = apply_overrides(load_config(MNIST_CONFIG), TINY + ["train.steps=12", "train.log_every=4",
                                                                "train.ckpt_every=1000"])
    mesh = make_mesh()
    state = init_state(diffusion, config, jax.random.PRNGKey(0), replicated(mesh))
    step_fn = jit_train_step(diffusion, config, mesh)
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)), jnp.float32)
    batch = {"image": jax.device_put(images, batch_sharding(mesh)),
             "label": jax.device_put(jnp.zeros(16, jnp.int32), batch_sharding(mesh))}
    guard, done = contextlib.ExitStack(), []

    def guarded_step(state, batch):
        guard.close()  # the previous step's guard ends where the next step begins
        out = step_fn(state, batch)
        done.append(len(done) + 1)
        if done[-1] % 4 and done[-1] != 12:
            guard.enter_context(jax.transfer_guard_device_to_host("disallow_explicit"))
        return out

    try:
        train_loop(config, str(tmp_path), state, guarded_step, itertools.repeat(batch), _NoCheckpoints(),
                   grid=lambda state: np.zeros((1, 8, 8, 1), np.float32))
    finally:
        guard.close()
    assert done == list(range(1, 13))
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [4, 8, 12] and all(np.isfinite(r["loss"]) for r in logged)
