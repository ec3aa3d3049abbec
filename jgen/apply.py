"""What a trained DDPM run is for beyond sampling: `jgen inpaint | superres | edit | export`.

The functions here compose the guidance pieces (jgen.diffusion.guidance) with the family's one
sampler and are pure (jit them with the config static); reading and writing images is at the bottom.
"""

import os
from functools import partial

import jax
import numpy as np
from PIL import Image, UnidentifiedImageError

from jgen.diffusion import guidance as G
from jgen.diffusion.schedules import schedule_from_config
from jgen.errors import JgenError
from jgen.families import diffusion
from jgen.images import save_png, to_uint8


def _class_kwargs(config, labels, guidance):
    """Conditioning of a class-conditional run: the given labels, or the unconditional model (guidance
    0) when none are given, since a user's image has no label; other runs take no labels."""
    if diffusion.conditioning(config)[0] != "class":
        if labels is not None:
            raise JgenError("--label needs a class-conditional run (condition.kind=class)")
        return {}
    return dict(labels=labels, guidance=guidance) if labels is not None else dict(guidance=0.0)


def inpaint(config, state, images, keep, key, jump: int = 10, resample: int = 5, labels=None, guidance=None,
            ema: bool = True):
    """RePaint: images [B, H, W, C] in [-1, 1], keep [B, H, W, 1] (1 = known) -> filled images.
    The known pixels of the result are exactly the input's."""
    sched = schedule_from_config(config.diffusion)
    path = G.repaint_path(diffusion.sampler_path(config), jump, resample)
    return diffusion.sample(config, state, key, images.shape[0], ema, post=G.paste_known(sched, images, keep),
                            path=path, **_class_kwargs(config, labels, guidance))


def superres(config, state, low, scale: int, key, labels=None, guidance=None, ema: bool = True):
    """low [B, H/scale, W/scale, C] -> [B, H, W, C]: SR3 when the run was trained on low-resolution
    inputs (condition.kind=lowres), zero-shot ILVR with an unconditional run otherwise."""
    kind, c = diffusion.conditioning(config)
    if kind == "lowres":
        if scale != c.scale:
            raise JgenError(f"this SR3 run upsamples by {c.scale}, not {scale}")
        return diffusion.sample(config, state, key, low.shape[0], ema, lowres=low)
    sched = schedule_from_config(config.diffusion)
    return diffusion.sample(config, state, key, low.shape[0], ema, post=G.ilvr(sched, low, scale),
                            **_class_kwargs(config, labels, guidance))


def edit(config, state, images, strength: float, key, labels=None, guidance=None, ema: bool = True):
    """SDEdit: images noised to `strength` (0..1) and denoised back into the training domain."""
    sched = schedule_from_config(config.diffusion)
    noise_key, sample_key = jax.random.split(key)
    x_t, level = G.sdedit_start(sched, images, strength, noise_key)
    return diffusion.sample(config, state, sample_key, images.shape[0], ema, x_T=x_t, start=level,
                            **_class_kwargs(config, labels, guidance))


# --- images at the edges ----------------------------------------------------------------------------

def read_image(path: str, size: int, channels: int, resize: bool = True) -> np.ndarray:
    """A square PNG/JPEG -> float32 [1, size, size, channels] in [-1, 1] (bicubic resize if needed and
    allowed)."""
    if not os.path.isfile(path):
        raise JgenError(f"image not found: {path}")
    try:
        im = Image.open(path)
        im = im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise JgenError(f"cannot read image {path}: {e}") from None
    if im.width != im.height:
        raise JgenError(f"{path} is {im.width}x{im.height}; crop it square first (the model is {size}x{size})")
    if im.width != size and not resize:
        raise JgenError(f"{path} is {im.width}x{im.height}; expected {size}x{size}")
    if im.width != size:
        im = im.resize((size, size), Image.BICUBIC)
    x = np.asarray(im, np.float32).reshape(size, size, channels)
    return (x / 127.5 - 1.0)[None]


def read_mask(path: str, size: int) -> np.ndarray:
    """A mask image, white = fill -> keep [1, size, size, 1] (1 = known), nearest-neighbour resized."""
    if not os.path.isfile(path):
        raise JgenError(f"mask not found: {path}")
    try:
        im = Image.open(path).convert("L")
    except (UnidentifiedImageError, OSError) as e:
        raise JgenError(f"cannot read mask {path}: {e}") from None
    if im.width != im.height:
        raise JgenError(f"mask {path} is {im.width}x{im.height}; it must be square like the image")
    m = np.asarray(im.resize((size, size), Image.NEAREST)) > 127
    return (~m).astype(np.float32)[None, ..., None]


def make_mask(kind: str, size: int, seed: int = 0) -> np.ndarray:
    """A generated keep-mask [1, size, size, 1]: box (centre half), half (right half) or strokes."""
    if kind == "box":
        return G.box_mask(size)[None]
    if kind == "half":
        return G.half_mask(size)[None]
    if kind == "strokes":
        return G.stroke_mask(size, np.random.default_rng(seed))[None]
    raise JgenError(f"unknown --mask-kind '{kind}' (box | half | strokes)")


def export(config, family, state, num: int, out: str, batch: int, seed: int = 0, label=None, ema: bool = True,
           progress=None) -> int:
    """Writes `num` samples as PNGs under `out`: out/<class>/NNNNNN.png for class-conditional runs (labels
    cycling over the classes, or only `label`), out/NNNNNN.png otherwise; `folder:out` reads them back
    with those labels. Returns the number written."""
    conditional = config.family == "diffusion" and diffusion.conditioning(config)[0] == "class"
    if label is not None and not conditional:
        raise JgenError("--label needs a class-conditional run (condition.kind=class)")
    classes = config.condition.num_classes if conditional else 0
    if label is not None and not 0 <= label < classes:
        raise JgenError(f"--label must be in [0, {classes}), got {label}")
    width = len(str(max(classes - 1, 0)))  # zero-padded, so the folder source's sorted names keep the order

    @partial(jax.jit, static_argnums=2)
    def draw(state, key, n, labels):
        return family.sample(config, state, key, n, ema, **({"labels": labels} if conditional else {}))

    for start in range(0, num, batch):
        n = min(batch, num - start)
        labels = None
        if conditional:
            labels = np.full(n, label) if label is not None else np.arange(start, start + n) % classes
        images = to_uint8(jax.device_get(draw(state, jax.random.fold_in(jax.random.PRNGKey(seed), start), n,
                                              labels)))
        for i, im in enumerate(images):
            sub = f"{int(labels[i]):0{width}d}" if conditional else ""
            save_png(im, os.path.join(out, sub, f"{start + i:06d}.png"))
        if progress:
            progress(n)
    return num
