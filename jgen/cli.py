"""`jgen train | sample | interpolate | reconstruct | traverse | eval | train-classifier | convert-inception`:
parse, load the config, dispatch. Errors a user can cause print one line, exit 2."""

import argparse
import logging
import os
import sys
from functools import partial

from jgen.errors import JgenError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout, where configs/ lives

_OVERRIDES_HELP = """\
Config overrides: any key of the config, dotted, as --set KEY=VALUE (repeatable) or --config.KEY=VALUE,
for example --set train.steps=200 --config.optim.lr=1e-3 --set model.ch_mult="(1,2)".
Unknown keys and values of the wrong type are rejected with the key's name.
Sections: data (source, image_size, channels, crop, random_flip), model, optim, train (steps,
batch_size, log_every, sample_every, ckpt_every, keep_checkpoints, compute_dtype, grad_accum,
max_nonfinite), sample (num, ...), eval (every, num, metrics, extractor), and the
family's own: diffusion (timesteps, schedule, prediction) or gan (loss, n_critic, gp_weight).
Every key with its value is in the config file itself, e.g. configs/ddpm_mnist5k.py or
configs/dcgan_mnist5k.py."""


_INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                  "pt_inception-2015-12-05-6726825d.pth")
_EVAL_HELP = """\
Offline (no Inception weights), e.g. on the default digits:
  jgen train-classifier --data builtin:mnist5k:train --image-size 28 --channels 1
  jgen eval --workdir runs/ddpm_mnist5k --num 4500 --extractor classifier
With Inception weights:
  jgen convert-inception pt_inception-2015-12-05-6726825d.pth
  jgen eval --workdir runs/ddpm_cifar10 --num 50000 --metrics fid,is"""


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


def _weights_args(p) -> None:
    p.add_argument("--weights", metavar="PATH", help="instead of --workdir: pretrained DDPM weights in diffusers' "
                   "UNet2DModel layout (a model directory with config.json, or a .safetensors/.bin file), "
                   "e.g. google/ddpm-cifar10-32; outputs go to runs/pretrained-<name>/")
    p.add_argument("--config", default=os.path.join(_ROOT, "configs", "ddpm_cifar10.py"), metavar="FILE",
                   help="with --weights: the diffusion config for schedule, sampler and data (default "
                   "configs/ddpm_cifar10.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --weights: override a key of --config (e.g. sample.sampler=ddpm, data.data_dir=DIR)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jgen", description="Train and sample deep image generators (JAX/Flax).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a config file (resumes if WORKDIR has checkpoints)",
                       description="Train a model from a config file. Writes WORKDIR/checkpoints (Orbax), "
                       "metrics.jsonl, tb/ (TensorBoard), samples/step_*.png and samples/final.png. "
                       "Re-running the same command resumes from the latest checkpoint; Ctrl-C or SIGTERM "
                       "saves a checkpoint and exits.", epilog=_OVERRIDES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", required=True, metavar="FILE", help="config file, e.g. configs/ddpm_mnist5k.py")
    t.add_argument("--workdir", metavar="DIR", help="run directory (default: runs/<config name>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    d = t.add_argument_group("multi-process (several hosts, or several processes on one)")
    d.add_argument("--distributed", action="store_true", help="join a multi-process run that JAX detects "
                   "(TPU pod slices, SLURM, Open MPI); no address needed")
    d.add_argument("--coordinator", default="", metavar="HOST:PORT", help="address of process 0 "
                   "(or $JAX_COORDINATOR_ADDRESS); with --num-processes and --process-id")
    d.add_argument("--num-processes", type=int, default=0, metavar="N", help="(or $JGEN_NUM_PROCESSES)")
    d.add_argument("--process-id", type=int, default=-1, metavar="I", help="0..N-1 (or $JGEN_PROCESS_ID)")

    s = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid and an .npz",
                       description="Sample from the latest checkpoint of WORKDIR (EMA weights by default). "
                       "Writes a PNG grid to --out and the uint8 images [N, H, W, C] to the same path with .npz.")
    s.add_argument("--workdir", metavar="DIR", help="a directory written by `jgen train`")
    _weights_args(s)
    s.add_argument("--sampler", choices=["ddim", "ddpm"], help="diffusion: DDIM (few steps) or DDPM (all T steps)")
    s.add_argument("--steps", type=int, help="diffusion: DDIM steps (model calls); default from the run's config")
    s.add_argument("--eta", type=float, help="diffusion: DDIM noise, 0 deterministic, 1 DDPM-like")
    s.add_argument("--variance", choices=["small", "large"], help="diffusion: DDPM variance, posterior or beta_t")
    s.add_argument("--num", type=int, default=64, help="number of images (default 64)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    s.add_argument("--out", default=None, metavar="PNG", help="output grid (default WORKDIR/samples/sample.png)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")

    i = sub.add_parser("interpolate", help="a grid of spherical interpolations between random latents",
                       description="Each row walks from one random latent to another along the great circle "
                       "(slerp) and decodes every point: the generator for GANs, deterministic DDIM (eta 0) "
                       "from the noise for diffusion. Writes a PNG grid of ROWS x COLS images.")
    i.add_argument("--workdir", required=True, metavar="DIR", help="a directory written by `jgen train`")
    i.add_argument("--rows", type=int, default=8, help="number of interpolations (default 8)")
    i.add_argument("--cols", type=int, default=10, help="points per interpolation, ends included (default 10)")
    i.add_argument("--seed", type=int, default=0, help="seed of the end points (default 0)")
    i.add_argument("--out", default=None, metavar="PNG", help="output grid (default WORKDIR/samples/interpolate.png)")
    i.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")

    def data_args(q, num):
        q.add_argument("--workdir", required=True, metavar="DIR", help="a VAE run directory written by `jgen train`")
        q.add_argument("--split", default=None, help="split of the run's data source, e.g. test (default: the run's)")
        q.add_argument("--num", type=int, default=num, help=f"images taken from the start of the split (default {num})")
        q.add_argument("--seed", type=int, default=0, help="seed of the posterior sample (default 0)")
        q.add_argument("--out", default=None, metavar="PNG", help="output grid (default WORKDIR/samples/<command>.png)")

    r = sub.add_parser("reconstruct", help="VAE: dataset images beside their reconstructions, and the ELBO",
                       description="Encodes the first NUM images of the split, decodes the posterior means and "
                       "writes pairs (image, reconstruction) as a grid. Prints the ELBO of those images in nats "
                       "per image and bits per dimension (one posterior sample per image).")
    data_args(r, 32)
    v = sub.add_parser("traverse", help="VAE: one row per latent, swept from -R to R around an encoded image",
                       description="Encodes image INDEX of the split; row i sets latent i to COLS values from -R to "
                       "R and keeps the others at the posterior mean. Rows are ordered by their KL over the "
                       "first NUM images (most informative first), which the command prints.")
    data_args(v, 256)
    v.add_argument("--index", type=int, default=0, help="which image to encode (default 0)")
    v.add_argument("--range", type=float, default=3.0, help="sweep from -R to R (default 3)")
    v.add_argument("--cols", type=int, default=9, help="points per row (default 9)")

    e = sub.add_parser("eval", help="FID, KID, Inception Score, precision/recall of a run's samples",
                       description="Samples NUM images from the latest checkpoint, embeds them and up to NUM images "
                       "of the reference split with one extractor, and writes a JSON report (default "
                       "WORKDIR/eval/step_XXXXXXX.json). Generated images are rounded to uint8, as a PNG holds them, "
                       "before the extractor sees them. --extractor inception uses the FID Inception-v3 (weights "
                       "from `jgen convert-inception`); --extractor classifier uses a classifier from `jgen "
                       "train-classifier`, and its numbers are named *_classifier, never FID. Reference features "
                       "are cached in ~/.cache/jgen/reference.", epilog=_EVAL_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--workdir", metavar="DIR", help="a directory written by `jgen train`")
    _weights_args(e)
    e.add_argument("--num", type=int, default=10000, help="generated images (default 10000; the reference "
                   "set is the first NUM of the split, or all of it if smaller)")
    e.add_argument("--metrics", default="fid,kid,is,pr", help="comma list of fid,kid,is,pr (default all)")
    e.add_argument("--extractor", choices=["inception", "classifier"], default="inception",
                   help="feature extractor (default inception)")
    e.add_argument("--inception", default="", metavar="NPZ", help="converted Inception weights (default "
                   "$JGEN_INCEPTION or ~/.cache/jgen/inception-2015-12-05.npz)")
    e.add_argument("--classifier", default="", metavar="DIR", help="`jgen train-classifier` output (default "
                   "runs/classifier_<dataset>)")
    e.add_argument("--split", default="test", help="reference split of the run's builtin:/tfds: source (default "
                   "test); a folder source is its own reference")
    e.add_argument("--batch", type=int, default=250, help="images per sampling call (default 250)")
    e.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    e.add_argument("--out", default=None, metavar="JSON", help="report path")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    e.add_argument("--cache-dir", default="", metavar="DIR", help="reference-feature cache (default "
                   "~/.cache/jgen/reference)")
    e.add_argument("--real", default="", metavar="SPLIT", help="score the first NUM images of this split of the "
                   "run's dataset instead of samples: the floor the metric can reach (e.g. --real train)")

    c = sub.add_parser("train-classifier", help="train the offline feature extractor for `eval --extractor classifier`",
                       description="Trains a small CNN on the labels of a dataset and writes OUT/classifier.msgpack "
                       "and OUT/classifier.json (with its test accuracy). Its 128-d penultimate features stand in "
                       "for Inception's where those weights are absent or do not fit the data (28x28 digits).")
    c.add_argument("--data", default="builtin:mnist5k:train", help="labelled source (default builtin:mnist5k:train)")
    c.add_argument("--image-size", type=int, default=28, help="side the images are resized to (default 28); "
                   "must equal the generator's")
    c.add_argument("--channels", type=int, default=1, help="1 or 3 (default 1)")
    c.add_argument("--steps", type=int, default=1500, help="Adam steps (default 1500)")
    c.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    c.add_argument("--test-split", default="test", help="split the accuracy is measured on (default test)")
    c.add_argument("--data-dir", default="", help="TFDS data_dir (default TFDS's)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/classifier_<dataset>)")

    k = sub.add_parser("convert-inception", help="pytorch-fid's Inception .pth -> a torch-free .npz for `eval`",
                       description=f"Reads pytorch-fid's pt_inception-2015-12-05-6726825d.pth (download it on a "
                       f"connected machine from {_INCEPTION_URL}) with PyTorch and writes its arrays to an .npz "
                       "that `jgen eval` reads without PyTorch.")
    k.add_argument("src", metavar="PTH", help="pt_inception-2015-12-05-6726825d.pth")
    k.add_argument("dst", nargs="?", default="~/.cache/jgen/inception-2015-12-05.npz", metavar="NPZ",
                   help="output (default ~/.cache/jgen/inception-2015-12-05.npz, where `eval` looks)")
    return p


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
    from jgen.train.loop import train
    from jgen.train.parallel import initialize

    config = apply_overrides(load_config(args.config), args.set + overrides)
    workdir = args.workdir or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
    initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    _enable_compile_cache()
    train(config, workdir)


def _sample(args) -> None:
    import jax
    import numpy as np

    from jgen.config import apply_overrides
    from jgen.families import get_family
    from jgen.images import save_grid
    from jgen.train.loop import make_sampler

    if args.num < 1:
        raise JgenError(f"--num must be positive, got {args.num}")
    config, state, mesh = _open_run(args.workdir, args)
    given = [k for k in ("sampler", "steps", "eta", "variance") if getattr(args, k) is not None]
    if given and config.family != "diffusion":
        raise JgenError(f"--{given[0]} applies to diffusion runs; {args.workdir} is a {config.family} run")
    overrides = [f"sample.{k}={getattr(args, k)}" for k in given]
    config = apply_overrides(config, overrides)
    sampler = make_sampler(config, get_family(config.family), args.num, mesh, ema=not args.no_ema)
    images = sampler(state, jax.random.PRNGKey(args.seed))
    out = args.out or os.path.join(args.workdir, "samples", "sample.png")
    uint8 = save_grid(jax.device_get(images), out)
    np.savez_compressed(os.path.splitext(out)[0] + ".npz", images=uint8)
    print(f"jgen: {args.num} samples from step {int(state.step)} -> {out} (+ .npz)")


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
    args = _parser().parse_args(rest)
    try:
        if args.command == "train":
            _train(args, overrides)
        elif overrides:
            raise JgenError(f"config overrides apply to `jgen train`; see `jgen {args.command} --help`")
        elif args.command == "sample":
            _sample(args)
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
