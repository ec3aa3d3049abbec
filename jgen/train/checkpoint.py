"""Orbax checkpoints of the TrainState under WORKDIR/checkpoints, plus the run's saved config.

A checkpoint is only ever read back into the structure `init` builds for the run's config, so a
checkpoint from another model or a damaged directory is a clear error, never a silent mix.
"""

import os

import jax
import orbax.checkpoint as ocp

from jgen.config import read_config
from jgen.errors import JgenError

# Config sections that fix the shapes of the TrainState: a workdir cannot switch them mid-run.
_SHAPE_KEYS = ("family", "model", "data.image_size", "data.channels")


def manager(workdir: str, keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def save(mgr: ocp.CheckpointManager, state) -> None:
    """Starts an asynchronous save of `state` under its step; call mgr.wait_until_finished() before exit."""
    mgr.save(int(state.step), args=ocp.args.StandardSave(state))


def abstract_like(state_shapes, sharding):
    """ShapeDtypeStructs (from jax.eval_shape of init) placed on `sharding`: the restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes)


def restore(mgr: ocp.CheckpointManager, target, step=None):
    """Restores step (default: latest) into the structure of `target` (see abstract_like)."""
    step = mgr.latest_step() if step is None else step
    if step is None:
        raise JgenError(f"no checkpoint in {mgr.directory}: train first (`jgen train`)")
    try:
        return mgr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # Orbax raises many types for damaged or mismatched trees
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise JgenError(f"checkpoint {step} in {mgr.directory} cannot be restored into this model "
                        f"(damaged, or written by another model/config): {reason}") from None


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node.to_dict() if hasattr(node, "to_dict") else node


def check_compatible(workdir: str, config) -> None:
    """Raises if WORKDIR/config.json describes a model whose checkpoints cannot load into `config`."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    try:
        saved = read_config(path)
    except ValueError as e:
        raise JgenError(f"{path} is not a readable jgen config ({e}); use a fresh --workdir") from None
    for key in _SHAPE_KEYS:
        try:
            old, new = _get(saved, key), _get(config, key)
        except KeyError:
            raise JgenError(f"{path} has no '{key}': this workdir was not written by this jgen model") from None
        if old != new:
            raise JgenError(f"workdir {workdir} holds a run with a different {key} ({old} != {new}); "
                            f"use a fresh --workdir")
