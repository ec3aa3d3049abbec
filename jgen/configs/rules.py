"""`check`: the one place that says which values each config key accepts, and which combinations of
keys can work. Every rule names the key, the bad value and what is allowed, on one line, before
anything runs (jgen.config re-exports `check`)."""

import math
import os
from typing import Callable, NamedTuple

import ml_collections

from jgen.configs import base
from jgen.errors import JgenError


class Rule(NamedTuple):
    ok: Callable[[object], bool]
    allowed: str  # completes "KEY=VALUE must be ..."


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def ints(lo: int, hi: int | None = None) -> Rule:
    text = f"an int >= {lo}" if hi is None else f"an int in [{lo}, {hi}]"
    return Rule(lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi), text)


def reals(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    if hi is None:
        text = f"a number {'>' if lo_open else '>='} {lo}"
    else:
        text = f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    above = lambda v: v > lo if lo_open else v >= lo
    below = lambda v: hi is None or (v < hi if hi_open else v <= hi)
    return Rule(lambda v: _is_real(v) and above(v) and below(v), text)


def one_of(*choices) -> Rule:
    return Rule(lambda v: any(type(v) is type(c) and v == c for c in choices),
                "one of " + " | ".join(str(c) for c in choices))


def _metric_names(v) -> list:
    return [m.strip() for m in v.split(",") if m.strip()] if isinstance(v, str) else []


METRICS = ("fid", "kid", "is", "pr", "conf")
SOURCES = ("builtin:", "tfds:", "folder:", "latents:")
TEXT = Rule(lambda v: isinstance(v, str), "a string")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
SOURCE = Rule(lambda v: isinstance(v, str) and any(v.startswith(p) and len(v) > len(p) for p in SOURCES),
              "builtin:NAME[:SPLIT], tfds:NAME[:SPLIT], folder:PATH or latents:AE_WORKDIR[:SPLIT]")
LEVELS = Rule(lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(_is_int(m) and m >= 1 for m in v),
              "a non-empty tuple of ints >= 1, e.g. (1, 2, 4)")
SIDES = Rule(lambda v: isinstance(v, (tuple, list)) and all(_is_int(s) and s >= 1 for s in v),
             "a tuple of ints >= 1 (sides in px), possibly empty")
METRIC_LIST = Rule(lambda v: bool(_metric_names(v)) and all(m in METRICS for m in _metric_names(v)),
                   "a comma-separated list of " + ", ".join(METRICS) + " (at least one)")
POSITIVE, NONNEG = reals(0, lo_open=True), reals(0)
FRACTION, BELOW_ONE, OPEN_UNIT = reals(0, 1), reals(0, 1, hi_open=True), reals(0, 1, lo_open=True, hi_open=True)

# KEY -> the values it accepts: first the keys every family has, then each family's own.
SHARED_RULES = {
    "seed": ints(0),
    "data.source": SOURCE, "data.data_dir": TEXT, "data.image_size": ints(4, 1024),
    "data.channels": ints(1, 1024), "data.crop": ints(0), "data.random_flip": BOOL, "data.cache": BOOL,
    "data.latent_cache": TEXT, "data.latent_scale": NONNEG, "data.latent_ae": TEXT,
    "train.steps": ints(1), "train.batch_size": ints(1), "train.log_every": ints(1),
    "train.sample_every": ints(0), "train.ckpt_every": ints(1), "train.keep_checkpoints": ints(1),
    "train.compute_dtype": one_of("float32", "bfloat16"), "train.grad_accum": ints(1),
    "train.matmul_precision": one_of("highest", "high", "default"),
    "train.param_sharding": one_of("replicated", "fsdp"), "train.fsdp_min_size": ints(1),
    "train.max_nonfinite": ints(1),
    "eval.every": ints(0), "eval.num": ints(2), "eval.metrics": METRIC_LIST,
    "eval.extractor": one_of("inception", "classifier"), "eval.split": TEXT, "eval.batch": ints(1),
    "eval.classifier": TEXT, "eval.inception": TEXT, "eval.cache_dir": TEXT,
    "condition.kind": one_of("none", "class", "lowres"), "condition.num_classes": ints(2),
    "condition.drop": FRACTION, "condition.scale": ints(2),
    "sample.num": ints(1),
}
ADAM_RULES = {"lr": POSITIVE, "warmup_steps": ints(0), "decay": one_of("none", "cosine"), "b1": BELOW_ONE, "b2": BELOW_ONE, "eps": POSITIVE,
              "weight_decay": NONNEG, "grad_clip": NONNEG}


def _adam(prefix: str) -> dict:
    return {f"{prefix}.{k}": rule for k, rule in ADAM_RULES.items()}


FAMILY_RULES = {
    "diffusion": {
        "model.arch": one_of("unet", "dit"), "model.patch_size": ints(1), "model.hidden": ints(1),
        "model.depth": ints(1), "model.heads": ints(1), "model.mlp_ratio": POSITIVE,
        "diffusion.process": one_of("discrete", "vp", "edm", "flow"),
        "diffusion.sigma_min": POSITIVE, "diffusion.sigma_max": POSITIVE, "diffusion.sigma_data": POSITIVE,
        "diffusion.t_min": OPEN_UNIT, "diffusion.time_sampling": one_of("uniform", "logit_normal", "lognormal"),
        "diffusion.logit_mean": reals(-10, 10), "diffusion.logit_std": POSITIVE, "diffusion.p_mean": reals(-10, 10),
        "diffusion.p_std": POSITIVE, "diffusion.sigmoid_bias": reals(-20, 20),
        "sample.grid": one_of("default", "uniform", "logsnr", "karras"), "sample.churn": NONNEG,
        "sample.churn_tmin": NONNEG, "sample.churn_tmax": NONNEG,
        "sample.s_noise": POSITIVE,
        "model.ch": ints(1), "model.ch_mult": LEVELS, "model.num_res_blocks": ints(1),
        "model.attn_resolutions": SIDES, "model.dropout": BELOW_ONE, "model.num_groups": ints(1),
        "diffusion.timesteps": ints(1), "diffusion.schedule": one_of("linear", "cosine"),
        "diffusion.beta_start": OPEN_UNIT, "diffusion.beta_end": OPEN_UNIT,
        "diffusion.prediction": one_of("eps", "x0", "v", "velocity", "F"),
        "diffusion.loss_weight": one_of("none", "min_snr", "edm", "sigmoid", "elbo"), "diffusion.min_snr_gamma": POSITIVE,
        **_adam("optim"), "optim.ema_decay": BELOW_ONE,
        "sample.sampler": one_of("ddpm", "ddim", "euler", "heun", "dpmpp2m", "sde"), "sample.steps": ints(1), "sample.eta": NONNEG,
        "sample.variance": one_of("small", "large"), "sample.clip": BOOL, "sample.guidance": NONNEG,
    },
    "gan": {
        "model.latent_dim": ints(1), "model.ngf": ints(1), "model.ndf": ints(1),
        "model.disc_norm": one_of("batch", "none", "spectral"), "model.upsample": one_of("subpixel", "transpose"),
        "gan.loss": one_of("nonsaturating", "wgan-gp", "hinge"), "gan.n_critic": ints(1), "gan.gp_weight": NONNEG,
        "gan.arch": one_of("dcgan", "stylegan2"), "gan.r1_gamma": NONNEG, "gan.r1_interval": ints(1),
        "gan.pl_weight": NONNEG, "gan.pl_interval": ints(1), "gan.pl_decay": OPEN_UNIT,
        "gan.pl_batch_shrink": ints(1), "gan.style_mixing": FRACTION, "gan.w_avg_beta": BELOW_ONE,
        "gan.augment": one_of("none", "diffaug", "ada"), "gan.ada_target": OPEN_UNIT,
        "gan.ada_interval": ints(1), "gan.ada_kimg": POSITIVE,
        "model.w_dim": ints(1), "model.mapping_layers": ints(1), "model.mapping_lr": POSITIVE,
        "model.channel_base": ints(1), "model.channel_max": ints(1), "model.mbstd_group": ints(1),
        "sample.truncation": FRACTION,
        **_adam("optim.gen"), **_adam("optim.disc"), "optim.ema_decay": BELOW_ONE,
    },
    "vae": {
        "model.latent_dim": ints(1),
        "vae.likelihood": one_of("bernoulli", "gaussian", "gaussian_learned"), "vae.sigma": POSITIVE,
        "vae.objective": one_of("beta", "capacity"), "vae.beta": NONNEG, "vae.gamma": NONNEG,
        "vae.capacity_max": NONNEG, "vae.capacity_steps": ints(1), "vae.prior": one_of("normal", "gmm"),
        "vae.prior_components": ints(1), "vae.prior_fit_images": ints(1),
        **_adam("optim"), "optim.ema_decay": BELOW_ONE,
    },
    "autoencoder": {
        "model.ch": ints(1), "model.ch_mult": LEVELS, "model.num_res_blocks": ints(1), "model.z_channels": ints(1),
        "model.num_groups": ints(1), "model.mid_attention": BOOL, "model.dropout": BELOW_ONE,
        "ae.recon": one_of("l1", "l2"), "ae.kl_weight": NONNEG, "ae.perceptual": TEXT, "ae.perceptual_weight": NONNEG,
        "ae.disc_start": ints(0), "ae.disc_weight": NONNEG, "ae.disc_loss": one_of("hinge", "nonsaturating"),
        "ae.disc_layers": ints(1, 6), "ae.disc_ndf": ints(1),
        **_adam("optim.gen"), **_adam("optim.disc"), "optim.ema_decay": BELOW_ONE,
    },
}


def halvings(size: int) -> tuple:
    """(base, k) with size == base * 2**k, base >= 4 and k as large as possible: the layout of the
    DCGAN and beta-VAE networks (jgen.nn.dcgan.layout builds on it), which accept only k >= 1."""
    side, k = size, 0
    while side % 2 == 0 and side // 2 >= 4:
        side, k = side // 2, k + 1
    return side, k


def _batch_split(c, devices):
    b, n = c.train.batch_size, c.train.grad_accum
    if devices > 0 and b % (devices * n):
        return (f"train.batch_size={b} must be divisible by the {devices} devices"
                + (f" times train.grad_accum={n}" if n > 1 else ""))
    if b % n:
        return f"train.batch_size={b} must be divisible by train.grad_accum={n}: a step is {n} equal micro-batches"


def _condition(c, devices):
    kind, size, scale = c.condition.kind, c.data.image_size, c.condition.scale
    if kind != "none" and c.family != "diffusion":
        return f"condition.kind='{kind}' needs the diffusion family; a {c.family} run takes condition.kind=none"
    if kind == "lowres" and size % scale:
        return (f"condition.scale={scale} must divide data.image_size={size}: the low-resolution input "
                "is image_size / scale px")


def _precision_recall(c, devices):
    if "pr" in _metric_names(c.eval.metrics) and c.eval.num <= 3:
        return f"eval.num={c.eval.num} is too few for eval.metrics 'pr': precision/recall (k=3) needs eval.num > 3"


def _betas(c, devices):
    d = c.diffusion
    if d.beta_start >= d.beta_end:
        return f"diffusion.beta_start={d.beta_start} must be below diffusion.beta_end={d.beta_end}"


def _process(c, devices):
    """The pairings a process cannot use: a prediction, a time sampling, a sampler or a grid
    (jgen.diffusion.process and samplers state why)."""
    d, s = c.diffusion, c.sample
    p = d.process
    if p == "edm" and d.sigma_min >= d.sigma_max:
        return f"diffusion.sigma_min={d.sigma_min} must be below diffusion.sigma_max={d.sigma_max}"
    if d.prediction == "F" and p != "edm":
        return f"diffusion.prediction=F (EDM's preconditioned output) needs diffusion.process=edm, not {p}"
    if d.prediction == "eps" and p == "flow":
        return ("diffusion.prediction=eps cannot serve diffusion.process=flow: x0 = (x - t eps) / (1 - t) is "
                "singular at t = 1, where sampling starts; use velocity, v or x0")
    if d.prediction == "velocity" and p == "discrete":
        return "diffusion.prediction=velocity needs a continuous process (diffusion.process=vp | edm | flow)"
    if p == "edm" and d.time_sampling != "lognormal":
        return (f"diffusion.time_sampling={d.time_sampling} cannot serve diffusion.process=edm: use lognormal "
                "(p_mean, p_std)")
    if p == "discrete" and d.time_sampling != "uniform":
        return (f"diffusion.time_sampling={d.time_sampling} needs a continuous process; process=discrete "
                "draws its levels uniformly")
    if p in ("vp", "flow") and d.time_sampling == "lognormal":
        return (f"diffusion.time_sampling=lognormal is EDM's sigma distribution (diffusion.process=edm); "
                f"diffusion.process={p} takes uniform | logit_normal")
    if p == "discrete" and s.sampler == "sde":
        return ("sample.sampler=sde needs a continuous process (diffusion.process=vp | edm | flow); the "
                "discrete process's stochastic sampler is ddpm")
    if p != "discrete" and s.sampler == "ddpm":
        return (f"sample.sampler=ddpm steps through DDPM's discrete levels; diffusion.process={p} samples "
                "with ddim | euler | heun | dpmpp2m | sde")
    if p == "discrete" and s.grid != "default":
        return f"sample.grid={s.grid} is for continuous processes; process=discrete chooses its levels per sampler"


def _dit(c, devices):
    m, size = c.model, c.data.image_size
    if m.arch == "dit" and size % m.patch_size:
        return f"model.patch_size={m.patch_size} must divide data.image_size={size}: DiT cuts the image into patches"
    if m.arch == "dit" and m.hidden % 4:
        return f"model.hidden={m.hidden} must be a multiple of 4: DiT's 2-D sin-cos position embedding splits it in four"
    if m.arch == "dit" and m.hidden % m.heads:
        return f"model.heads={m.heads} must divide model.hidden={m.hidden}: each head takes hidden / heads channels"


def _sample_steps(c, devices):
    if c.diffusion.process == "discrete" and c.sample.steps > c.diffusion.timesteps:
        return f"sample.steps={c.sample.steps} must be in [1, diffusion.timesteps={c.diffusion.timesteps}]"


def _unet_depth(c, devices):
    if c.model.arch != "unet":
        return None
    size, mult = c.data.image_size, tuple(c.model.ch_mult)
    d = len(mult) - 1
    if size % 2 ** d:
        return (f"data.image_size={size} must be divisible by 2^{d}={2 ** d}, the U-Net's {d} downsamplings "
                f"(model.ch_mult={mult} has {d + 1} levels): change data.image_size or use fewer levels in "
                "model.ch_mult")


def _num_groups(c, devices):
    m = c.model
    if m.arch != "unet":
        return None
    widths = [m.ch * k for k in m.ch_mult]
    if any(w % m.num_groups for w in widths):
        return (f"model.num_groups={m.num_groups} must divide every level's width model.ch * m = {widths} "
                f"(model.ch={m.ch}, model.ch_mult={tuple(m.ch_mult)})")


def _attention(c, devices):
    size, m = c.data.image_size, c.model
    if m.arch != "unet":
        return None
    sides = [size // 2 ** i for i in range(len(m.ch_mult))]
    never = [s for s in m.attn_resolutions if s not in sides]
    if never:
        return (f"model.attn_resolutions={tuple(m.attn_resolutions)} lists sides the U-Net never has "
                f"({never}): with data.image_size={size} and model.ch_mult={tuple(m.ch_mult)} they are {sides}")


def _gan_accum(c, devices):
    if c.train.grad_accum != 1:
        return (f"train.grad_accum={c.train.grad_accum}: train.grad_accum applies to the diffusion and VAE "
                "families: a GAN step alternates critic and generator updates with BatchNorm, which "
                "micro-batches would change (set train.grad_accum=1)")


def _n_critic(c, devices):
    if c.train.batch_size % c.gan.n_critic:
        return (f"train.batch_size ({c.train.batch_size}) must be a multiple of gan.n_critic "
                f"({c.gan.n_critic}): it counts the real images of all critic steps")


def _wgan_critic(c, devices):
    if c.gan.arch == "dcgan" and c.gan.loss == "wgan-gp" and c.model.disc_norm == "batch":
        return (f"gan.loss=wgan-gp needs a critic without BatchNorm (the penalty is per image): set "
                f"model.disc_norm=none (got model.disc_norm={c.model.disc_norm})")


def _dcgan_size(c, devices):
    size = c.data.image_size
    if c.gan.arch == "dcgan" and halvings(size)[1] < 1:
        return (f"data.image_size={size} does not fit the DCGAN networks: they need size = base * 2^k with "
                "base >= 4 and k >= 1, i.e. an even size >= 8 (e.g. 28, 32, 64)")


def _stylegan(c, devices):
    """StyleGAN2's side, its minibatch-std groups, and the options that need its networks."""
    size, g = c.data.image_size, c.gan
    if g.arch == "stylegan2":
        if size < 8 or size & (size - 1):
            return (f"data.image_size={size} does not fit StyleGAN2: it needs a power of two >= 8 (e.g. 32, 64, "
                    "256; the 28 px digits train at data.image_size=32)")
        per_step = c.train.batch_size // g.n_critic
        group = min(c.model.mbstd_group, per_step)
        if per_step % group:
            return (f"model.mbstd_group={c.model.mbstd_group} must divide the images of each critic step "
                    f"(train.batch_size / gan.n_critic = {per_step})")
        return None
    for key, value, plain in (("gan.pl_weight", g.pl_weight, 0.0), ("gan.style_mixing", g.style_mixing, 0.0),
                              ("sample.truncation", c.sample.truncation, 1.0)):
        if value != plain:
            return f"{key}={value} needs gan.arch=stylegan2 (a mapping network and w); this run is gan.arch=dcgan"
    if g.r1_gamma > 0 and c.model.disc_norm == "batch":
        return (f"gan.r1_gamma={g.r1_gamma} needs a discriminator without BatchNorm (the penalty is per image): "
                "set model.disc_norm=none, or gan.arch=stylegan2")


def _vae_size(c, devices):
    size = c.data.image_size
    if not 1 <= halvings(size)[1] <= 4:
        return (f"data.image_size={size} does not fit the beta-VAE networks: they need size = base * 2^k with "
                "base >= 4 as small as halving reaches and k in [1, 4] (e.g. 28, 32, 64, 96; not 128)")


def _autoencoder(c, devices):
    f, size = 2 ** (len(c.model.ch_mult) - 1), c.data.image_size
    if size % f:  # (then every side a stride-2 convolution meets is even, as diffusers' padding assumes)
        return (f"model.ch_mult={tuple(c.model.ch_mult)} downsamples by f={f}, which does not divide "
                f"data.image_size={size}")
    if c.train.grad_accum > 1:
        return f"train.grad_accum={c.train.grad_accum}: the autoencoder's two optimisers take whole batches (1)"
    groups = c.model.num_groups
    for w in sorted({c.model.ch * m for m in c.model.ch_mult}):
        if w % groups:
            return f"model.num_groups={groups} must divide every width ch * ch_mult (got {w})"
    p = c.ae.perceptual
    if p and not os.path.exists(os.path.join(p, "classifier.json")):
        return f"ae.perceptual={p} is not a `jgen train-classifier` directory (no classifier.json)"


def _latents(c, devices):
    """Images have 1 (grey) or 3 (RGB) channels; a latent run's data.channels are its latents' (jgen.latent)."""
    if not c.data.source.startswith("latents:"):
        if c.data.channels not in (1, 3):
            return f"data.channels={c.data.channels} must be one of 1 | 3 (images are converted to grey or RGB)"
    elif c.family != "diffusion":
        return f"data.source=latents: trains a diffusion or flow model, not the {c.family} family"


def _capacity_accum(c, devices):
    if c.train.grad_accum > 1 and c.vae.objective == "capacity":
        return (f"train.grad_accum > 1 needs vae.objective=beta: the capacity loss |KL - C| is not an average "
                f"over images, so micro-batches would change it (got train.grad_accum={c.train.grad_accum})")


CROSS_RULES = {  # functions (config, devices) -> a one-line message, or None when the config is fine
    "shared": [_batch_split, _condition, _precision_recall, _latents],
    "diffusion": [_betas, _process, _sample_steps, _unet_depth, _num_groups, _attention, _dit],
    "gan": [_gan_accum, _n_critic, _wgan_critic, _dcgan_size, _stylegan],
    "vae": [_capacity_accum, _vae_size],
    "autoencoder": [_autoencoder],
}


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'train.steps': 2000, ...} of a nested dict (a config's to_dict())."""
    out = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check(config: ml_collections.ConfigDict, devices: int = 0, num_classes: int = -1) -> None:
    """Raises a one-line JgenError naming the key, the bad value and what is allowed, or returns None.

    Checks that the config has exactly the keys of its family's base config, each key's value
    (SHARED_RULES, FAMILY_RULES) and the rules that join keys (CROSS_RULES). devices > 0 also checks
    that train.batch_size splits over that many devices; num_classes >= 0 (the labelled classes of
    the opened data source) that a class condition has as many classes as the data.
    """
    family = config.get("family")
    if family not in base.FAMILIES:
        raise JgenError(f"family={_show(family)} must be one of {' | '.join(base.FAMILIES)}")
    flat = flatten(config.to_dict())
    known = flatten(base.get_config(family).to_dict())
    unknown, missing = sorted(set(flat) - set(known)), sorted(set(known) - set(flat))
    if unknown:
        raise JgenError(f"unknown config key '{unknown[0]}' for the {family} family (its keys are in "
                        "jgen/configs/base.py)")
    if missing:
        raise JgenError(f"config key '{missing[0]}' is missing: a {family} config needs every key of "
                        f"jgen.configs.base.get_config('{family}')")
    for key, rule in {**SHARED_RULES, **FAMILY_RULES[family]}.items():
        if not rule.ok(flat[key]):
            raise JgenError(f"{key}={_show(flat[key])} must be {rule.allowed}")
    for rule in CROSS_RULES["shared"] + CROSS_RULES[family]:
        message = rule(config, devices)
        if message:
            raise JgenError(message)
    c = config.condition
    if num_classes >= 0 and c.kind == "class" and c.num_classes != num_classes:
        raise JgenError(f"condition.num_classes is {c.num_classes} but {config.data.source} has "
                        f"{num_classes or 'no'} labelled classes")


BF16_MIN_COMPUTE_CAPABILITY = 8.0  # NVIDIA Ampere: the first GPUs whose tensor cores take bfloat16


def check_hardware(config: ml_collections.ConfigDict, devices) -> None:
    """Raises a one-line JgenError when `devices` (jax.Device-likes) cannot run the config's precision:
    train.compute_dtype=bfloat16 on an NVIDIA GPU older than Ampere (compute capability < 8.0), where
    cuDNN has no bf16 convolutions and XLA would emulate them slowly, if at all. CPUs and TPUs take bf16."""
    if config.train.compute_dtype != "bfloat16":
        return
    for d in devices:
        capability = getattr(d, "compute_capability", None)
        if d.platform == "gpu" and capability and float(capability) < BF16_MIN_COMPUTE_CAPABILITY:
            raise JgenError(f"train.compute_dtype=bfloat16 needs a GPU of compute capability "
                            f"{BF16_MIN_COMPUTE_CAPABILITY} or newer (Ampere+); {d.device_kind} has {capability}: "
                            "use train.compute_dtype=float32")
