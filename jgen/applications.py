"""What a trained run is for beyond its training grid: the model work of `jgen sample | inpaint |
superres | edit | export | interpolate | reconstruct | traverse | project`, each a function of a `Run`.

The diffusion applications compose guidance pieces (jgen.diffusion.guidance) into a `Cond` for the
run's one sampler; none copies a sampler. The CLI reads inputs, calls one of these, writes outputs.
"""

import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jgen.data.pipeline import first_images
from jgen.data.sources import open_source, with_split
from jgen.diffusion import guidance as G
from jgen.errors import JgenError
from jgen.families import diffusion, stylegan, vae
from jgen.families.base import Cond
from jgen.images import save_png, to_uint8
from jgen.interpolate import interpolation_latents
from jgen.run import Run


def class_cond(run: Run, num: int, label=None, guidance=None, user_image: bool = False) -> dict:
    """Cond fields for --label / --guidance (check_cond refuses them for runs that are not class-
    conditional). A user's image has no label: without one, a class-conditional run edits it with
    the unconditional model (guidance 0)."""
    if user_image and label is None and run.config.condition.kind == "class":
        guidance = 0.0
    return {"labels": None if label is None else np.full(num, label, np.int32), "guidance": guidance}


def _process(run: Run, command: str):
    require_family(run, "diffusion", command)
    require_pixels(run, command)
    return diffusion.process(run.config)


def require_pixels(run: Run, command: str) -> None:
    """Refuses, in one line, a command that edits pixels through the sampler on a latent run."""
    if run.ae is not None:
        raise JgenError(f"`jgen {command}` works in pixel space; {run.workdir} generates the latents of the "
                        f"autoencoder in {run.ae.workdir} (data.source={run.config.data.source})")


def require_family(run: Run, family: str, command: str) -> None:
    if run.config.family != family:
        raise JgenError(f"`jgen {command}` needs a {'VAE' if family == 'vae' else family} run; {run.workdir} "
                        f"is a {run.config.family} run")


def inpaint(run: Run, images, keep, key, jump: int = 10, resample: int = 5, label=None, guidance=None,
            ema: bool = True):
    """RePaint: images [B, H, W, C] in [-1, 1], keep [B, H, W, 1] (1 = known) -> filled images.
    The known pixels of the result are exactly the input's."""
    proc = _process(run, "inpaint")
    path = tuple(t.item() for t in G.repaint_path(diffusion.sampler_path(run.config), jump, resample))
    cond = Cond(post=G.paste_known(proc, jnp.asarray(images), jnp.asarray(keep)), path=path,
                **class_cond(run, len(images), label, guidance, user_image=True))
    return run.sampler(len(images), ema)(key, cond)


def superres(run: Run, low, scale: int, key, label=None, guidance=None, ema: bool = True):
    """low [B, H/scale, W/scale, C] -> [B, H, W, C]: SR3 when the run was trained on low-resolution
    inputs (condition.kind=lowres), zero-shot ILVR with an unconditional run otherwise."""
    proc, c = _process(run, "superres"), run.config.condition
    if c.kind == "lowres":
        if scale != c.scale:
            raise JgenError(f"this SR3 run upsamples by {c.scale}, not {scale}")
        return run.sampler(len(low), ema)(key, Cond(lowres=jnp.asarray(low), **class_cond(run, len(low), label,
                                                                                          guidance)))
    cond = Cond(post=G.ilvr(proc, jnp.asarray(low), scale), **class_cond(run, len(low), label, guidance, True))
    return run.sampler(len(low), ema)(key, cond)


def edit(run: Run, images, strength: float, key, label=None, guidance=None, ema: bool = True):
    """SDEdit: images noised to `strength` (0..1) and denoised back into the training domain."""
    proc = _process(run, "edit")
    noise_key, sample_key = jax.random.split(key)
    x_t, level = G.sdedit_start(proc, jnp.asarray(images), strength, noise_key)
    cond = Cond(x_T=x_t, start=level, **class_cond(run, len(images), label, guidance, user_image=True))
    return run.sampler(len(images), ema)(sample_key, cond)


def make_mask(kind: str, size: int, seed: int = 0) -> np.ndarray:
    """A generated keep-mask [1, size, size, 1]: box (centre half), half (right half) or strokes."""
    if kind == "box":
        return G.box_mask(size)[None]
    if kind == "half":
        return G.half_mask(size)[None]
    if kind == "strokes":
        return G.stroke_mask(size, np.random.default_rng(seed))[None]
    raise JgenError(f"unknown --mask-kind '{kind}' (box | half | strokes)")


def export(run: Run, num: int, out: str, batch: int, seed: int = 0, label=None, ema: bool = True,
           progress=None) -> int:
    """Writes `num` samples as PNGs under `out`: out/<class>/NNNNNN.png for class-conditional runs (labels
    cycling over the classes, or only `label`), out/NNNNNN.png otherwise; `folder:out` reads them back
    with those labels. Returns the number written."""
    classes = run.config.condition.num_classes if run.config.condition.kind == "class" else 0
    width = len(str(max(classes - 1, 0)))  # zero-padded, so the folder source's sorted names keep the order
    for start in range(0, num, batch):
        n = min(batch, num - start)
        labels = class_cond(run, n, label)["labels"]
        if classes and label is None:
            labels = np.arange(start, start + n, dtype=np.int32) % classes
        key = jax.random.fold_in(jax.random.PRNGKey(seed), start)
        images = to_uint8(jax.device_get(run.sampler(n, ema)(key, Cond(labels=labels))))
        for i, im in enumerate(images):
            save_png(im, os.path.join(out, f"{int(labels[i]):0{width}d}" if classes else "", f"{start + i:06d}.png"))
        if progress:
            progress(n)
    return num


def interpolate(run: Run, rows: int, cols: int, seed: int = 0, ema: bool = True):
    """rows x cols images: each row decodes points along a great circle between two random latents."""
    z = interpolation_latents(jax.random.PRNGKey(seed), run.family.latent_shape(run.config), rows, cols)
    return run.decode(z, ema)


def dataset_images(run: Run, split: str, num: int) -> np.ndarray:
    """The first `num` images of the run's data source (or `split` of it), as training sees them, unflipped."""
    data = run.config.data
    source = open_source(with_split(data.source, split) if split else data.source, data.data_dir)
    return first_images(source, data, num)


def reconstruct(run: Run, images, seed: int = 0):
    """(pairs [2B, H, W, C]: each image then its reconstruction, the ELBO's parts as floats)."""
    require_family(run, "vae", "reconstruct")
    recon, m = run.jit("reconstruct", partial(vae.reconstruct, run.config))(
        run.variables(), jnp.asarray(images), jax.random.PRNGKey(seed))
    pairs = np.stack([np.asarray(images), np.asarray(recon)], 1).reshape((-1,) + images.shape[1:])
    return pairs, {k: float(v) for k, v in m.items()}


def traverse(run: Run, images, index: int, cols: int, radius: float):
    """(images [latent * cols, H, W, C], KL per latent, row order): see jgen.families.vae.traversal."""
    require_family(run, "vae", "traverse")
    if not 0 <= index < len(images):
        raise JgenError(f"--index must be in [0, {len(images)}) (the first --num images), got {index}")
    fn = run.jit(f"traverse/{index}/{cols}/{radius}",
                 partial(vae.traversal, run.config, index=index, cols=cols, radius=radius))
    out, kl, order = fn(run.variables(), jnp.asarray(images))
    return out, np.asarray(kl), np.asarray(order)


def require_stylegan(run: Run, command: str) -> None:
    if run.config.family != "gan" or run.config.gan.arch != "stylegan2":
        kind = f"gan run with gan.arch={run.config.gan.arch}" if run.config.family == "gan" else \
            f"{run.config.family} run"
        raise JgenError(f"`jgen {command}` on a GAN needs a StyleGAN2 run (a mapping network to project "
                        f"onto); {run.workdir} is a {kind}")


def feature_fn(run: Run, kind: str, path: str = ""):
    """The projection's feature loss network, images [N, H, W, C] in [-1, 1] -> features [N, D]:
    'classifier' (jgen train-classifier's, at `path` or the run's default), 'inception' (the port at
    `path`), or None for 'none'."""
    from jgen.eval.evaluate import classifier_extractor, default_classifier_dir, inception_extractor

    data = run.config.data
    if kind == "none":
        return None
    if kind == "classifier":
        path = path or default_classifier_dir(data.source)
        if not os.path.exists(os.path.join(path, "classifier.json")):
            raise JgenError(f"no classifier in {path}: run `jgen train-classifier`, give --features-path, or "
                            "--features none")
        ex = classifier_extractor(path, data.image_size, data.channels)
    else:
        ex = inception_extractor(path)
    return lambda x: ex.apply(ex.params, x)["features"]


def project(run: Run, images, keep, key, steps: int, w_plus: bool = False, features: str = "none",
            features_path: str = "", ema: bool = True):
    """Images [B, H, W, C] in [-1, 1] (known where keep [B, H, W, 1] is 1) -> (ws, noises, the generator's
    images): jgen.families.stylegan.project on the run's generator (EMA by default)."""
    require_stylegan(run, "project" if np.all(np.asarray(keep) == 1) else "inpaint")
    fn = feature_fn(run, features, features_path)
    name = f"project/{steps}/{w_plus}/{features}/{features_path}/{ema}"
    call = run.jit(name, lambda v, x, k, key: stylegan.project(run.config, v, x, k, key, steps, w_plus, fn))
    return call(run.variables(ema), jnp.asarray(images), jnp.asarray(keep, jnp.float32), key)


def style_mix(run: Run, ws, noises, num: int, seed: int = 0, ema: bool = True):
    """A grid [3 * num, H, W, C] for one projected image (ws [1, num_ws, w_dim]): per column a random w
    (row 1), the projection's coarse layers with the random fine ones (row 2), the random coarse
    layers with the projection's fine ones (row 3). Coarse = w0..w2, the 4 and 8 px convolutions
    (layout and shape); fine = the rest (stroke, texture, colour)."""
    config = run.config
    n_ws, cut = ws.shape[1], 3

    def grid(variables, ws, noises, key):
        state = variables["model_state"]["gen"]
        z = jax.random.normal(key, (num, config.model.latent_dim))
        w = stylegan.truncate(stylegan.mapping(config, variables["params"], z), state["w_avg"],
                              config.sample.truncation)
        rand = jnp.broadcast_to(w[:, None], (num, n_ws, w.shape[-1]))
        mine = jnp.broadcast_to(ws, rand.shape)
        rows = [rand, stylegan.mix_styles(mine, rand, cut), stylegan.mix_styles(rand, mine, cut)]
        fixed = [jnp.broadcast_to(x, (num,) + x.shape[1:]) for x in noises]
        return jnp.concatenate([jnp.clip(stylegan.synthesize(config, variables["params"], r, fixed), -1, 1)
                                for r in rows])

    return run.jit(f"style_mix/{num}", grid)(run.variables(ema), ws, noises, jax.random.PRNGKey(seed))
