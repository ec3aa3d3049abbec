"""Guidance: steering a trained DDPM at sampling time without retraining it.

Each method is a small pure piece that one of the samplers takes, so none copies a sampler:
- a `post(x, level, key)` constraint applied after every step: inpainting pastes the known pixels
  (RePaint, Lugmayr et al. 2022), ILVR swaps in the low frequencies of a reference (Choi et al. 2021);
- a path of noise levels: RePaint's resampling climbs back up and re-descends;
- a start point: SDEdit (Meng et al. 2022) noises the input to a level and denoises from there;
- a wrapped `model_fn`: classifier-free guidance (Ho & Salimans 2022) mixes two predictions.
Images are NHWC in [-1, 1]; levels follow the samplers and the process (jgen.diffusion.process): DDPM's
integer t with -1 the clean image, or a continuous process's t (sigma for EDM) with 0 the clean image.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import process as P
from jgen.errors import JgenError
from jgen.nn.layers import upsample_nearest


def noised(proc, x0, level, key):
    """A draw of x at `level` given the clean x0: q(x_t | x_0) (eq. 4), the forward jump from the clean
    level; the clean level returns x0 itself."""
    return P.q_jump(proc, x0, P.clean_level(proc), level, key)


# --- inpainting -------------------------------------------------------------------------------------

def paste_known(proc, known, keep):
    """Post-step constraint: where keep == 1 the sample takes `known`, noised to the current level.
    After the last step (the clean level) the known pixels are exactly the input's. keep: [B, H, W, 1 or C]."""
    def post(x, level, key):
        return keep * noised(proc, known, level, key) + (1.0 - keep) * x
    return post


def repaint_path(path, jump: int = 10, resample: int = 5) -> np.ndarray:
    """RePaint's schedule over a sampler's descending `path`: every `jump` steps down, climb `jump`
    steps back up (fresh forward noise) and descend again, until each stretch was walked `resample`
    times. The harmonising of known and generated regions happens in those repeated descents.
    Costs about `resample` times the model calls of the plain path."""
    if jump < 1 or resample < 1:
        raise JgenError(f"RePaint needs jump >= 1 and resample >= 1, got {jump} and {resample}")
    path = np.asarray(path)
    out, i, left, last = [path[0]], 0, {}, len(path) - 1
    while i < last:
        i += 1
        out.append(path[i])
        if i % jump == 0 and i < last and left.setdefault(i, resample - 1) > 0:
            left[i] -= 1
            i -= jump
            out.append(path[i])
    return np.asarray(out, path.dtype)


def box_mask(size: int, frac: float = 0.5):
    """[size, size, 1] keep-mask (1 = known) with a centred square hole covering `frac` of the side."""
    keep = np.ones((size, size, 1), np.float32)
    a = int(round(size * (1 - frac) / 2))
    keep[a:size - a, a:size - a] = 0.0
    return keep


def half_mask(size: int):
    """Keep the left half, fill the right half."""
    keep = np.ones((size, size, 1), np.float32)
    keep[:, size // 2:] = 0.0
    return keep


def stroke_mask(size: int, rng: np.random.Generator, strokes: int = 4, width: float = 0.12):
    """Random thick strokes (straight segments of random length and angle) to fill."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    keep = np.ones((size, size), np.float32)
    for _ in range(strokes):
        p = rng.uniform(0.15, 0.85, 2) * size
        q = p + rng.uniform(0.2, 0.5) * size * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        d, pts = q - p, np.stack([xx - p[0], yy - p[1]], -1)
        s = np.clip((pts @ d) / (d @ d), 0.0, 1.0)
        dist = np.linalg.norm(pts - s[..., None] * d, axis=-1)
        keep[dist < width * size / 2] = 0.0
    return keep[..., None]


# --- super-resolution -------------------------------------------------------------------------------

def downsample(x, factor: int):
    """Box-filter downsampling [B, H, W, C] -> [B, H/f, W/f, C]: each output pixel is a block mean."""
    b, h, w, c = x.shape
    if h % factor or w % factor:
        raise JgenError(f"image size {h}x{w} is not a multiple of the scale {factor}")
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def upsample_bicubic(x, factor: int):
    """The bicubic baseline, and SR3's conditioning input: [B, h, w, C] -> [B, f h, f w, C]."""
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, h * factor, w * factor, c), method="cubic")


def low_pass(x, factor: int):
    """phi_N of ILVR: block means, repeated. A projection, since downsample(low_pass(x)) = downsample(x)."""
    return upsample_nearest(downsample(x, factor), factor)


def match_block_means(x, low, factor: int, iters: int = 40):
    """clip(x + c, -1, 1) with one shift c per block, found by bisection, whose block means are `low`
    (in [-1, 1]): the image keeps x's detail and is both in range and exactly consistent with `low`,
    where plain clipping of x would move the means of blocks near black or white."""
    up = lambda v: upsample_nearest(v, factor)
    b, h, w, c = x.shape
    blocks = x.reshape(b, h // factor, factor, w // factor, factor, c)
    block_max, block_min = blocks.max(axis=(2, 4)), blocks.min(axis=(2, 4))
    lo, hi = -1.0 - block_max, 1.0 - block_min  # all pixels at -1, all at +1

    def halve(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        below = downsample(jnp.clip(x + up(mid), -1.0, 1.0), factor) < low
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, halve, (lo, hi))
    return jnp.clip(x + up((lo + hi) / 2), -1.0, 1.0)


def ilvr(proc, low, factor: int):
    """Post-step constraint (ILVR, eq. 7 with phi = low_pass): replace the sample's block means with
    those of the reference noised to the current level. The last step (the clean level) uses
    match_block_means, so the output is in [-1, 1] and, downsampled, is `low` to ~1e-6.
    low: [B, H/f, W/f, C] in [-1, 1]."""
    reference = upsample_nearest(low, factor)

    def post(x, level, key):
        x = x - low_pass(x, factor) + low_pass(noised(proc, reference, level, key), factor)
        return jax.lax.cond(level <= P.clean_level(proc), lambda x: match_block_means(x, low, factor), lambda x: x, x)
    return post


# --- editing ----------------------------------------------------------------------------------------

def sdedit_level(proc, strength: float):
    """SDEdit's start level for `strength` in [0, 1]: round(strength T) - 1 for DDPM, t = strength for vp
    and flow, sigma = sigma_max strength^7 for EDM (even in sigma^(1/7) from 0 to sigma_max, as EDM's
    rho = 7 grid is, so 0.5 gives sigma 0.6 rather than nearly pure noise). 0 is the clean level."""
    if not 0.0 <= strength <= 1.0:
        raise JgenError(f"--strength must be in [0, 1], got {strength}")
    if P.is_discrete(proc):
        return max(int(round(strength * proc.num_timesteps)) - 1, -1)
    return float(proc.sigma_max * strength ** 7 if proc.kind == "edm" else strength)


def sdedit_start(proc, x, strength: float, key):
    """SDEdit's start: (x noised to sdedit_level, that level). Strength 0 gives (x, the clean level), so
    the sampler has nothing to do and returns x; strength 1 starts from almost pure noise."""
    level = sdedit_level(proc, strength)
    return (x, level) if level <= P.clean_level(proc) else (noised(proc, x, level, key), level)


# --- class-conditional ------------------------------------------------------------------------------

def classifier_free(model_fn, labels, null_label: int, scale):
    """Classifier-free guidance: model_fn(x, t, y) -> (x0, eps) becomes (x, t) -> u + scale (c - u),
    c the prediction for `labels`, u for the null label, both from one batched call. Scale 0 is the
    unconditional model, 1 the conditional one; Ho & Salimans' w is scale - 1. x0 and eps are linear
    in the network output, so mixing either is mixing the output."""
    def fn(x, t):
        n = x.shape[0]
        y = jnp.concatenate([labels, jnp.full_like(labels, null_label)])
        both = model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]), y)
        return tuple(o[n:] + scale * (o[:n] - o[n:]) for o in both)
    return fn
