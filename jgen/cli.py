"""`jgen COMMAND`: parse, open the run, make one call, print. Model work lives in jgen.run and
jgen.applications; errors a user can cause print one line and exit 2."""

import dataclasses
import os
import sys

from jgen import files
from jgen.cli_args import build_parser, split_overrides
from jgen.errors import JgenError


def _config(spec: str, overrides):
    from jgen.config import apply_overrides, check, load_config

    config = apply_overrides(load_config(spec), overrides)
    # a latent diffusion run is checked at its latents' shape, which its autoencoder gives (jgen.latent.prepare)
    if not (config.data.source.startswith("latents:") and config.get("family") == "diffusion"):
        check(config)
    return config


def _open(args):
    """The run of --workdir or --weights (outputs then default to runs/pretrained-<name>), with the
    sampler flags given (--sampler, --steps, --eta, --variance) applied to its config."""
    from jgen.config import apply_overrides, check
    from jgen.host import enable_compile_cache
    from jgen.run import open_run

    weights = getattr(args, "weights", None)
    if getattr(args, "set", None) and not weights:
        raise JgenError("--set applies with --weights; a run's own config is in WORKDIR/config.json")
    enable_compile_cache()
    run = open_run(args.workdir, weights, _config(args.config, args.set) if weights else None)
    given = [k for k in ("sampler", "steps", "eta", "variance") if getattr(args, k, None) is not None]
    if getattr(args, "command", None) == "eval" and args.guidance is not None:  # sample and edit pass theirs in a Cond
        if run.config.condition.kind != "class":
            raise JgenError(f"--guidance needs a class-conditional run (condition.kind=class); {args.workdir} has "
                            f"condition.kind={run.config.condition.kind}")
        given.append("guidance")
    if given and run.config.family != "diffusion":
        raise JgenError(f"--{given[0]} applies to diffusion runs; {args.workdir} is a {run.config.family} run")
    psi = getattr(args, "truncation", None)
    if psi is not None:
        if run.config.family != "gan" or run.config.gan.arch != "stylegan2":
            raise JgenError(f"--truncation needs a StyleGAN2 run (a mapping network and its w average); "
                            f"{args.workdir} is a {run.config.family} run"
                            + (f" with gan.arch={run.config.gan.arch}" if run.config.family == "gan" else ""))
        if not 0.0 <= psi <= 1.0:
            raise JgenError(f"--truncation must be in [0, 1], got {psi}")
        given.append("truncation")
    if given:
        run = dataclasses.replace(run, config=apply_overrides(run.config, [f"sample.{k}={getattr(args, k)}"
                                                                           for k in given]))
        check(run.config)
    args.workdir = run.workdir
    return run


def _out(args, name: str) -> str:
    return args.out or os.path.join(args.workdir, "samples", name)


def _positive(**values) -> None:
    for name, (value, least) in values.items():
        if value < least:
            raise JgenError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")


def _train(args, overrides) -> None:
    config = _config(args.config, args.set + overrides)
    # imported after the config is checked: TensorFlow's import alone takes ~5 s, a long wait for a typo
    from jgen import host, run
    from jgen.sharding import initialize

    workdir = args.workdir or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
    initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    host.enable_compile_cache()
    run.train(config, workdir)


def _sample(args) -> None:
    import io

    import jax
    import numpy as np

    from jgen import files
    from jgen.applications import class_cond
    from jgen.families.base import Cond
    from jgen.images import save_grid

    _positive(num=(args.num, 1))
    run = _open(args)
    images = run.sampler(args.num, not args.no_ema)(jax.random.PRNGKey(args.seed),
                                                    Cond(**class_cond(run, args.num, args.label, args.guidance)))
    uint8 = save_grid(jax.device_get(images), _out(args, "sample.png"))
    buf = io.BytesIO()
    np.savez_compressed(buf, images=uint8)
    files.write_bytes(os.path.splitext(_out(args, "sample.png"))[0] + ".npz", buf.getvalue())
    print(f"jgen: {args.num} samples from step {int(run.state.step)} -> {_out(args, 'sample.png')} (+ .npz)")


def _guided(args) -> None:
    """inpaint, superres, edit: one input image, --num results (a grid when more than one)."""
    import jax
    import numpy as np

    from jgen import applications as A
    from jgen.images import read_image, read_mask, save_grid

    _positive(num=(args.num, 1))
    run = _open(args)
    A.require_pixels(run, args.command)
    size, channels, n = run.config.data.image_size, run.config.data.channels, args.num
    key, kw = jax.random.PRNGKey(args.seed), dict(label=args.label, guidance=args.guidance, ema=not args.no_ema)
    if args.command == "superres":
        if args.scale < 1 or size % args.scale:
            raise JgenError(f"--scale must divide the model's size {size}, got {args.scale}")
        low = np.repeat(read_image(args.image, size // args.scale, channels, resize=False), n, 0)
        out = A.superres(run, low, args.scale, key, **kw)
    elif args.command == "inpaint":
        x = np.repeat(read_image(args.image, size, channels), n, 0)
        if bool(args.mask) == bool(args.mask_kind):
            raise JgenError("give either --mask PNG (white = fill) or --mask-kind box|half|strokes")
        keep = read_mask(args.mask, size) if args.mask else A.make_mask(args.mask_kind, size, args.seed)
        keep = np.repeat(keep, n, 0)
        if run.config.family == "gan":
            _positive(steps_project=(args.project_steps, 1))
            _, _, gen = A.project(run, x, keep, key, args.project_steps, w_plus=True, ema=not args.no_ema)
            out = keep * x + (1 - keep) * np.asarray(gen)
        else:
            out = A.inpaint(run, x, keep, key, args.jump, args.resample, **kw)
    else:
        out = A.edit(run, np.repeat(read_image(args.image, size, channels), n, 0), args.strength, key, **kw)
    save_grid(jax.device_get(out), _out(args, f"{args.command}.png"), cols=1 if n == 1 else 0)
    print(f"jgen: {args.command} of {args.image}, {n} result(s) from step {int(run.state.step)} -> "
          f"{_out(args, args.command + '.png')}")


def _export(args) -> None:
    from tqdm import tqdm

    from jgen.applications import export

    _positive(num=(args.num, 1), batch=(args.batch, 1))
    run = _open(args)
    with tqdm(total=args.num, desc="export", unit="img") as bar:
        export(run, args.num, args.out, args.batch, args.seed, args.label, not args.no_ema, progress=bar.update)
    print(f"jgen: {args.num} samples from step {int(run.state.step)} -> {args.out} (read back as folder:{args.out})")


def _interpolate(args) -> None:
    import jax

    from jgen.applications import interpolate
    from jgen.images import save_grid

    _positive(rows=(args.rows, 1), cols=(args.cols, 2))
    run = _open(args)
    save_grid(jax.device_get(interpolate(run, args.rows, args.cols, args.seed, not args.no_ema)),
              _out(args, "interpolate.png"), cols=args.cols)
    print(f"jgen: {args.rows} interpolations x {args.cols} points from step {int(run.state.step)} -> "
          f"{_out(args, 'interpolate.png')}")


def _project(args) -> None:
    import io

    import jax
    import numpy as np

    from jgen import applications as A
    from jgen import files
    from jgen.images import read_image, save_grid

    _positive(steps=(args.project_steps, 1), mix=(args.mix, 0))
    run = _open(args)
    A.require_stylegan(run, "project")
    c = run.config.data
    x = read_image(args.image, c.image_size, c.channels, resize=False)
    out = args.out or os.path.join(args.workdir, "samples", "project")
    ws, noises, gen = A.project(run, x, np.ones(x.shape[:3] + (1,), np.float32), jax.random.PRNGKey(args.seed),
                                args.project_steps, args.w_plus, args.features, args.features_path, not args.no_ema)
    mse = float(np.mean(np.square(np.asarray(gen) - x)))
    save_grid(np.concatenate([x, np.asarray(gen)]), os.path.join(out, "project.png"), cols=2)
    buf = io.BytesIO()
    np.savez(buf, ws=np.asarray(ws), **{f"noise{i}": np.asarray(n) for i, n in enumerate(noises)})
    files.write_bytes(os.path.join(out, "projected.npz"), buf.getvalue())
    if args.mix:
        save_grid(jax.device_get(A.style_mix(run, ws, noises, args.mix, args.seed, not args.no_ema)),
                  os.path.join(out, "mix.png"), cols=args.mix)
    print(f"jgen: projected {args.image} onto {'W+' if args.w_plus else 'W'} of step {int(run.state.step)} in "
          f"{args.project_steps} steps, PSNR {10 * np.log10(4.0 / max(mse, 1e-12)):.1f} dB -> {out}/project.png, "
          f"projected.npz{', mix.png' if args.mix else ''}")


def _vae_command(args) -> None:
    """reconstruct and traverse: the first --num images of the run's data (or --split of it)."""
    import jax

    from jgen import applications as A
    from jgen.images import save_grid

    _positive(num=(args.num, 1), **({"cols": (args.cols, 2)} if args.command == "traverse" else {}))
    run = _open(args)
    A.require_family(run, "vae", args.command)
    x, out = A.dataset_images(run, args.split, args.num), _out(args, f"{args.command}.png")
    if args.command == "reconstruct":
        pairs, m = A.reconstruct(run, x, args.seed)
        save_grid(pairs, out, cols=min(16, len(pairs)))
        print(f"jgen: {len(x)} images of {args.split or run.config.data.source}: ELBO {m['elbo']:.2f} nats/image "
              f"({m['bits_per_dim']:.4f} bits/dim; reconstruction {m['recon']:.2f}, KL {m['kl']:.2f}, "
              f"{int(m['active_units'])} active units) -> {out}")
        return
    images, kl, order = A.traverse(run, x, args.index, args.cols, args.range)
    save_grid(jax.device_get(images), out, cols=args.cols)
    print(f"jgen: traversal of image {args.index}, rows by KL (nats): "
          f"{', '.join(f'z{d} {kl[d]:.2f}' for d in order)} -> {out}")


def _eval(args) -> None:
    from functools import partial

    import jax

    from jgen.data.sources import with_split
    from jgen.eval import evaluate as E
    from jgen.sharding import initialize

    names = E.parse_metrics(args.metrics, E.METRICS + ("nll",))
    _positive(num=(args.num, 2), batch=(args.batch, 1), nll_steps=(args.nll_steps, 1))
    initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    run = _open(args)
    if "nll" in names and run.config.family != "diffusion":
        raise JgenError(f"--metrics nll is a diffusion model's likelihood; this is a {run.config.family} run")
    if "nll" in names and run.ae is not None:
        raise JgenError("--metrics nll would be the likelihood of the autoencoder's latents, not of images: "
                        "this run trains on data.source=latents:")
    img = run.image_config  # a latent run's samples are decoded: compared with the autoencoder's images
    spec, ref_spec = img.data.source, E.reference_spec(img.data.source, args.split)
    report = dict(step=int(run.state.step), ema=not args.no_ema)
    if set(names) - {"nll"}:
        extractor = E.make_extractor(args.extractor, img.data.image_size, img.data.channels,
                                     args.inception, args.classifier or E.default_classifier_dir(spec))
        report = E.evaluate(img, lambda n: run.sampler(n, not args.no_ema), run.mesh, extractor, args.num,
                            names, ref_spec, batch=args.batch, seed=args.seed, cache_dir=args.cache_dir,
                            real_spec=with_split(spec, args.real) if args.real else "", step=report["step"],
                            ema=not args.no_ema, reconstruct=None if args.real else run.reconstruct(not args.no_ema))
    if run.config.condition.kind == "class" and not args.real:
        report["guidance"] = run.config.sample.guidance
    if "nll" in names:
        fns = {m: partial(run.jit(f"nll/{m}", partial(run.family.nll, run.config, method=m, steps=args.nll_steps,
                                                       exact=args.nll_exact)), run.variables(not args.no_ema))
               for m in (("vlb", "ode") if run.config.diffusion.process == "discrete" else ("ode",))}
        nll = E.likelihood_report(run.config, fns, run.mesh, ref_spec, args.num, args.batch, args.seed)
        report.setdefault("seconds", {}).update(nll.pop("seconds"))
        report.update(nll)
    out = args.out or os.path.join(args.workdir, "eval", (f"real_{args.real}" if args.real else
                                                          f"step_{report['step']:07d}") + ".json")
    if jax.process_index() == 0:  # every process computed the same report; one writes it
        E.save_report(report, out)
        print(f"jgen: {E.describe(report)} -> {out}")


def _train_classifier(args) -> None:
    from jgen.eval.classifier import train_classifier
    from jgen.eval.evaluate import default_classifier_dir
    from jgen.host import enable_compile_cache

    out = args.out or default_classifier_dir(args.data)
    enable_compile_cache()
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
    print(f"jgen: {convert(args.src, dst):,} Inception weights -> {dst}")


def _import_autoencoder(args) -> None:
    from jgen.latent import import_autoencoder

    path = import_autoencoder(os.path.expanduser(args.weights), args.workdir, args.overrides)
    print(f"jgen: imported {args.weights} -> {path} and a checkpoint at step 0 (use data.source=latents:{args.workdir})")


COMMANDS = {"sample": _sample, "inpaint": _guided, "superres": _guided, "edit": _guided, "export": _export,
            "interpolate": _interpolate, "project": _project, "reconstruct": _vae_command, "traverse": _vae_command,
            "eval": _eval,
            "train-classifier": _train_classifier, "convert-inception": _convert_inception,
            "import-autoencoder": _import_autoencoder}


def main(argv=None) -> int:
    from jgen import host

    host.quiet_library_errors()
    rest, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(rest)
    try:
        host.configure()  # CPU host tuning, before anything starts a JAX backend (after --help: it imports jax)
    except ValueError as e:  # a host variable jgen reads, misspelt
        host.error_line(f"error: {e}")
        return 2
    try:
        if getattr(args, "out", None):  # an output that cannot be written is found before any work
            files.check_output(args.out, "directory" if args.command in ("export", "project", "train-classifier")
                               else "file")
        if args.command == "train":
            _train(args, overrides)
        elif overrides:
            raise JgenError(f"config overrides apply to `jgen train`; see `jgen {args.command} --help`")
        else:
            COMMANDS[args.command](args)
    except JgenError as e:
        host.error_line(f"error: {e}")
        return 2
    except OSError as e:  # a file the command reads or writes: missing, the wrong kind, not permitted, full
        where = f": {e.filename}" if e.filename else ""
        host.error_line(f"error: {e.strerror or e}{where}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
