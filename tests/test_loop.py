"""The training loop reads nothing back from the device except on log steps, checkpoints and the end:
the host queues the next step while the device runs this one."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.array import ArrayImpl  # the one place every read of an array's value passes

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


def test_only_log_steps_transfer_from_the_device(tmp_path, monkeypatch):
    """12 real steps, log_every 4: the loop reads arrays back to the host after steps 4, 8 and 12 only.

    Every read of an array's value (jax.device_get, np.asarray, bool(), float(), int(), ...) goes
    through jax.Array's `_value`, which the test counts; JAX's own transfer guard cannot be used
    here, as a CPU 'transfer' to the host is zero-copy and passes every guard."""
    config = apply_overrides(load_config(MNIST_CONFIG), TINY + ["train.steps=12", "train.log_every=4",
                                                                "train.ckpt_every=1000"])
    mesh = make_mesh()
    state = init_state(diffusion, config, jax.random.PRNGKey(0), replicated(mesh))
    step_fn = jit_train_step(diffusion, config, mesh)
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)), jnp.float32)
    batch = {"image": jax.device_put(images, batch_sharding(mesh)),
             "label": jax.device_put(jnp.zeros(16, jnp.int32), batch_sharding(mesh))}
    done, reads = [], []

    def counted_step(state, batch):
        out = step_fn(state, batch)
        done.append(len(done) + 1)
        return out

    value = ArrayImpl._value
    monkeypatch.setattr(ArrayImpl, "_value", property(lambda self: reads.append(len(done)) or value.fget(self)))
    train_loop(config, str(tmp_path), state, counted_step, itertools.repeat(batch), _NoCheckpoints(),
               grid=lambda state: np.zeros((1, 8, 8, 1), np.float32))
    monkeypatch.undo()
    assert done == list(range(1, 13))
    assert {4, 8, 12} <= set(reads) and set(reads) - {0} <= {4, 8, 12}  # (0: the start step, before any)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [4, 8, 12] and all(np.isfinite(r["loss"]) for r in logged)
