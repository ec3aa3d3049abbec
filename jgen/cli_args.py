"""The argument parser of the `jgen` command: every subcommand, its flags and help texts."""

import argparse

_OVERRIDES_HELP = """\
Config overrides: any key of the config, dotted, as --set KEY=VALUE (repeatable) or --config.KEY=VALUE,
for example --set train.steps=200 --config.optim.lr=1e-3 --set model.ch_mult="(1,2)".
Unknown keys and values of the wrong type are rejected with the key's name.
Sections: data (source, image_size, channels, crop, random_flip), model, optim, train (steps,
batch_size, log_every, sample_every, ckpt_every, keep_checkpoints, compute_dtype, grad_accum,
max_nonfinite), sample (num, ...), eval (every, num, metrics, extractor), and the
family's own: diffusion (timesteps, schedule, prediction) or gan (loss, n_critic, gp_weight), and
for conditional DDPMs condition (kind class: num_classes, drop; kind lowres: scale, drop).
Every key and its default is in jgen/configs/base.py; a recipe (jgen/configs/NAME.py, or the thin
configs/NAME.py of a checkout) changes a few of them. Values are checked before anything runs."""


_INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                  "pt_inception-2015-12-05-6726825d.pth")
_EVAL_HELP = """\
Offline (no Inception weights), e.g. on the default digits:
  jgen train-classifier --data builtin:mnist5k:train --image-size 28 --channels 1
  jgen eval --workdir runs/ddpm_mnist5k --num 4500 --extractor classifier
With Inception weights:
  jgen convert-inception pt_inception-2015-12-05-6726825d.pth
  jgen eval --workdir runs/ddpm_cifar10 --num 50000 --metrics fid,is"""


def _weights_args(p) -> None:
    p.add_argument("--weights", metavar="PATH", help="instead of --workdir: pretrained DDPM weights in diffusers' "
                   "UNet2DModel layout (a model directory with config.json, or a .safetensors/.bin file), "
                   "e.g. google/ddpm-cifar10-32; outputs go to runs/pretrained-<name>/")
    p.add_argument("--config", default="ddpm_cifar10", metavar="RECIPE|FILE",
                   help="with --weights: the diffusion config for schedule, sampler and data, a packaged recipe "
                   "name or a config file (default ddpm_cifar10)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --weights: override a key of --config (e.g. sample.sampler=ddpm, data.data_dir=DIR)")


def _class_flags(p) -> None:
    p.add_argument("--label", type=int, default=None, help="class-conditional runs: the class to draw (default: "
                   "sample cycles over the classes; inpaint/superres/edit use the unconditional model)")
    p.add_argument("--guidance", type=float, default=None, help="class-conditional runs: classifier-free guidance "
                   "scale, 0 unconditional, 1 conditional, >1 stronger (default: the run's sample.guidance)")


def split_overrides(argv):
    """(the arguments argparse parses, the overrides): --config.KEY=VALUE and --config.KEY VALUE are
    config overrides, like --set KEY=VALUE."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--config.") and ("=" in a or i + 1 < len(argv)):
            overrides.append(a[len("--config."):] if "=" in a else f"{a[len('--config.'):]}={argv[i + 1]}")
            i += 1 if "=" in a else 2
            continue
        rest.append(a)
        i += 1
    return rest, overrides


def _train_parser(sub) -> None:
    """jgen train and its multi-process flags."""
    t = sub.add_parser("train", help="train a model from a config file (resumes if WORKDIR has checkpoints)",
                       description="Train a model from a config file. Writes WORKDIR/checkpoints (Orbax), "
                       "metrics.jsonl, tb/ (TensorBoard), samples/step_*.png and samples/final.png. "
                       "Re-running the same command resumes from the latest checkpoint; Ctrl-C or SIGTERM "
                       "saves a checkpoint and exits.", epilog=_OVERRIDES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", required=True, metavar="RECIPE|FILE", help="a packaged recipe (ddpm_mnist5k, "
                   "dcgan_mnist5k, betavae_mnist5k, ddpm_cifar10, ...: see jgen/configs/) or a config file "
                   "whose get_config() returns an ml_collections.ConfigDict")
    t.add_argument("--workdir", metavar="DIR", help="run directory (default: runs/<config name>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    _distributed_args(t)


def _distributed_args(parser) -> None:
    """--distributed / --coordinator / --num-processes / --process-id: one process per host."""
    d = parser.add_argument_group("multi-process (several hosts, or several processes on one)")
    d.add_argument("--distributed", action="store_true", help="join a multi-process run that JAX detects "
                   "(TPU pod slices, SLURM, Open MPI); no address needed")
    d.add_argument("--coordinator", default="", metavar="HOST:PORT", help="address of process 0 "
                   "(or $JAX_COORDINATOR_ADDRESS); with --num-processes and --process-id")
    d.add_argument("--num-processes", type=int, default=0, metavar="N", help="(or $JGEN_NUM_PROCESSES)")
    d.add_argument("--process-id", type=int, default=-1, metavar="I", help="0..N-1 (or $JGEN_PROCESS_ID)")


def _sampler_args(parser) -> None:
    """--sampler / --steps / --eta: a diffusion run's sampler for this command (default: its config)."""
    parser.add_argument("--sampler", choices=["ddim", "ddpm", "euler", "heun", "dpmpp2m", "sde"],
                        help="diffusion: DDIM (few steps), DDPM (all T steps, discrete process), Euler (DDIM "
                        "with eta 0), Heun (EDM, 2nd order ODE, 2 steps - 1 model calls), DPM-Solver++(2M) (2nd "
                        "order, multistep) or SDE (Euler-Maruyama, SiT; continuous processes); default: the "
                        "run's config (sample.sampler)")
    parser.add_argument("--steps", type=int, help="diffusion: sampler steps; default from the run's config")
    parser.add_argument("--eta", type=float, help="diffusion: DDIM noise, 0 deterministic, 1 DDPM-like "
                        "(stochastic samplers suit guidance best)")


def _truncation_arg(parser) -> None:
    parser.add_argument("--truncation", type=float, metavar="PSI", help="StyleGAN2 runs: w pulled towards its "
                        "average, w_avg + PSI (w - w_avg), in [0, 1]; lower is cleaner and less varied (default: "
                        "the run's sample.truncation, 1 = none)")


def _sample_parser(sub) -> None:
    """jgen sample."""
    s = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid and an .npz",
                       description="Sample from the latest checkpoint of WORKDIR (EMA weights by default). "
                       "Writes a PNG grid to --out and the uint8 images [N, H, W, C] to the same path with .npz.")
    s.add_argument("--workdir", metavar="DIR", help="a directory written by `jgen train`")
    _weights_args(s)
    _sampler_args(s)
    s.add_argument("--variance", choices=["small", "large"], help="diffusion: DDPM variance, posterior or beta_t")
    s.add_argument("--num", type=int, default=64, help="number of images (default 64)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    s.add_argument("--out", default=None, metavar="PNG", help="output grid (default WORKDIR/samples/sample.png)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    _truncation_arg(s)
    _class_flags(s)


def _guided(sub, name, help_, description):
    q = sub.add_parser(name, help=help_, description=description)
    q.add_argument("--workdir", metavar="DIR", help="a diffusion run written by `jgen train`")
    _weights_args(q)
    q.add_argument("--image", required=True, metavar="PNG", help="input image (square; resized to the model's "
                   "size, except for superres)")
    q.add_argument("--num", type=int, default=1, help="results drawn for the one input (default 1; more "
                   "give a grid)")
    q.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    q.add_argument("--out", default=None, metavar="PNG", help=f"output (default WORKDIR/samples/{name}.png)")
    _sampler_args(q)
    q.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    _class_flags(q)
    return q


def _guided_parsers(sub) -> None:
    """jgen inpaint | superres | edit: one input image through a diffusion run."""
    q = _guided(sub, "inpaint", "fill the white part of a mask: RePaint with a diffusion run, projection with "
               "a StyleGAN2 run",
               "Diffusion runs: RePaint (Lugmayr et al. 2022): at every step the known pixels, noised to the current "
               "level, are pasted into the sample; every JUMP steps the sampler climbs JUMP steps back up and "
               "descends again, RESAMPLE times in all, which blends the filled region into the known one. "
               "Costs about RESAMPLE times a sample. StyleGAN2 runs: the latent whose image matches the known "
               "pixels (`jgen project` with the loss on them only, --steps, W+), the generator filling the rest; "
               "--num results start from different noise. Either way the known pixels of the output are exactly "
               "the input's.")
    q.add_argument("--mask", metavar="PNG", help="mask image, white = fill, black = keep")
    q.add_argument("--mask-kind", choices=["box", "half", "strokes"], help="a generated mask instead: centre box, "
                   "right half, or random strokes (seeded by --seed)")
    q.add_argument("--jump", type=int, default=10, help="RePaint jump length in sampler steps (default 10)")
    q.add_argument("--resample", type=int, default=5, help="times each stretch is walked (default 5; 1 = no "
                   "resampling)")
    q.add_argument("--steps-project", dest="project_steps", type=int, default=500, metavar="N",
                   help="StyleGAN2 runs: projection steps (default 500)")
    q = _guided(sub, "superres", "upsample a low-resolution image (SR3 run, or ILVR with an unconditional run)",
               "With a run trained on low-resolution inputs (condition.kind=lowres, e.g. configs/sr3_mnist5k.py) "
               "this is SR3 (Saharia et al. 2021). With an unconditional run it is ILVR (Choi et al. 2021): after "
               "every step the sample's SCALE x SCALE block means are replaced by the input's, noised to the "
               "current level, so the output box-downsampled by SCALE is the input.")
    q.add_argument("--scale", type=int, default=4, help="upsampling factor; the input must be (model size / "
                   "SCALE) pixels square (default 4)")
    q = _guided(sub, "edit", "SDEdit: turn a rough image or stroke painting into one of the training domain",
               "SDEdit (Meng et al. 2022): noise the input to STRENGTH (0: unchanged, 1: pure noise) and denoise "
               "with the run's sampler. Low strength keeps the layout and colours, high strength the rough idea.")
    q.add_argument("--strength", type=float, default=0.5, help="in [0, 1] (default 0.5)")


def _export_interpolate_parsers(sub) -> None:
    """jgen export and jgen interpolate."""
    x = sub.add_parser("export", help="write N samples as an image folder (synthetic data for augmentation)",
                       description="Samples NUM images into OUT as PNGs: OUT/<class>/NNNNNN.png for a "
                       "class-conditional run (classes in turn, or only --label), OUT/NNNNNN.png otherwise. "
                       "Train on them with data.source=folder:OUT, which labels subfolders by sorted name.")
    x.add_argument("--workdir", metavar="DIR", help="a directory written by `jgen train`")
    _weights_args(x)
    _sampler_args(x)
    x.add_argument("--num", type=int, required=True, help="number of images")
    x.add_argument("--out", required=True, metavar="DIR", help="output folder")
    x.add_argument("--batch", type=int, default=250, help="images per sampling call (default 250)")
    x.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    x.add_argument("--label", type=int, default=None, help="class-conditional runs: only this class")
    x.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    _truncation_arg(x)

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
    _truncation_arg(i)


def _project_parser(sub) -> None:
    """jgen project."""
    p = sub.add_parser("project", help="StyleGAN2: find the latent whose image matches a PNG (GAN inversion)",
                       description="Optimises w (or one w per layer with --w-plus) and the noise maps so the "
                       "generator's image matches --image: pixel error plus the distance of a local extractor's "
                       "features, with Karras et al.'s noise regularisation. Writes OUT/project.png (input, "
                       "projection), OUT/projected.npz (ws, noises) and, with --mix N, OUT/mix.png: N random "
                       "latents, the projection's coarse layers with their fine ones, and their coarse layers "
                       "with the projection's fine ones.")
    p.add_argument("--workdir", required=True, metavar="DIR", help="a StyleGAN2 run written by `jgen train`")
    p.add_argument("--image", required=True, metavar="PNG", help="the image, square, at the run's size")
    p.add_argument("--steps", dest="project_steps", type=int, default=500, help="Adam steps (default 500)")
    p.add_argument("--w-plus", action="store_true", help="one w per layer (W+): closer fits, less editable")
    p.add_argument("--features", choices=["classifier", "inception", "none"], default="classifier",
                   help="feature loss network (default classifier: `jgen train-classifier`'s, runs/classifier_NAME)")
    p.add_argument("--features-path", default="", metavar="DIR", help="its weights (default: the run's classifier "
                   "directory, or the Inception port's default path)")
    p.add_argument("--mix", type=int, default=0, metavar="N", help="also write a style-mixing grid with N latents")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise maps and perturbations (default 0)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default WORKDIR/samples/project)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")


def _data_args(q, num):
    q.add_argument("--workdir", required=True, metavar="DIR", help="a VAE run directory written by `jgen train`")
    q.add_argument("--split", default=None, help="split of the run's data source, e.g. test (default: the run's)")
    q.add_argument("--num", type=int, default=num, help=f"images taken from the start of the split (default {num})")
    q.add_argument("--seed", type=int, default=0, help="seed of the posterior sample (default 0)")
    q.add_argument("--out", default=None, metavar="PNG", help="output grid (default WORKDIR/samples/<command>.png)")


def _vae_parsers(sub) -> None:
    """jgen reconstruct and jgen traverse (VAE runs)."""
    r = sub.add_parser("reconstruct", help="VAE: dataset images beside their reconstructions, and the ELBO",
                       description="Encodes the first NUM images of the split, decodes the posterior means and "
                       "writes pairs (image, reconstruction) as a grid. Prints the ELBO of those images in nats "
                       "per image and bits per dimension (one posterior sample per image).")
    _data_args(r, 32)
    v = sub.add_parser("traverse", help="VAE: one row per latent, swept from -R to R around an encoded image",
                       description="Encodes image INDEX of the split; row i sets latent i to COLS values from -R to "
                       "R and keeps the others at the posterior mean. Rows are ordered by their KL over the "
                       "first NUM images (most informative first), which the command prints.")
    _data_args(v, 256)
    v.add_argument("--index", type=int, default=0, help="which image to encode (default 0)")
    v.add_argument("--range", type=float, default=3.0, help="sweep from -R to R (default 3)")
    v.add_argument("--cols", type=int, default=9, help="points per row (default 9)")


def _eval_parser(sub) -> None:
    """jgen eval."""
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
    _distributed_args(e)
    e.add_argument("--num", type=int, default=10000, help="generated images (default 10000; the reference "
                   "set is a seeded uniform NUM of the split, or all of it if smaller)")
    _sampler_args(e)
    e.add_argument("--metrics", default="fid,kid,is,pr,conf", help="comma list of fid,kid,is,pr,conf,nll (default "
                   "all but nll); conf: the share of images the extractor calls a class with p >= 0.9; nll "
                   "(diffusion): bits/dim of --num images of --split by the variational bound and by the "
                   "probability-flow ODE")
    e.add_argument("--variance", choices=["small", "large"], help="diffusion: the reverse variance, posterior or "
                   "beta_t, of the DDPM sampler and of nll's bound (beta_t gives the tighter bound)")
    e.add_argument("--nll-steps", type=int, default=100, help="nll: RK4 steps of the ODE, 4 model calls each "
                   "(default 100)")
    e.add_argument("--nll-exact", action="store_true", help="nll: the ODE's exact divergence instead of "
                   "Hutchinson's estimate (one model call per pixel: tiny images only)")
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
    e.add_argument("--real", default="", metavar="SPLIT", help="score a seeded uniform NUM images of this split of "
                   "the run's dataset instead of samples: the floor the metric can reach (e.g. --real train)")
    e.add_argument("--guidance", type=float, default=None, help="class-conditional runs: the classifier-free "
                   "guidance scale of the samples, 0 unconditional, 1 conditional, >1 stronger (default: the run's "
                   "sample.guidance; the report records it)")


def _tool_parsers(sub) -> None:
    """jgen train-classifier and jgen convert-inception."""
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


def _import_parser(sub) -> None:
    m = sub.add_parser("import-autoencoder", help="diffusers AutoencoderKL weights -> an autoencoder run directory",
                       description="Reads a diffusers AutoencoderKL directory (config.json and diffusion_pytorch_model"
                       ".safetensors or .bin; Stable Diffusion's VAE, say) and writes an autoencoder run into "
                       "--workdir (config.json and a checkpoint at step 0) that data.source=latents:WORKDIR, `jgen "
                       "eval` (PSNR, reconstruction FID) and `jgen sample` use like a trained one. --set sets its "
                       "data, e.g. --set data.source=folder:imgs --set data.image_size=256.")
    m.add_argument("--weights", required=True, metavar="DIR", help="the diffusers AutoencoderKL directory")
    m.add_argument("--workdir", required=True, help="the new run directory (must not hold a run)")
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="autoencoder config overrides (data.source, data.image_size, ...), repeatable")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jgen", description="Train and sample deep image generators (JAX/Flax).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _train_parser(sub)
    _sample_parser(sub)
    _guided_parsers(sub)
    _export_interpolate_parsers(sub)
    _project_parser(sub)
    _vae_parsers(sub)
    _eval_parser(sub)
    _tool_parsers(sub)
    _import_parser(sub)
    return p
