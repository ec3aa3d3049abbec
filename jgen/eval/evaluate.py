"""The evaluator: generate N images, embed them and a reference set with one extractor, compute metrics.

Both sets go through the same uint8 quantisation (what a PNG holds) before the extractor, which runs
jitted with the batch split over the mesh's data axis. Reference features are cached on disk under a
key of dataset, split, resolution, extractor weights and count, so the data pass is paid once.
`jgen eval` and the trainer's `eval.every` both call `evaluate` with a `sample_fn` (jgen.run's
sampler): the evaluator never knows which family or trainer made the images.
"""

import dataclasses
import hashlib
import io
import json
import os
import re
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm import tqdm

from jgen import files
from jgen.config import METRICS
from jgen.errors import JgenError
from jgen.eval import metrics as M
from jgen.images import from_uint8, to_uint8
from jgen.sharding import any_process, batch_sharding, gather, replicated

DEFAULT_CACHE = os.path.expanduser("~/.cache/jgen/reference")


@dataclasses.dataclass(frozen=True)
class Extractor:
    """A feature extractor the evaluator runs on uint8-quantised images, with what names its numbers and caches."""
    name: str  # 'inception' | 'classifier': the suffix of every number it produces (none for inception)
    ident: str  # names the weights in cache keys and reports
    apply: Callable  # (params, images [N, S, S, C] in [-1, 1]) -> {'features': [N, D], 'logits': [N, K]}
    params: Any
    batch: int  # images per device call


def inception_extractor(path: str = "", batch: int = 50) -> Extractor:
    """The FID Inception-v3 (pytorch-fid's and TF-GAN's 2015-12-05 graph) from its weights at `path`:
    2048-d pool features and 1008 logits (jgen.eval.inception); `path` as inception.load_params takes it."""
    from jgen.eval import inception

    params = inception.load_params(path)
    digest = hashlib.sha1(np.asarray(params["fc"]["bias"]).tobytes()).hexdigest()[:8]
    return Extractor("inception", f"inception-2015-12-05-{digest}",
                     lambda p, x: inception.InceptionV3().apply({"params": p}, x), params, batch)


def classifier_extractor(path: str, image_size: int, channels: int, batch: int = 500) -> Extractor:
    """The classifier's penultimate features. A run of another side (StyleGAN2's 32 px on the 28 px
    digits) is resized to the classifier's side (bilinear, antialiased) before it, its real images too,
    so both pass the same resize; the floor to compare with is then measured on that run (--real)."""
    from jgen.eval.classifier import load_classifier

    model, params, meta = load_classifier(path)
    side = meta["image_size"]
    if meta["channels"] != channels:
        raise JgenError(f"the classifier in {path} takes {side}px/{meta['channels']}ch images, "
                        f"the run makes {image_size}px/{channels}ch: train one on this data")
    leaves = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(params)])
    digest = hashlib.sha1(leaves.tobytes()).hexdigest()[:8]

    def apply(p, x):
        if x.shape[1] != side:
            x = jax.image.resize(x, (x.shape[0], side, side, x.shape[3]), method="linear", antialias=True)
        return model.apply({"params": p}, x)

    return Extractor("classifier", f"classifier-{digest}", apply, params, batch)


def make_extractor(kind: str, image_size: int, channels: int, inception_path: str = "", classifier_path: str = ""):
    if kind == "inception":
        return inception_extractor(inception_path)
    if kind == "classifier":
        return classifier_extractor(classifier_path, image_size, channels)
    raise JgenError(f"unknown extractor '{kind}' (inception | classifier)")


def sharded_batches(images_uint8: np.ndarray, mesh, batch: int, desc: str):
    """(index of the first image, images [batch, S, S, C] in [-1, 1] sharded over `mesh`, how many are real):
    the last batch is zero-padded so every call has one compiled shape; `batch` is rounded to the devices."""
    n_dev = mesh.devices.size
    batch = max(n_dev, batch // n_dev * n_dev)
    for i in tqdm(range(0, len(images_uint8), batch), desc=desc, unit="batch", leave=False,
                  mininterval=1.0 if os.isatty(2) else 30.0):
        x = images_uint8[i:i + batch]
        real = len(x)
        if real < batch:
            x = np.concatenate([x, np.zeros((batch - real,) + x.shape[1:], x.dtype)])
        yield i, jax.device_put(from_uint8(x), batch_sharding(mesh)), real


def extract(extractor: Extractor, images_uint8: np.ndarray, mesh, desc: str = "features"):
    """uint8 [N, S, S, C] -> (features [N, D], logits [N, K]) float32 NumPy, batches sharded over `mesh`."""
    run = jax.jit(extractor.apply, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                  out_shardings=replicated(mesh))
    params = jax.device_put(extractor.params, replicated(mesh))
    features, logits = [], []
    for _, x, real in sharded_batches(images_uint8, mesh, extractor.batch, desc):
        out = run(params, x)
        features.append(np.asarray(out["features"])[:real])
        logits.append(np.asarray(out["logits"])[:real])
    return np.concatenate(features), np.concatenate(logits)


def generate(sampler, num: int, batch: int, seed: int = 0) -> np.ndarray:
    """`num` samples as uint8 [num, S, S, C], drawn min(batch, num) at a time: sampler(n) -> sample_fn,
    sample_fn(key) -> n images in [-1, 1], called with keys fold_in(seed, i)."""
    batch = min(batch, num)
    sample_fn, key = sampler(batch), jax.random.PRNGKey(seed)
    out = []
    for i in tqdm(range(-(-num // batch)), desc="sample", unit="batch", leave=False,
                  mininterval=1.0 if os.isatty(2) else 30.0):
        out.append(to_uint8(gather(sample_fn(jax.random.fold_in(key, i)))))
    return np.concatenate(out)[:num]


REFERENCE_SEED, REAL_SEED = 0, 1  # the uniform subsets of a split that references and --real samples are


def subset_images(data, spec: str, num: int, seed: int) -> np.ndarray:
    """uint8 images of a uniform subset of `num` records of `spec` (the whole split if smaller)."""
    from jgen.data.pipeline import images_at, uniform_subset
    from jgen.data.sources import open_source

    source = open_source(spec, data.data_dir)
    return to_uint8(images_at(source, data, uniform_subset(source, num, seed)))


def reference_features(data, spec: str, num: int, extractor: Extractor, mesh, cache_dir: str = ""):
    """(features, logits, count) of a uniform subset of `num` images of `spec` (seed REFERENCE_SEED; the
    whole split if smaller), cached."""
    cache_dir = cache_dir or DEFAULT_CACHE
    name = f"{spec}_{data.image_size}px{data.channels}c_crop{data.crop}_{extractor.ident}_{num}_uniform{REFERENCE_SEED}"
    path = os.path.join(cache_dir, re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".npz")
    # caches are per host: embed (a collective) unless every process has one; each writes its own
    if not any_process(not os.path.exists(path)):
        with np.load(path) as f:
            return f["features"], f["logits"], int(f["count"])
    images = subset_images(data, spec, num, REFERENCE_SEED)
    features, logits = extract(extractor, images, mesh, desc="reference features")
    buf = io.BytesIO()
    np.savez(buf, features=features, logits=logits, count=len(images))
    files.write_bytes(path, buf.getvalue())
    return features, logits, len(images)


def compute_metrics(real_features, fake_features, fake_logits, names, suffix: str = "") -> dict:
    """The requested metrics, keyed with the extractor's suffix ('' for Inception, '_classifier' otherwise)."""
    out = {}
    if "fid" in names:
        out["fid" + suffix] = M.fid_from_features(real_features, fake_features)
    if "kid" in names:
        out["kid" + suffix], out["kid_std" + suffix] = M.kid(real_features, fake_features)
    if "is" in names:
        out["is" + suffix], out["is_std" + suffix] = M.inception_score(fake_logits)
    if "pr" in names:
        out["precision" + suffix], out["recall" + suffix] = M.precision_recall(real_features, fake_features)
    if "conf" in names:
        out["confident" + suffix] = M.confident_fraction(fake_logits)
    return out


def parse_metrics(text: str, allowed=METRICS) -> tuple:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in allowed]
    if bad or not names:
        raise JgenError(f"unknown metric(s) {', '.join(bad) or '(none)'}; choose from {','.join(allowed)}")
    return names


def default_classifier_dir(spec: str) -> str:
    """Where `jgen train-classifier` puts, and `eval` looks for, the classifier of a source: runs/classifier_NAME."""
    kind, _, rest = spec.partition(":")
    name = os.path.basename(os.path.normpath(rest)) if kind == "folder" else rest.split(":")[0]
    return os.path.join("runs", "classifier_" + name.replace("/", "_"))


def reference_spec(spec: str, split: str) -> str:
    """The reference set of a run trained on `spec`: the same dataset's `split` (a folder is its own)."""
    from jgen.data.sources import with_split

    return spec if spec.startswith("folder:") else with_split(spec, split)


def reconstructions(reconstruct, images_uint8: np.ndarray, mesh, batch: int) -> np.ndarray:
    """uint8 [N, S, S, C] -> what `reconstruct` (images [B, S, S, C] in [-1, 1] -> the same) makes of them, uint8."""
    out = [to_uint8(gather(reconstruct(x)))[:real] for _, x, real in
           sharded_batches(images_uint8, mesh, min(batch, len(images_uint8)), "reconstruct")]
    return np.concatenate(out)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of 10 log10(255^2 / MSE) of two uint8 image sets, in float64 (dB)."""
    mse = np.mean(np.square(a.astype(np.float64) - b.astype(np.float64)), axis=tuple(range(1, a.ndim)))
    return float(np.mean(10.0 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


def evaluate(config, sampler, mesh, extractor: Extractor, num: int, names, ref_spec: str, batch: int = 250,
             seed: int = 0, cache_dir: str = "", real_spec: str = "", step: int = 0, ema: bool = True,
             reconstruct=None) -> dict:
    """One report: `num` images from `sampler` (see `generate`; jgen.run's Run.sampler) against up to
    `num` images of `ref_spec`, by `extractor`; `step` and `ema` only label the report.

    With `real_spec`, a uniform subset of `num` images of that dataset split (seed REAL_SEED) stands in
    for the samples: the score real data gets, which is the floor a generator can be compared against.
    With `reconstruct` (an autoencoder's, see `reconstructions`), the reference images themselves,
    reconstructed, stand in: reconstruction FID (rFID) and their PSNR against the originals.
    """
    real, _, ref_count = reference_features(config.data, ref_spec, num, extractor, mesh, cache_dir)
    t0 = time.time()
    extra = {}
    if reconstruct is not None:
        originals = subset_images(config.data, ref_spec, num, REFERENCE_SEED)
        images = reconstructions(reconstruct, originals, mesh, batch)
        extra = {"psnr": psnr_uint8(originals, images)}
    elif real_spec:
        images = subset_images(config.data, real_spec, num, REAL_SEED)
    else:
        images = generate(sampler, num, batch, seed)
    t1 = time.time()
    fake, logits = extract(extractor, images, mesh, desc="sample features")
    suffix = "" if extractor.name == "inception" else "_" + extractor.name
    report = dict(step=step, extractor=extractor.ident,
                  samples="reconstructed reference" if reconstruct else real_spec or "generated",
                  samples_subset=f"uniform without replacement, seed {REAL_SEED}" if real_spec else "",
                  num_generated=len(images), reference=ref_spec, num_reference=ref_count,
                  reference_subset=f"uniform without replacement, seed {REFERENCE_SEED}", ema=ema,
                  **compute_metrics(real, fake, logits, names, suffix), **extra)
    report["seconds"] = dict(sampling=round(t1 - t0, 1), features_and_metrics=round(time.time() - t1, 1))
    return report


def likelihood_report(config, nll_fns: dict, mesh, spec: str, num: int, batch: int = 250, seed: int = 0) -> dict:
    """Bits/dim of a uniform subset of `num` images of `spec` (seed REFERENCE_SEED, the reference set's
    draw) by each of nll_fns: {method: fn(images [B, H, W, C] in [-1, 1], key) -> bits/dim [B]}, the batch
    sharded over `mesh` and keys fold_in(seed, batch index). Reports the mean and its standard error."""
    images = subset_images(config.data, spec, num, REFERENCE_SEED)
    report = dict(nll_images=spec, num_nll=len(images), nll_subset=f"uniform without replacement, seed "
                  f"{REFERENCE_SEED}")
    for method, fn in nll_fns.items():
        t0, bits = time.time(), []
        for i, x, real in sharded_batches(images, mesh, min(batch, len(images)), f"nll ({method})"):
            bits.append(np.asarray(gather(fn(x, jax.random.fold_in(jax.random.PRNGKey(seed), i))), np.float64)[:real])
        bits = np.concatenate(bits)
        report[f"nll_{method}_bpd"] = float(bits.mean())
        report[f"nll_{method}_bpd_sem"] = float(bits.std(ddof=1) / np.sqrt(len(bits))) if len(bits) > 1 else 0.0
        report.setdefault("seconds", {})[f"nll_{method}"] = round(time.time() - t0, 1)
    return report


def save_report(report: dict, path: str) -> None:
    files.write_text(path, json.dumps(report, indent=1))


def describe(report: dict) -> str:
    """One line for the terminal; classifier-feature numbers are labelled as such."""
    parts = []
    for key, value in report.items():
        base = key.replace("_classifier", "")
        if base in ("fid", "kid", "is", "precision", "recall", "confident"):
            label = {"fid": "FID", "kid": "KID", "is": "IS", "precision": "precision", "recall": "recall",
                     "confident": "called with p>=0.9"}[base]
            label += " (classifier features)" if key.endswith("_classifier") and base != "confident" else ""
            parts.append(f"{label} {value:.4g}")
    if "psnr" in report:
        parts.append(f"PSNR {report['psnr']:.2f} dB")
    text = f"step {report['step']}: "
    if "samples" in report:
        what = {"generated": "samples", "reconstructed reference": "reconstructions"}.get(
            report["samples"], f"images of {report['samples']}")
        text += (", ".join(parts) + f" [{report['num_generated']} {what} vs {report['num_reference']} of "
                 f"{report['reference']}; {report['extractor']}]")
    nll = [f"NLL {m} {report[f'nll_{m}_bpd']:.4g} +- {report[f'nll_{m}_bpd_sem']:.2g} bits/dim" for m in ("vlb", "ode")
           if f"nll_{m}_bpd" in report]
    if nll:
        text += ("; " if "samples" in report else "") + ", ".join(nll) + f" [{report['num_nll']} of {report['nll_images']}]"
    return text



def make_evaluator(config, mesh):
    """The trainer's evaluator from config.eval: (sampler, step, reconstruct=None) -> report (see `evaluate`).
    Loads the extractor now, so a missing weight file stops the run before it starts, not hours in."""
    ev = config.eval
    names = parse_metrics(ev.metrics)
    classifier = ev.classifier or default_classifier_dir(config.data.source)
    extractor = make_extractor(ev.extractor, config.data.image_size, config.data.channels, ev.inception, classifier)
    ref = reference_spec(config.data.source, ev.split)
    return lambda sampler, step, reconstruct=None: evaluate(config, sampler, mesh, extractor, ev.num, names, ref,
                                                            batch=ev.batch, cache_dir=ev.cache_dir, step=step,
                                                            reconstruct=reconstruct)


def scalars(report: dict) -> dict:
    """The report's metric values, for the JSONL/TensorBoard writer (keys prefixed 'eval/')."""
    return {f"eval/{k}": v for k, v in report.items()
            if isinstance(v, float) and k.replace("_classifier", "").split("_")[0] in ("fid", "kid", "is",
                                                                                       "precision", "recall",
                                                                                       "confident", "psnr")}
