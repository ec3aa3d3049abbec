"""The one training loop for every family: init or resume, step, log, sample, evaluate, checkpoint.

It knows a family only through `init`, `train_step` and `sample`. The step is one `jax.jit` over
the mesh: the state is replicated and donated, the batch split over the `data` axis.
"""

import os
import signal
import time
from functools import partial

import jax
from tqdm import tqdm

from jgen.config import save_config
from jgen.data.pipeline import global_batches
from jgen.data.sources import open_source
from jgen.errors import JgenError
from jgen.eval.evaluate import describe, make_evaluator, save_report, scalars
from jgen.families import get_family
from jgen.images import save_grid
from jgen.train import checkpoint
from jgen.train.logging import MetricsWriter
from jgen.train.parallel import batch_sharding, check_batch, gather, make_mesh, replicated
from jgen.train.state import compute_dtype, init_state, skip_nonfinite


def make_sampler(config, family, num: int, mesh, ema: bool = True, **kwargs):
    """jit of (state, key) -> `num` images in [-1, 1], spread over the devices when `num` divides evenly.
    kwargs go to family.sample (a class-conditional DDPM's labels and guidance)."""
    out = batch_sharding(mesh) if num % mesh.devices.size == 0 else replicated(mesh)
    return jax.jit(partial(family.sample, config, num=num, ema=ema, **kwargs), out_shardings=out)


def restore_latest(config, family, mesh, mgr, quarantine: bool = False):
    """The newest good checkpoint `mgr` holds, restored into the structure `family.init` builds,
    replicated on `mesh`, whatever device count wrote it."""
    shapes = jax.eval_shape(partial(family.init, config), jax.random.PRNGKey(config.seed))
    return checkpoint.restore_newest_good(mgr, checkpoint.abstract_like(shapes, replicated(mesh)), quarantine)


def init_or_restore(config, family, mesh, mgr):
    """The newest good checkpoint `mgr` holds if there is one, else a fresh state; replicated on the mesh."""
    if mgr.latest_step() is not None:
        return restore_latest(config, family, mesh, mgr, quarantine=True), True
    return init_state(family, config, jax.random.PRNGKey(config.seed), replicated(mesh)), False


def restore_run(workdir: str, mesh):
    """(config, state) of the latest checkpoint of a finished or running `jgen train` workdir."""
    from jgen.config import read_config

    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise JgenError(f"{workdir} is not a jgen run directory (no config.json): train first")
    config = read_config(config_path)
    mgr = checkpoint.manager(workdir, create=False)
    return config, restore_latest(config, get_family(config.family), mesh, mgr)


class _StopRequest:
    """Turns the first SIGTERM/SIGINT into a flag the loop checks after each step (save, then exit 0)."""

    def __init__(self):
        self.requested = False
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signum, self._old[signum])  # a second signal acts as usual

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)


def _save(mgr, state, step: int) -> None:
    try:
        checkpoint.save(mgr, state)
        mgr.check_for_errors()  # an earlier asynchronous save that failed surfaces here
    except JgenError:
        raise
    except Exception as e:  # disk full, quota, permissions: the previous checkpoint is intact
        raise checkpoint.save_failed(e, mgr, step) from None


def _finish_saves(mgr, step: int) -> None:
    try:
        mgr.wait_until_finished()
        mgr.check_for_errors()
    except Exception as e:
        raise checkpoint.save_failed(e, mgr, step) from None


def train(config, workdir: str) -> str:
    """Trains config.train.steps steps in `workdir` (resuming if it holds checkpoints); returns the grid path."""
    family = get_family(config.family)
    checkpoint.check_compatible(workdir, config)
    mesh = make_mesh()
    local_batch = check_batch(config.train.batch_size, mesh, config.train.get("grad_accum", 1))
    # Check the config (by tracing init) and open the data before anything is written, so bad input
    # leaves no half-made workdir.
    jax.eval_shape(partial(family.init, config), jax.random.PRNGKey(config.seed))
    compute_dtype(config)
    source = open_source(config.data.source, config.data.data_dir, jax.process_index(), jax.process_count())
    cond = config.get("condition", None)
    if cond is not None and cond.kind == "class" and cond.num_classes != source.num_classes:
        raise JgenError(f"condition.num_classes is {cond.num_classes} but {config.data.source} has "
                        f"{source.num_classes or 'no'} labelled classes")
    eval_every = config.eval.every if "eval" in config else 0
    if eval_every and jax.process_count() > 1:
        raise JgenError("eval.every runs in single-process training only; set eval.every=0 and run "
                        "`jgen eval` on one host after training")
    evaluator = make_evaluator(config, family, mesh) if eval_every else None
    mgr = checkpoint.manager(workdir, keep=config.train.keep_checkpoints)
    state, resumed = init_or_restore(config, family, mesh, mgr)
    start, total = int(state.step), config.train.steps
    lead = jax.process_index() == 0
    if lead:
        save_config(config, os.path.join(workdir, "config.json"))
        if resumed:
            print(f"jgen: resumed {workdir} at step {start}")

    step_fn = jax.jit(skip_nonfinite(partial(family.train_step, config)), donate_argnums=0,
                      in_shardings=(replicated(mesh), batch_sharding(mesh)),
                      out_shardings=(replicated(mesh), replicated(mesh)))
    batches = global_batches(source, config.data, local_batch, mesh, seed=config.seed, start_step=start)
    sampler = make_sampler(config, family, config.sample.num, mesh)
    writer = MetricsWriter(workdir)
    stop = _StopRequest()
    sample_key = jax.random.PRNGKey(config.seed + 1)  # the same noise at every grid: progress is visible
    grid_path = os.path.join(workdir, "samples", "final.png")
    bar = tqdm(total=total, initial=start, desc="train", unit="step", disable=not lead,
               mininterval=1.0 if os.isatty(2) else 30.0, dynamic_ncols=True)
    max_nonfinite = config.train.get("max_nonfinite", 10)
    step, last_saved, last_logged, t0 = start, start, start, time.time()
    skipped_total = skipped_in_row = 0
    try:
        while step < total:
            state, metrics = step_fn(state, next(batches))
            step += 1
            bar.update(1)
            # A non-finite step left the state as it was (skip_nonfinite); stop before wasting a run on it.
            skipped = bool(jax.device_get(metrics["skipped"]))
            skipped_total, skipped_in_row = skipped_total + skipped, (skipped_in_row + 1) * skipped
            if skipped_in_row >= max_nonfinite:
                raise JgenError(f"{skipped_in_row} non-finite steps in a row (steps {step - skipped_in_row + 1}"
                                f"-{step}; each skipped, parameters untouched); stopped. Checkpoint "
                                f"{mgr.latest_step()} in {workdir} is intact: lower optim.lr, set "
                                f"optim.grad_clip, or check the data, then run the same command")
            if step % config.train.log_every == 0 or step == total:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "skipped"}
                now = time.time()
                metrics["steps_per_sec"] = (step - last_logged) / (now - t0)
                metrics["skipped_steps"] = float(skipped_total)
                t0, last_logged = now, step
                writer.write(step, metrics)
                bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if k.endswith("loss")})
            if config.train.sample_every and step % config.train.sample_every == 0 and step < total:
                images = gather(sampler(state, sample_key))
                if lead:
                    save_grid(images, os.path.join(workdir, "samples", f"step_{step:07d}.png"))
            if evaluator and (step % eval_every == 0 or step == total):
                report = evaluator(state)
                if lead:
                    save_report(report, os.path.join(workdir, "eval", f"step_{step:07d}.json"))
                    writer.write(step, scalars(report))
                    tqdm.write(f"jgen: eval {describe(report)}")
            if step % config.train.ckpt_every == 0 or step == total or stop.requested:
                _save(mgr, state, step)
                last_saved = step
            if stop.requested:
                print(f"\njgen: stop requested; saved step {step} in {workdir}; run the same command to resume")
                break
        if last_saved != step:
            _save(mgr, state, step)
        _finish_saves(mgr, step)
    finally:
        try:
            mgr.wait_until_finished()  # never leave a save half-written, whatever stopped the loop
        except Exception:  # a failed save was reported above; keep the original error
            pass
        stop.restore()
        bar.close()
        writer.close()
    if skipped_total and lead:
        print(f"jgen: {skipped_total} non-finite step(s) were skipped (metrics.jsonl: skipped_steps)")
    if step == total:
        images = gather(sampler(state, sample_key))
        if lead:
            save_grid(images, grid_path)
            print(f"jgen: {total} steps done; samples in {grid_path}")
    return grid_path
