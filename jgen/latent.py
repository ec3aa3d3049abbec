"""Latent generation (Rombach et al. 2022): a diffusion or flow model trained on the latents of an autoencoder
run (`data.source=latents:AE_WORKDIR[:SPLIT]`), its samples decoded by that autoencoder.

The images of the autoencoder run's data (its source, at `SPLIT` if given) are encoded once, by the
posterior mean, split over the processes (each encodes every P-th image, then all gather), and cached on
this host as one .npy array (data.latent_cache, default ~/.cache/jgen/latents), keyed by the autoencoder's
checkpoint step and config, the data spec and the resolution. The cache is then an ordinary random-access
source: resume stays O(1) and each process reads only its rows of each batch. Latents are multiplied by
data.latent_scale = 1 / std over the cache (Rombach et al.'s scale factor, section 4.3.2), recorded in the
run's config with the autoencoder's identity (data.latent_ae); a run whose autoencoder has changed since
is refused. The run's data.image_size and data.channels become the latents' side and channels, so any
diffusion or flow recipe, U-Net or DiT, trains on them unchanged.
"""

import dataclasses
import hashlib
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from jgen import files
from jgen.config import read_config
from jgen.data.pipeline import images_at
from jgen.data.sources import Source, open_source, with_split
from jgen.errors import JgenError
from jgen.families import get_family
from jgen.sharding import any_process
from jgen.train import checkpoint

PREFIX = "latents:"
DEFAULT_CACHE = os.path.expanduser("~/.cache/jgen/latents")


def is_latent(config) -> bool:
    return config.data.source.startswith(PREFIX)


def parse(spec: str) -> tuple:
    """'latents:DIR[:SPLIT]' -> (DIR, SPLIT or ''); a last ':' part with a '/' belongs to DIR (gs://...)."""
    rest = spec[len(PREFIX):]
    head, _, tail = rest.rpartition(":")
    return (head, tail) if head and "/" not in tail else (rest, "")


@dataclasses.dataclass(frozen=True)
class Autoencoder:
    workdir: str
    config: object  # the autoencoder run's config
    family: object
    variables: dict  # {'params': its parameters (EMA when it kept one)}
    ident: str  # 'step N-<sha1 of its config.json>': what the cache and a latent run are keyed by


def open_autoencoder(ae_dir: str, mesh) -> Autoencoder:
    """The newest checkpoint of an autoencoder run, or one line saying why it cannot be one."""
    path = os.path.join(ae_dir, "config.json")
    if not files.exists(path):
        raise JgenError(f"data.source=latents:{ae_dir}: {ae_dir} is not a jgen run directory (no config.json)")
    config = read_config(path)
    if config.family != "autoencoder":
        raise JgenError(f"data.source=latents:{ae_dir}: that is a {config.family} run, not an autoencoder run")
    mgr = checkpoint.manager(ae_dir, create=False)
    if mgr.latest_step() is None:
        raise JgenError(f"data.source=latents:{ae_dir}: the autoencoder run has no checkpoint: train it first")
    family = get_family("autoencoder")
    state = checkpoint.restore_latest(family, config, mesh, mgr)
    params = state.ema_params if config.optim.ema_decay > 0 else family.generator(state.params)
    digest = hashlib.sha1(files.read_text(path).encode()).hexdigest()[:8]
    return Autoencoder(ae_dir, config, family, {"params": params}, f"step {int(state.step)}-{digest}")


def _with_data(config, **data):
    out = ml_collections.ConfigDict(config.to_dict())
    out.data.update(data)
    return out


def image_config(config, ae: Autoencoder):
    """`config` with the data section the images come from: the autoencoder's, at the latent spec's split."""
    _, split = parse(config.data.source)
    a = ae.config.data
    return _with_data(config, source=with_split(a.source, split) if split else a.source, data_dir=a.data_dir,
                      image_size=a.image_size, channels=a.channels, crop=a.crop, random_flip=False,
                      latent_scale=0.0, latent_ae="", latent_cache="")


def planned_config(config, ae_config):
    """What a latents: run's config becomes for an autoencoder of `ae_config` (its latents' side and
    channels), without a checkpoint: for lowering and memory checks of recipes not trained here. Its
    samplers do not clip x0 to [-1, 1] (sample.clip=false): unit-variance latents reach +-4."""
    side, _, channels = get_family("autoencoder").latent_shape(ae_config)
    out = _with_data(config, image_size=side, channels=channels, random_flip=False)
    out.sample.clip = False
    return out


def _encode_all(ae: Autoencoder, images_source, data, batch: int = 250) -> np.ndarray:
    """Posterior means [N, h, w, c] float32 of every image; process p encodes images p, p + P, ..."""
    p, count, n = jax.process_index(), jax.process_count(), len(images_source)
    mine = np.arange(p, n, count)
    encode = jax.jit(lambda v, x: ae.family.encode(ae.config, v, x)[0])
    variables = jax.tree.map(lambda a: a.addressable_data(0), ae.variables)  # replicated: any local copy is whole
    shape = (0,) + ae.family.latent_shape(ae.config)
    out = [np.zeros(shape, np.float32)]
    with jax.default_matmul_precision(ae.config.train.matmul_precision):
        for i in range(0, len(mine), batch):
            x = images_at(images_source, data, mine[i:i + batch])
            out.append(np.asarray(encode(variables, jnp.asarray(x))))
    local = np.concatenate(out)
    if count == 1:
        return local
    rows = -(-n // count)  # every process sends as many rows; the padding is dropped after
    padded = np.concatenate([local, np.zeros((rows - len(local),) + local.shape[1:], np.float32)])
    every = np.asarray(multihost_utils.process_allgather(padded))  # [P, rows, ...]: process q had q, q + P, ...
    return every.transpose((1, 0) + tuple(range(2, every.ndim))).reshape((-1,) + local.shape[1:])[:n]


def cached_latents(ae: Autoencoder, config) -> tuple:
    """(latents [N, h, w, c] float32, read-only memory map; labels [N]; scale; classes): from this host's cache, or
    encoded now and written there atomically (the array first, its metadata last, which marks it done)."""
    img = image_config(config, ae)
    source = open_source(img.data.source, img.data.data_dir)
    key = json.dumps([ae.ident, os.path.abspath(ae.workdir), img.data.source, img.data.image_size,
                      img.data.channels, img.data.crop])
    name = hashlib.sha1(key.encode()).hexdigest()[:16]
    if jax.process_count() > 1:  # processes sharing a host keep their own copies (no two writers on a file)
        name += f"-p{jax.process_index()}of{jax.process_count()}"
    root = os.path.expanduser(config.data.latent_cache or DEFAULT_CACHE)
    array, meta = os.path.join(root, name + ".npy"), os.path.join(root, name + ".json")
    shape = (len(source),) + ae.family.latent_shape(ae.config)
    if any_process(not os.path.exists(meta)):  # encoding gathers over every process: all encode, or none
        os.makedirs(root, exist_ok=True)
        need, free = 4 * int(np.prod(shape)), shutil.disk_usage(root).free
        if any_process(need > 0.9 * free):
            raise JgenError(f"the latents of {len(source)} images need {need / 2 ** 30:.2f} GiB in {root} on every "
                            f"host ({free / 2 ** 30:.2f} GiB free on this one): set data.latent_cache to a larger disk")
        latents = _encode_all(ae, source, img.data)
        labels = source.labels(len(source))
        np.save(array + ".tmp.npy", latents)
        os.replace(array + ".tmp.npy", array)
        text = json.dumps({"key": json.loads(key), "shape": list(shape), "labels": labels.tolist(),
                           "num_classes": source.num_classes,
                           "scale": float(1.0 / np.std(latents.astype(np.float64)))})
        with open(meta + ".tmp", "w") as f:
            f.write(text)
        os.replace(meta + ".tmp", meta)
    with open(meta) as f:
        info = json.load(f)
    return np.load(array, mmap_mode="r"), np.asarray(info["labels"], np.int32), info["scale"], info["num_classes"]


def prepare(config, workdir: str, mesh, check=lambda c: None) -> tuple:
    """(the run's config, its Source of scaled latents, the autoencoder) for a latents: run; the config's data
    section gets the latents' side, channels, scale and the autoencoder's identity. Refuses, in one line, an
    autoencoder whose images differ from the config's, and one changed since this workdir's run started.
    check(config) judges the config with the latents' shape (a U-Net's levels fit 7 px, not 28), before
    anything is encoded."""
    ae_dir, _ = parse(config.data.source)
    ae = open_autoencoder(ae_dir, mesh)
    side, _, channels = ae.family.latent_shape(ae.config)
    d, a = config.data, ae.config.data
    if (d.image_size, d.channels) not in ((a.image_size, a.channels), (side, channels)):
        raise JgenError(f"data.image_size={d.image_size}, data.channels={d.channels} but the autoencoder in {ae_dir} "
                        f"takes {a.image_size}px images of {a.channels} channel(s)")
    planned = planned_config(config, ae.config)
    check(planned)
    saved = os.path.join(workdir, "config.json")
    if files.exists(saved):
        before = read_config(saved).data.latent_ae
        if before and before != ae.ident:
            raise JgenError(f"the autoencoder in {ae_dir} changed since this run cached its latents ({before} then, "
                            f"{ae.ident} now): use a fresh --workdir, or restore that autoencoder")
    latents, labels, scale, num_classes = cached_latents(ae, config)
    if d.latent_scale > 0 and abs(d.latent_scale - scale) > 1e-6 * scale:
        raise JgenError(f"data.latent_scale={d.latent_scale} but the cache of {ae_dir}'s latents measures {scale}")
    config = _with_data(planned, latent_scale=scale, latent_ae=ae.ident)
    source = Source(lambda i: (np.asarray(latents[i], np.float32) * np.float32(scale), int(labels[i])), len(labels),
                    num_classes, config.data.source, ready=True)
    return config, source, ae


def decoder(run_config, ae: Autoencoder):
    """(the autoencoder's variables, z [B, h, w, c] of the latent run, scaled) -> images [B, H, W, C] in [-1, 1]."""
    scale = run_config.data.latent_scale
    return lambda variables, z: ae.family.decode(ae.config, variables, z / scale)


def import_autoencoder(weights: str, workdir: str, overrides: list) -> str:
    """An autoencoder run directory (config.json and a checkpoint at step 0) from diffusers AutoencoderKL
    weights (a directory with config.json and diffusion_pytorch_model.{safetensors,bin}), so that
    `latents:WORKDIR`, `jgen eval` and `jgen sample` use it like a trained run. `overrides` set the data
    (source, image_size, ...); the patch discriminator and the optimisers start fresh, for fine-tuning.
    Returns the config's path. Refuses a non-empty workdir."""
    from jgen.config import apply_overrides, check, save_config
    from jgen.configs import base
    from jgen.diffusion.pretrained import read_weights
    from jgen.diffusion.pretrained_ae import ae_overrides, ae_params_from_diffusers
    from jgen.train.step import init_state

    files.check_workdir(workdir)
    if files.exists(os.path.join(workdir, "config.json")) or files.exists(checkpoint.checkpoint_dir(workdir)):
        raise JgenError(f"{workdir} already holds a run: import into a fresh --workdir")
    state_dict, dconfig = read_weights(weights)
    if not dconfig:
        raise JgenError(f"{weights} has no config.json: give the diffusers AutoencoderKL directory")
    config = apply_overrides(base.get_config("autoencoder"), ae_overrides(dconfig) + list(overrides))
    check(config)
    family = get_family("autoencoder")
    state = init_state(family, config, jax.random.PRNGKey(config.seed))
    params = dict(state.params, gen=ae_params_from_diffusers(state_dict, state.params["gen"]))
    state = state.replace(params=params, ema_params=family.generator(params))
    mgr = checkpoint.manager(workdir)
    checkpoint.save(mgr, state)
    mgr.wait_until_finished()
    path = os.path.join(workdir, "config.json")
    save_config(config, path)
    return path
