"""The one training loop for every family: step, log, sample, evaluate, checkpoint, stop on request.

It knows nothing of families, data sources or evaluators: it is handed a jitted step, an iterator of
global batches, a checkpoint manager and two callbacks (jgen.run builds them all), so one loop
serves every model and the run layer decides what a grid or an evaluation is.
"""

import os
import signal
import time

import jax
import jax.numpy as jnp
from tqdm import tqdm

from jgen.errors import JgenError
from jgen.images import save_grid
from jgen.sharding import any_process
from jgen.train import checkpoint
from jgen.train.logging import MetricsWriter


class _StopRequest:
    """Turns the first SIGTERM/SIGINT into a flag (save, then exit 0). One process checks it after each
    step; several agree on it at each log and checkpoint step (`agreed`), since a save is a collective
    that every process must enter at the same step: a pod's hosts see a preemption at different steps."""

    def __init__(self):
        self.requested = False
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signum, self._old[signum])  # a second signal acts as usual

    def agreed(self) -> bool:
        """Whether any process has been asked to stop (a collective: every process calls it together)."""
        return any_process(self.requested)

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)


@jax.jit
def _tally(counts, skipped, step, limit):
    """(skipped steps so far, the current run of them, the step at which a run first reached `limit`
    or -1), updated on the device: a step needs no read back to the host, only a log step does."""
    total, in_row, hit = counts
    s = skipped.astype(jnp.int32)
    in_row = (in_row + 1) * s
    return total + s, in_row, jnp.where((hit < 0) & (in_row >= limit), step, hit)


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


def train_loop(config, workdir: str, state, step_fn, batches, mgr, grid, evaluate=None) -> str:
    """Runs step_fn from state.step to config.train.steps; returns the final grid's path.

    Only log steps (train.log_every), checkpoints and the end read anything back from the device;
    the non-finite stop therefore comes within log_every steps of the run that triggers it.

    grid(state) -> images [N, H, W, C] in [-1, 1] as NumPy on every process (a collective);
    evaluate(state) -> {name: scalar} to log, or None (every config.eval.every steps and at the end).
    """
    start, total = int(state.step), config.train.steps
    lead = jax.process_index() == 0
    eval_every = config.eval.every if evaluate else 0
    writer = MetricsWriter(workdir)
    stop = _StopRequest()
    grid_path = os.path.join(workdir, "samples", "final.png")
    if lead and start < total:
        print(f"jgen: {total - start} steps to go in {workdir}; the final grid will be {grid_path}\n"
              f"jgen: compiling the training step (the first step waits for it) ...", flush=True)
    bar = None  # made after the first step, so its rate and ETA leave the compile out
    max_nonfinite, log_every = config.train.max_nonfinite, config.train.log_every
    lr = "optim.gen.lr or optim.disc.lr" if "gen" in config.optim else "optim.lr"
    step, last_saved, last_logged, t0 = start, start, start, time.time()
    several = jax.process_count() > 1
    counts, skipped_total = (jnp.int32(0), jnp.int32(0), jnp.int32(-1)), 0
    try:
        while step < total:
            state, metrics = step_fn(state, next(batches))
            step += 1
            if bar is None:
                bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not lead,
                           mininterval=1.0 if os.isatty(2) else 30.0, dynamic_ncols=True)
            else:
                bar.update(1)
            counts = _tally(counts, metrics["skipped"], step, max_nonfinite)
            log, save = step % log_every == 0 or step == total, step % config.train.ckpt_every == 0 or step == total
            # several processes agree on a stop (a collective) only where they all read back anyway
            halt = (log or save) and stop.agreed() if several else stop.requested
            if log or save or halt:  # other steps read nothing: the host runs ahead of the device
                metrics, (skipped_total, _, hit) = jax.device_get((metrics if log else {}, counts))
                if hit >= 0:  # non-finite steps left the state as it was (jgen.train.step); too many in a row
                    raise JgenError(f"{max_nonfinite} non-finite steps in a row (steps {hit - max_nonfinite + 1}"
                                    f"-{hit}; each skipped, parameters untouched); stopped. Checkpoint "
                                    f"{mgr.latest_step()} in {workdir} is intact: lower {lr} or check the data, "
                                    f"then run the same command (changes that alter the state, such as adding "
                                    f"gradient clipping, need a new --workdir)")
            if log:
                metrics = {k: float(v) for k, v in metrics.items() if k != "skipped"}
                now = time.time()
                metrics.update(steps_per_sec=(step - last_logged) / (now - t0), skipped_steps=float(skipped_total))
                t0, last_logged = now, step
                writer.write(step, metrics)
                bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if k.endswith("loss")})
            if config.train.sample_every and step % config.train.sample_every == 0 and step < total:
                images = grid(state)
                if lead:
                    save_grid(images, os.path.join(workdir, "samples", f"step_{step:07d}.png"))
            if eval_every and (step % eval_every == 0 or step == total):
                writer.write(step, evaluate(state))
            if save or halt:
                _save(mgr, state, step)
                last_saved = step
            if halt:
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
        if bar is not None:
            bar.close()
        writer.close()
    if skipped_total and lead:
        print(f"jgen: {skipped_total} non-finite step(s) were skipped (metrics.jsonl: skipped_steps)")
    if step == total:
        images = grid(state)
        if lead:
            save_grid(images, grid_path)
            print(f"jgen: {total} steps done; samples in {grid_path}")
    return grid_path
