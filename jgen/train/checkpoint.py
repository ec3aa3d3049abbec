"""Orbax checkpoints of the TrainState under WORKDIR/checkpoints, plus the run's saved config.

A checkpoint is only ever read back into the structure `init` builds for the run's config, so a
checkpoint from another model or a damaged directory is a clear error, never a silent mix.
"""

import os
import shutil

import jax
import orbax.checkpoint as ocp

from jgen.config import read_config
from jgen.errors import JgenError

# Config sections that fix the shapes of the TrainState: a workdir cannot switch them mid-run.
_SHAPE_KEYS = ("family", "model", "data.image_size", "data.channels")


def manager(workdir: str, keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
    # cleanup: a save cut off by a crash leaves a temporary directory; the trainer removes it on start
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=True,
                                           cleanup_tmp_directories=create)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def save(mgr: ocp.CheckpointManager, state) -> None:
    """Starts an asynchronous save of `state` under its step; call mgr.wait_until_finished() before exit."""
    mgr.save(int(state.step), args=ocp.args.StandardSave(state))


def abstract_like(state_shapes, sharding):
    """ShapeDtypeStructs (from jax.eval_shape of init) placed on `sharding`: the restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes)


def _reason(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def restore(mgr: ocp.CheckpointManager, target, step=None):
    """Restores step (default: latest) into the structure of `target` (see abstract_like)."""
    step = mgr.latest_step() if step is None else step
    if step is None:
        raise JgenError(f"no checkpoint in {mgr.directory}: train first (`jgen train`)")
    try:
        return mgr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # Orbax raises many types for damaged or mismatched trees
        raise JgenError(f"checkpoint {step} in {mgr.directory} cannot be restored into this model "
                        f"(damaged, or written by another model/config): {_reason(e)}") from None


def restore_newest_good(mgr: ocp.CheckpointManager, target, quarantine: bool = False):
    """The newest checkpoint that restores; damaged newer ones are skipped with a warning.

    A crash or a full disk can leave the newest checkpoint truncated. Falling back to the previous
    one loses only the steps between the two. With `quarantine` (the trainer, which will write those
    steps again) the damaged step directories are moved to checkpoints.damaged/ rather than deleted,
    once an older one has restored: when none restores (e.g. all were written by another model),
    nothing is moved and the error names the newest.
    """
    steps = sorted(mgr.all_steps(), reverse=True)
    if not steps:
        raise JgenError(f"no checkpoint in {mgr.directory}: train first (`jgen train`)")
    for i, step in enumerate(steps):
        try:
            state = restore(mgr, target, step)
        except JgenError as e:
            if i == len(steps) - 1:
                raise JgenError(str(e) if i == 0 else f"no checkpoint in {mgr.directory} restores; newest: {e}")
            print(f"jgen: warning: checkpoint {step} cannot be restored; using checkpoint {steps[i + 1]}")
            continue
        if quarantine and i and jax.process_index() == 0:
            damaged = os.path.join(os.path.dirname(str(mgr.directory)), "checkpoints.damaged")
            os.makedirs(damaged, exist_ok=True)
            for bad in steps[:i]:
                shutil.move(os.path.join(str(mgr.directory), str(bad)), os.path.join(damaged, str(bad)))
            mgr.reload()
        return state


def save_failed(e: Exception, mgr: ocp.CheckpointManager, step: int) -> JgenError:
    """The one-line error for a save that failed (disk full, quota, permissions) by step `step`.

    Orbax writes a step into a temporary directory and renames it only once complete, so the
    previous checkpoint is untouched; the message says which one a re-run resumes from.
    """
    mgr.reload()
    done = [s for s in mgr.all_steps() if s <= step]
    keep = f"checkpoint {max(done)} is intact; " if done else ""
    return JgenError(f"saving a checkpoint in {mgr.directory} failed by step {step} ({_reason(e)}); {keep}"
                     f"free space and run the same command to resume")


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
