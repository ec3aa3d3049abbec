"""The run layer: a model (config, family, state) on a mesh, opened from a workdir or from pretrained
weights, with the one cached, mesh-sharded sampler that the trainer's grids, the evaluator and every
command use; and `train`, which assembles data, step, checkpoints and callbacks for the loop.
"""

import dataclasses
import os
from functools import partial

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from jgen import files, latent
from jgen.config import check, check_hardware, read_config, save_config
from jgen.data.pipeline import cache_refusal, cached, global_batches, prefetched
from jgen.data.sources import open_source
from jgen.errors import JgenError
from jgen.eval.evaluate import describe, make_evaluator, save_report, scalars, sharded_batches, subset_images
from jgen.families import get_family
from jgen.families.base import Cond, Family, check_cond, precision
from jgen.sharding import any_process, batch_sharding, gather, make_mesh, replicated, state_sharding
from jgen.train import checkpoint
from jgen.train.loop import train_loop
from jgen.train.step import TrainState, init_state, jit_train_step, state_shapes


@dataclasses.dataclass(eq=False)
class Run:
    """A model ready to use. Its compiled functions live as long as it does, so a sampler is traced
    once per size however often it is called; the trainer points `state` at the current step's state
    before a grid or an evaluation, and the next call reads it."""
    config: ml_collections.ConfigDict
    family: Family
    state: TrainState
    mesh: Mesh
    workdir: str
    ae: object = None  # the autoencoder (jgen.latent.Autoencoder) that decodes a latent run's samples
    _compiled: dict = dataclasses.field(default_factory=dict, init=False, repr=False)
    _prior: tuple = dataclasses.field(default=(), init=False, repr=False)  # (step, ema, fitted prior)
    _fit_images: np.ndarray = dataclasses.field(default=None, init=False, repr=False)  # uint8, what it is fitted to

    def variables(self, ema: bool = True) -> dict:
        """What the family's sample/decode/encode take: the EMA or the raw generator parameters. Under
        train.param_sharding=fsdp they are gathered whole once here, not once per layer per sampler step
        (a 1000-step DDPM grid would gather every weight 1000 times); the optimiser state stays split."""
        params = self.state.ema_params if ema else self.family.generator(self.state.params)
        if self.config.train.param_sharding == "fsdp":
            params = jax.device_put(params, replicated(self.mesh))
        return {"params": params, "model_state": self.state.model_state}

    def jit(self, name: str, fn, **kwargs):
        """jax.jit(fn) traced under the run's matmul precision, compiled once per `name` for the run's life."""
        if name not in self._compiled:
            def traced(*args, **kw):
                with precision(self.config):
                    return fn(*args, **kw)
            self._compiled[name] = jax.jit(traced, **kwargs)
        return self._compiled[name]

    def sampler(self, num: int, ema: bool = True):
        """draw(key, cond=Cond()) -> `num` images [num, H, W, C] in [-1, 1], split over the devices when
        `num` divides evenly. One jit per `num`, kept for the run's life: every grid and evaluation
        after the first reuses it (a condition's static parts compile once each)."""
        out = batch_sharding(self.mesh) if num % self.mesh.devices.size == 0 else replicated(self.mesh)
        fn = self.jit(f"sample/{num}", self._decoded(partial(self.family.sample, self.config, num=num)),
                      out_shardings=out)

        def draw(key, cond: Cond = Cond()):
            check_cond(self.config, cond, num)
            return fn(self.sample_variables(ema), key, cond=cond)
        return draw

    def _decoded(self, fn):
        """fn(variables, ...) -> images, for a latent run (data.source=latents:) its latents decoded by the
        autoencoder, whose parameters ride in variables['autoencoder']."""
        if self.ae is None:
            return fn
        decode = latent.decoder(self.config, self.ae)
        return lambda variables, *a, **kw: decode(variables["autoencoder"], fn(variables, *a, **kw))

    def _with_autoencoder(self, variables: dict) -> dict:
        return variables if self.ae is None else dict(variables, autoencoder=self.ae.variables)

    @property
    def image_config(self):
        """The config whose data section holds the images: a latent run's autoencoder data, else the run's."""
        return self.config if self.ae is None else latent.image_config(self.config, self.ae)

    def sample_variables(self, ema: bool = True) -> dict:
        """`variables` plus what sampling alone needs: for a VAE with vae.prior=gmm, the mixture fitted
        to this state's encoder on a seeded uniform vae.prior_fit_images of the training data, once per
        step and weights (a grid, an evaluation's batches and an export share one fit)."""
        variables = self._with_autoencoder(self.variables(ema))
        if self.config.family != "vae" or self.config.vae.prior != "gmm":
            return variables
        step = int(self.state.step)
        if self._prior[:2] != (step, ema):
            if self._fit_images is None:  # the same images at every step: read once
                self._fit_images = subset_images(self.config.data, self.config.data.source,
                                                 self.config.vae.prior_fit_images, seed=0)
            encode = self.jit("prior/encode", partial(self.family.encode, self.config),
                              out_shardings=replicated(self.mesh))
            codes = np.concatenate([np.asarray(encode(variables, x)[0])[:real] for _, x, real in
                                    sharded_batches(self._fit_images, self.mesh, 500, "prior codes")])
            prior = self.family.fit_prior(self.config, codes)
            self._prior = (step, ema, jax.device_put(prior, replicated(self.mesh)))
        return dict(variables, prior=self._prior[2])

    def reconstruct(self, ema: bool = True):
        """An autoencoder run's images [B, H, W, C] in [-1, 1] -> their reconstructions (jitted once), or None
        for the other families."""
        if self.config.family != "autoencoder":
            return None
        fn = self.jit("reconstruct", partial(self.family.reconstruct, self.config))
        return lambda x: fn(self.variables(ema), x)

    def decode(self, z, ema: bool = True):
        """The family's decoder (generator; deterministic DDIM for diffusion) on latents z [B, ...]."""
        return self.jit("decode", self._decoded(partial(self.family.decode, self.config)))(self._with_autoencoder(self.variables(ema)), z)


def open_run(workdir: str = "", weights: str = "", config=None, family=None) -> Run:
    """The newest good checkpoint of a `jgen train` workdir, or pretrained weights (diffusers'
    UNet2DModel layout) with `config` (a checked diffusion config) for schedule, sampler and data;
    their outputs default to runs/pretrained-<name>. `family`: the family object a run was trained
    with through `train(..., family=)` (default: config.family's module)."""
    if bool(weights) == bool(workdir):
        raise JgenError("give either --workdir DIR (a `jgen train` run) or --weights PATH (pretrained)")
    mesh = make_mesh()
    if weights:
        from jgen.diffusion.pretrained import load_weights, params_from_diffusers

        config, state_dict = load_weights(weights, config)
        check_hardware(config, mesh.devices.flat)
        like = state_shapes(get_family("diffusion"), config).params
        params = jax.device_put(params_from_diffusers(state_dict, like), replicated(mesh))
        state = TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params, opt_state=(),
                           ema_params=params, model_state={}, rng=jax.random.PRNGKey(0))
        name = os.path.splitext(os.path.basename(weights.rstrip("/")))[0]
        return Run(config, get_family("diffusion"), state, mesh, os.path.join("runs", "pretrained-" + name))
    files.check_workdir(workdir)
    path = os.path.join(workdir, "config.json")
    if not files.exists(path):
        raise JgenError(f"{workdir} is not a jgen run directory (no config.json): train first")
    config = read_config(path)
    check_hardware(config, mesh.devices.flat)
    family = get_family(config.family) if family is None else family
    ae = None
    if latent.is_latent(config):
        ae = latent.open_autoencoder(latent.parse(config.data.source)[0], mesh)
        if ae.ident != config.data.latent_ae:
            raise JgenError(f"the autoencoder in {ae.workdir} changed since {workdir} was trained on its latents "
                            f"({config.data.latent_ae} then, {ae.ident} now)")
    state = checkpoint.restore_latest(family, config, mesh, checkpoint.manager(workdir, create=False))
    return Run(config, family, state, mesh, workdir, ae)


def _init_or_restore(family, config, mesh, workdir: str):
    """(manager, state, resumed): the newest good checkpoint if the workdir has one, else a fresh state.
    The config is traced (eval_shape of init) first, and a workdir of another model is refused, before
    anything is created, restored, moved or written."""
    shapes = state_shapes(family, config)
    checkpoint.check_saved_config(workdir, config)
    mgr = checkpoint.manager(workdir, keep=config.train.keep_checkpoints)  # the same collectives on every process
    if mgr.latest_step() is None:
        return mgr, init_state(family, config, jax.random.PRNGKey(config.seed),
                               state_sharding(shapes, mesh, config.train)), False
    checkpoint.check_compatible(mgr, shapes, workdir, config)
    return mgr, checkpoint.restore_latest(family, config, mesh, mgr, quarantine=True), True


def train(config, workdir: str, family=None) -> str:
    """Trains config.train.steps steps in `workdir`, resuming from its newest good checkpoint; returns
    the final grid's path. Config, data and evaluator are checked before anything is written.

    `family`: any object with the functions of jgen.families.base.Family (a module, a class instance),
    trained in place of config.family's module; the config still holds a jgen family's keys, which
    the trainer, data and optimisers read (docs/tutorials/new_family.md). config.json names that jgen
    family, not the object: open such a run with open_run(workdir, family=...), not the command line."""
    family: Family = get_family(config.family) if family is None else family
    files.check_workdir(workdir)
    files.check_output(workdir, "directory")
    mesh = make_mesh()
    ae = None
    if latent.is_latent(config):  # the latents' config and source (encoded and cached on the first start)
        config, source, ae = latent.prepare(config, workdir, mesh, lambda c: check(c, devices=mesh.devices.size))
    else:
        source = open_source(config.data.source, config.data.data_dir)
    check(config, devices=mesh.devices.size, num_classes=source.num_classes)
    if config.family == "vae" and config.vae.prior == "gmm":  # found now, not at the first grid minutes later
        fit_on = min(len(source), config.vae.prior_fit_images)
        if fit_on < config.vae.prior_components:
            raise JgenError(f"vae.prior=gmm fits {config.vae.prior_components} components to {fit_on} images: "
                            f"lower vae.prior_components")
    check_hardware(config, mesh.devices.flat)
    refusal = cache_refusal(source, config.data) if config.data.cache else ""
    if any_process(bool(refusal)):  # every process stops, or none
        raise JgenError(refusal or "data.cache=true does not fit in another process's memory: set data.cache=false")
    evaluator = make_evaluator(config if ae is None else latent.image_config(config, ae), mesh) \
        if config.eval.every else None
    mgr, state, resumed = _init_or_restore(family, config, mesh, workdir)
    if config.data.cache:  # after the workdir checks: a wrong --workdir is not told after a long decode
        source = cached(source, config.data)
    lead = jax.process_index() == 0
    if lead:
        save_config(config, os.path.join(workdir, "config.json"))
        if resumed:
            print(f"jgen: resumed {workdir} at step {int(state.step)}")
    run = Run(config, family, state, mesh, workdir, ae)
    grid_sampler, grid_key = run.sampler(config.sample.num), jax.random.PRNGKey(config.seed + 1)

    def grid(state):  # the same noise at every grid: progress is visible
        run.state = state
        return gather(grid_sampler(grid_key))

    def evaluate(state):
        run.state = state
        report = evaluator(run.sampler, int(state.step), run.reconstruct())
        if lead:
            save_report(report, os.path.join(workdir, "eval", f"step_{report['step']:07d}.json"))
            tqdm.write(f"jgen: eval {describe(report)}")
        return scalars(report)

    batches = prefetched(global_batches(source, config.data, config.train.batch_size // jax.process_count(), mesh,
                                        seed=config.seed, start_step=int(state.step)))
    try:
        return train_loop(config, workdir, state, jit_train_step(family, config, mesh), batches, mgr, grid,
                          evaluate if evaluator else None)
    finally:
        batches.close()  # stops the prefetch thread now, not at interpreter exit (TensorFlow aborts then)
