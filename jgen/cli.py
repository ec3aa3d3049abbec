"""`jgen train | sample | inpaint | superres | edit | export | interpolate | reconstruct | traverse | eval |
train-classifier | convert-inception`: parse, load the config, dispatch. Errors a user can cause print
one line, exit 2."""

import logging
import os
import sys
from functools import partial

from jgen.cli_args import build_parser
from jgen.errors import JgenError


class _OneLine(logging.Filter):
    """Library log records (Orbax's background writers) keep their message, lose the traceback wall;
    the failure itself reaches the user as jgen's one-line error."""

    def filter(self, record):
        if record.exc_info:
            record.msg = f"{record.getMessage().splitlines()[0]} ({record.exc_info[0].__name__})"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def _quiet_library_errors() -> None:
    import threading
    import warnings

    logging.getLogger("absl").addFilter(_OneLine())
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # echoes of Orbax's failures, one per write
    threading.excepthook = lambda a: print(f"jgen: background thread {a.thread.name if a.thread else ''}: "
                                           f"{a.exc_type.__name__}: {str(a.exc_value).splitlines()[0][:200]}",
                                           file=sys.stderr)
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited")
    # After a failed checkpoint write, tensorstore's completion callbacks keep reporting into Orbax's
    # closed event loop through sys.excepthook: one failure, dozens of identical tracebacks.
    default = sys.excepthook
    sys.excepthook = lambda t, v, tb: None if t is RuntimeError and "Event loop is closed" in str(v) \
        else default(t, v, tb)


def _enable_compile_cache() -> None:
    """Persist XLA executables between runs: a re-run or resume skips the 10 s+ compile."""
    import jax

    cache = os.environ.get("JGEN_COMPILE_CACHE", os.path.expanduser("~/.cache/jgen/xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)


def _open_run(workdir: str, args=None):
    """(config, state, mesh) of the latest checkpoint of a run, for the commands that read one, or of
    pretrained weights (`--weights`, sample and eval): then args.workdir becomes runs/<weights name>,
    where the outputs go by default."""
    from jgen.train.loop import restore_run
    from jgen.train.parallel import make_mesh

    weights = getattr(args, "weights", None)
    if bool(weights) == bool(workdir):
        raise JgenError("give either --workdir DIR (a `jgen train` run) or --weights PATH (pretrained)")
    _enable_compile_cache()
    mesh = make_mesh()
    if not weights:
        if getattr(args, "set", None):
            raise JgenError("--set applies with --weights; a run's own config is in WORKDIR/config.json")
        config, state = restore_run(workdir, mesh)
        return config, state, mesh
    from jgen.config import apply_overrides, load_config
    from jgen.diffusion.pretrained import load_weights

    config, state = load_weights(weights, apply_overrides(load_config(args.config), args.set), mesh)
    args.workdir = os.path.join("runs", "pretrained-" + os.path.splitext(os.path.basename(weights.rstrip("/")))[0])
    return config, state, mesh


def _train(args, overrides) -> None:
    from jgen.config import apply_overrides, load_config

    config = apply_overrides(load_config(args.config), args.set + overrides)
    # imported after the config is checked: TensorFlow's import alone takes ~5 s, a long wait for a typo
    from jgen.train.loop import train
    from jgen.train.parallel import initialize

    workdir = args.workdir or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
    initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    _enable_compile_cache()
    train(config, workdir)


def _sample(args) -> None:
    import jax
    import numpy as np

    from jgen.families import get_family
    from jgen.images import save_grid
    from jgen.train.loop import make_sampler

    if args.num < 1:
        raise JgenError(f"--num must be positive, got {args.num}")
    config, state, mesh = _open_run(args.workdir, args)
    config = _with_sampler_flags(config, args)
    kw = _class_args(config, args)
    if "labels" in kw:
        kw["labels"] = np.full(args.num, kw["labels"])
    sampler = make_sampler(config, get_family(config.family), args.num, mesh, ema=not args.no_ema, **kw)
    images = sampler(state, jax.random.PRNGKey(args.seed))
    out = args.out or os.path.join(args.workdir, "samples", "sample.png")
    uint8 = save_grid(jax.device_get(images), out)
    np.savez_compressed(os.path.splitext(out)[0] + ".npz", images=uint8)
    print(f"jgen: {args.num} samples from step {int(state.step)} -> {out} (+ .npz)")


def _class_args(config, args) -> dict:
    """--label / --guidance, checked against the run: {} or {'labels': int, 'guidance': float}."""
    from jgen.families import diffusion

    cond = config.family == "diffusion" and diffusion.conditioning(config)[0] == "class"
    if (args.label is not None or args.guidance is not None) and not cond:
        raise JgenError("--label and --guidance need a class-conditional run (condition.kind=class, e.g. "
                        "configs/ddpm_mnist5k_cfg.py)")
    if args.label is not None and not 0 <= args.label < config.condition.num_classes:
        raise JgenError(f"--label must be in [0, {config.condition.num_classes}), got {args.label}")
    kw = {} if args.label is None else {"labels": args.label}
    return kw if args.guidance is None else dict(kw, guidance=args.guidance)


def _with_sampler_flags(config, args):
    """The run's config with the sampler flags given (--sampler, --steps, --eta, --variance) applied."""
    from jgen.config import apply_overrides

    given = [k for k in ("sampler", "steps", "eta", "variance") if getattr(args, k, None) is not None]
    if given and config.family != "diffusion":
        raise JgenError(f"--{given[0]} applies to diffusion runs; {args.workdir} is a {config.family} run")
    return apply_overrides(config, [f"sample.{k}={getattr(args, k)}" for k in given])


def _diffusion_run(args):
    """(config, state) of a diffusion run for inpaint / superres / edit, with the sampler flags applied."""
    if args.num < 1:
        raise JgenError(f"--num must be positive, got {args.num}")
    config, state, _ = _open_run(args.workdir, args)
    if config.family != "diffusion":
        raise JgenError(f"`jgen {args.command}` needs a diffusion run; {args.workdir} is a {config.family} run")
    return _with_sampler_flags(config, args), state


def _guided(args) -> None:
    """inpaint, superres, edit: one input image, --num results (a grid when more than one)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jgen import apply
    from jgen.images import save_grid

    config, state = _diffusion_run(args)
    size, channels = config.data.image_size, config.data.channels
    kw = _class_args(config, args)
    labels = jnp.full((args.num,), kw["labels"]) if "labels" in kw else None
    key, ema = jax.random.PRNGKey(args.seed), not args.no_ema
    if args.command == "superres":
        if args.scale < 1 or size % args.scale:
            raise JgenError(f"--scale must divide the model's size {size}, got {args.scale}")
        low = np.repeat(apply.read_image(args.image, size // args.scale, channels, resize=False), args.num, 0)
        fn = jax.jit(lambda s, low, y, k: apply.superres(config, s, low, args.scale, k, y, kw.get("guidance"), ema))
        out = fn(state, low, labels, key)
    else:
        x = np.repeat(apply.read_image(args.image, size, channels), args.num, 0)
        if args.command == "inpaint":
            if bool(args.mask) == bool(args.mask_kind):
                raise JgenError("give either --mask PNG (white = fill) or --mask-kind box|half|strokes")
            keep = apply.read_mask(args.mask, size) if args.mask else apply.make_mask(args.mask_kind, size, args.seed)
            fn = jax.jit(lambda s, x, m, y, k: apply.inpaint(config, s, x, m, k, args.jump, args.resample, y,
                                                              kw.get("guidance"), ema))
            out = fn(state, x, np.repeat(keep, args.num, 0), labels, key)
        else:
            fn = jax.jit(lambda s, x, y, k: apply.edit(config, s, x, args.strength, k, y, kw.get("guidance"), ema))
            out = fn(state, x, labels, key)
    path = args.out or os.path.join(args.workdir, "samples", f"{args.command}.png")
    save_grid(jax.device_get(out), path, cols=1 if args.num == 1 else 0)
    print(f"jgen: {args.command} of {args.image}, {args.num} result(s) from step {int(state.step)} -> {path}")


def _export(args) -> None:
    from tqdm import tqdm

    from jgen import apply
    from jgen.families import get_family

    if args.num < 1 or args.batch < 1:
        raise JgenError(f"need --num >= 1 and --batch >= 1, got {args.num} and {args.batch}")
    config, state, _ = _open_run(args.workdir, args)
    with tqdm(total=args.num, desc="export", unit="img") as bar:
        apply.export(config, get_family(config.family), state, args.num, args.out, args.batch, args.seed,
                     args.label, not args.no_ema, progress=bar.update)
    print(f"jgen: {args.num} samples from step {int(state.step)} -> {args.out} (read back as folder:{args.out})")


def _interpolate(args) -> None:
    import jax

    from jgen.families import get_family
    from jgen.images import save_grid
    from jgen.interpolate import interpolation_latents

    if args.rows < 1 or args.cols < 2:
        raise JgenError(f"need --rows >= 1 and --cols >= 2, got {args.rows} and {args.cols}")
    config, state, _ = _open_run(args.workdir)
    family = get_family(config.family)
    z = interpolation_latents(jax.random.PRNGKey(args.seed), family.latent_shape(config), args.rows, args.cols)
    images = jax.jit(partial(family.decode, config, ema=not args.no_ema))(state, z)
    out = args.out or os.path.join(args.workdir, "samples", "interpolate.png")
    save_grid(jax.device_get(images), out, cols=args.cols)
    print(f"jgen: {args.rows} interpolations x {args.cols} points from step {int(state.step)} -> {out}")


def _vae_run(args):
    """(config, state, images [num, H, W, C]) of a VAE run and the first --num images of its data."""
    import jax

    from jgen.data.pipeline import first_images
    from jgen.data.sources import open_source, with_split

    if args.num < 1:
        raise JgenError(f"--num must be positive, got {args.num}")
    config, state, _ = _open_run(args.workdir)
    if config.family != "vae":
        raise JgenError(f"`jgen {args.command}` needs a VAE run; {args.workdir} is a {config.family} run")
    spec = with_split(config.data.source, args.split) if args.split else config.data.source
    images = first_images(open_source(spec, config.data.data_dir), config.data, args.num)
    return config, state, jax.device_put(images)


def _reconstruct(args) -> None:
    import jax
    import numpy as np

    from jgen.families import vae
    from jgen.images import save_grid

    config, state, x = _vae_run(args)
    mean, _ = jax.jit(partial(vae.encode, config))(state, x)
    recon = jax.jit(partial(vae.decode, config))(state, mean)
    pairs = np.stack([np.asarray(x), np.asarray(recon)], 1).reshape((-1,) + x.shape[1:])
    out = args.out or os.path.join(args.workdir, "samples", "reconstruct.png")
    save_grid(pairs, out, cols=16 if len(pairs) >= 16 else len(pairs))
    eps = jax.random.normal(jax.random.PRNGKey(args.seed), (x.shape[0], config.model.latent_dim))
    terms = jax.jit(partial(vae.elbo_terms, config))(state.ema_params, x, eps)
    m = vae.elbo_metrics(*terms, x[0].size)
    print(f"jgen: {len(x)} images of {config.data.source if not args.split else args.split}: ELBO "
          f"{float(m['elbo']):.2f} nats/image ({float(m['bits_per_dim']):.4f} bits/dim; reconstruction "
          f"{float(m['recon']):.2f}, KL {float(m['kl']):.2f}, {int(m['active_units'])} active units) -> {out}")


def _traverse(args) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jgen.families import vae
    from jgen.images import save_grid

    if args.cols < 2:
        raise JgenError(f"--cols must be at least 2, got {args.cols}")
    config, state, x = _vae_run(args)
    if not 0 <= args.index < len(x):
        raise JgenError(f"--index must be in [0, {len(x)}) (the first --num images), got {args.index}")
    mean, logvar = jax.jit(partial(vae.encode, config))(state, x)
    kl = np.asarray(jnp.mean(vae.kl_normal(mean, logvar), axis=0))
    order = np.argsort(-kl)
    values = jnp.linspace(-args.range, args.range, args.cols)
    z = jnp.tile(mean[args.index], (len(order), args.cols, 1))
    z = z.at[np.arange(len(order)), :, order].set(jnp.broadcast_to(values, (len(order), args.cols)))
    images = jax.jit(partial(vae.decode, config))(state, z.reshape(-1, z.shape[-1]))
    out = args.out or os.path.join(args.workdir, "samples", "traverse.png")
    save_grid(jax.device_get(images), out, cols=args.cols)
    rows = ", ".join(f"z{d} {kl[d]:.2f}" for d in order)
    print(f"jgen: traversal of image {args.index}, rows by KL (nats): {rows} -> {out}")


def _eval(args) -> None:
    from jgen.data.sources import with_split
    from jgen.eval import evaluate as E
    from jgen.families import get_family

    names = E.parse_metrics(args.metrics)
    if args.num < 2 or args.batch < 1:
        raise JgenError(f"need --num >= 2 and --batch >= 1, got {args.num} and {args.batch}")
    config, state, mesh = _open_run(args.workdir, args)
    spec = config.data.source
    extractor = E.make_extractor(args.extractor, config.data.image_size, config.data.channels, args.inception,
                                 args.classifier or E.default_classifier_dir(spec))
    real = with_split(spec, args.real) if args.real else ""
    report = E.evaluate(config, get_family(config.family), state, mesh, extractor, args.num, names,
                        E.reference_spec(spec, args.split), batch=args.batch, seed=args.seed, ema=not args.no_ema,
                        real_spec=real, cache_dir=args.cache_dir)
    name = f"step_{report['step']:07d}" if not args.real else f"real_{args.real}"
    out = args.out or os.path.join(args.workdir, "eval", name + ".json")
    E.save_report(report, out)
    print(f"jgen: {E.describe(report)} -> {out}")


def _train_classifier(args) -> None:
    from jgen.eval.classifier import train_classifier

    from jgen.eval.evaluate import default_classifier_dir

    out = args.out or default_classifier_dir(args.data)
    _enable_compile_cache()
    meta = train_classifier(args.data, out, args.image_size, args.channels, steps=args.steps,
                            batch_size=args.batch_size, seed=args.seed, data_dir=args.data_dir,
                            test_split=args.test_split)
    acc = meta.get("test_accuracy")
    where = f"test accuracy {acc:.4f} on {meta['num_test']} images of '{args.test_split}'" if acc is not None \
        else f"no test accuracy ({meta['test_note']})"
    print(f"jgen: classifier trained {args.steps} steps on {args.data}; {where} -> {out}")


def _convert_inception(args) -> None:
    from jgen.eval.inception import convert

    dst = os.path.expanduser(args.dst)
    count = convert(args.src, dst)
    print(f"jgen: {count:,} Inception weights -> {dst}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow only feeds data; keep its C++ logs quiet
    logging.getLogger("absl").setLevel(logging.ERROR)
    _quiet_library_errors()
    # --config.KEY=VALUE (or --config.KEY VALUE) are overrides; argparse only sees the rest.
    rest, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--config."):
            if "=" in a:
                overrides.append(a[len("--config."):])
            elif i + 1 < len(argv):
                overrides.append(f"{a[len('--config.'):]}={argv[i + 1]}")
                i += 1
            else:
                rest.append(a)
        else:
            rest.append(a)
        i += 1
    args = build_parser().parse_args(rest)
    try:
        if args.command == "train":
            _train(args, overrides)
        elif overrides:
            raise JgenError(f"config overrides apply to `jgen train`; see `jgen {args.command} --help`")
        elif args.command == "sample":
            _sample(args)
        elif args.command in ("inpaint", "superres", "edit"):
            _guided(args)
        elif args.command == "export":
            _export(args)
        elif args.command == "interpolate":
            _interpolate(args)
        elif args.command == "reconstruct":
            _reconstruct(args)
        elif args.command == "traverse":
            _traverse(args)
        elif args.command == "eval":
            _eval(args)
        elif args.command == "train-classifier":
            _train_classifier(args)
        elif args.command == "convert-inception":
            _convert_inception(args)
    except JgenError as e:
        print(f"jgen: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
