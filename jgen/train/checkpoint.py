"""Orbax checkpoints of the TrainState under WORKDIR/checkpoints, plus the run's saved config.

A checkpoint is only ever read back into the structure `init` builds for the run's config, so a
checkpoint from another model or a damaged directory is a clear error, never a silent mix.
"""

import os

import jax
import orbax.checkpoint as ocp

from jgen import files
from jgen.config import flatten, read_config
from jgen.errors import JgenError
from jgen.sharding import state_sharding
from jgen.train.step import state_shapes


def checkpoint_dir(workdir: str) -> str:
    """WORKDIR/checkpoints, absolute for a local path; a URL (gs://...) reaches Orbax unchanged."""
    return os.path.join(workdir if files.is_url(workdir) else os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
    # cleanup: a save cut off by a crash leaves a temporary directory; the trainer removes it on start
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=True,
                                           cleanup_tmp_directories=create)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def restore_latest(family, config, mesh, mgr, quarantine: bool = False):
    """The newest good checkpoint `mgr` holds, restored into the structure `init` builds for `config`,
    laid out on `mesh` as config.train.param_sharding says, whatever device count and layout wrote it."""
    shapes = state_shapes(family, config)
    return restore_newest_good(mgr, abstract_like(shapes, state_sharding(shapes, mesh, config.train)), quarantine)


def save(mgr: ocp.CheckpointManager, state) -> None:
    """Starts an asynchronous save of `state` under its step; call mgr.wait_until_finished() before exit."""
    mgr.save(int(state.step), args=ocp.args.StandardSave(state))


def abstract_like(state_shapes, shardings):
    """ShapeDtypeStructs (from jax.eval_shape of init) placed on `shardings` (one per leaf): the restore target."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state_shapes, shardings)


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
            for bad in steps[:i]:
                files.move(os.path.join(str(mgr.directory), str(bad)), os.path.join(damaged, str(bad)))
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


def _names(tree) -> dict:
    """{'opt_state.1.0.mu.conv_in.kernel': (shape, dtype)} for a state tree or Orbax's metadata of one,
    in the dotted names Orbax gives the arrays it stores."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if leaf is None or not hasattr(leaf, "shape"):
            continue
        keys = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
        out[".".join(str(k) for k in keys)] = (tuple(leaf.shape), str(leaf.dtype))
    return out


# keys that change what a network's output means without changing any array: resuming across them is refused
MEANING = {"diffusion": ("diffusion.process", "diffusion.prediction", "diffusion.schedule", "diffusion.timesteps",
                         "diffusion.beta_start", "diffusion.beta_end", "diffusion.sigma_data")}


def _changed_keys(saved, config) -> str:
    old, new = flatten(saved.to_dict()), flatten(config.to_dict())
    keys = sorted((k for k in set(old) | set(new) if old.get(k) != new.get(k)),  # the likely culprits first
                  key=lambda k: (k.startswith(("train.", "sample.", "eval.")), k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4]) + (", ..." if len(keys) > 4 else "")


def check_saved_config(workdir: str, config) -> None:
    """Raises unless WORKDIR/config.json, when there is one, is a readable config of config's family."""
    path = os.path.join(workdir, "config.json")
    if not files.exists(path):
        return
    try:
        saved = read_config(path)
    except ValueError as e:
        raise JgenError(f"{path} is not a readable jgen config ({e}); use a fresh --workdir") from None
    if saved.family != config.family:
        raise JgenError(f"workdir {workdir} holds a run of a different model (family {saved.family}, "
                        f"not {config.family}); use a fresh --workdir")
    meaning = [k for k in MEANING.get(config.family, ()) if flatten(saved.to_dict())[k] != flatten(config.to_dict())[k]]
    if meaning:  # the same arrays, another function: the network would be read as something it never learnt
        raise JgenError(f"workdir {workdir} holds a run whose network means something else (config keys changed: "
                        f"{_changed_keys(saved, config)}); {', '.join(meaning)} cannot change on resume: use a "
                        "fresh --workdir")


def check_compatible(mgr: ocp.CheckpointManager, shapes, workdir: str, config) -> None:
    """Raises unless the newest readable checkpoint holds exactly the tree `shapes` (paths, shapes, dtypes).

    `shapes` is jax.eval_shape of the run's init under `config`: a config change that adds or drops
    an array (clipping adds optimiser state, a class condition adds an embedding) or reshapes one
    cannot resume in this workdir. The message names the first differing array and the config keys
    that changed against WORKDIR/config.json; nothing on disk is touched.
    """
    wanted = _names(shapes)
    for step in sorted(mgr.all_steps(), reverse=True):
        try:
            stored = _names(mgr.item_metadata(step))
        except Exception:  # damaged metadata: restore_newest_good decides what to do with this step
            continue
        diff = next((k for k in wanted if stored.get(k) != wanted[k]), None) or next(
            (k for k in stored if k not in wanted), None)
        if diff is None:
            return
        if diff in stored and diff in wanted:
            what = (f"{diff} is {stored[diff][0]} {stored[diff][1]} in checkpoint {step} but "
                    f"{wanted[diff][0]} {wanted[diff][1]} in this config")
        else:
            where = ("not in", "in") if diff in wanted else ("in", "not in")
            what = f"{diff} is {where[0]} checkpoint {step} but {where[1]} this config's state"
        path = os.path.join(workdir, "config.json")
        changed = f" (config keys changed: {_changed_keys(read_config(path), config)})" if files.exists(path) else ""
        raise JgenError(f"workdir {workdir} holds a run of a different model: {what}{changed}; "
                        f"a structural change needs a new --workdir")
