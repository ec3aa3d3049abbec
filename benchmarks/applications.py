"""Inpainting, super-resolution, SDEdit and classifier-free guidance measured on held-out mnist5k digits.

Needs three runs trained here and the offline classifier:
  jgen train --config configs/ddpm_mnist5k.py --workdir runs/ddpm_mnist5k
  jgen train --config configs/ddpm_mnist5k_cfg.py --workdir runs/ddpm_mnist5k_cfg --set train.steps=3000
  jgen train --config configs/sr3_mnist5k.py --workdir runs/sr3_mnist5k
  jgen train-classifier
then: python benchmarks/applications.py. Baselines: the training set's mean image in the hole (inpainting),
bicubic upsampling (super-resolution). Writes results/cpu<N>-applications-<date>.{md,json} and example grids.
"""

import argparse
import os
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.timing import write_results  # noqa: E402
from jgen import applications as A  # noqa: E402
from jgen import host  # noqa: E402
from jgen.data.pipeline import first_images  # noqa: E402
from jgen.data.sources import mnist5k_arrays, open_source  # noqa: E402
from jgen.diffusion import guidance as G  # noqa: E402
from jgen.eval.classifier import load_classifier  # noqa: E402
from jgen.families.base import Cond  # noqa: E402
from jgen.eval.metrics import psnr, ssim  # noqa: E402
from jgen.images import save_grid  # noqa: E402
from jgen.run import open_run  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uncond", default="runs/ddpm_mnist5k")
    p.add_argument("--cfg", default="runs/ddpm_mnist5k_cfg")
    p.add_argument("--sr3", default="runs/sr3_mnist5k")
    p.add_argument("--classifier", default="runs/classifier_mnist5k")
    p.add_argument("--num", type=int, default=100, help="held-out digits per restoration task, num/10 per class")
    p.add_argument("--per-class", type=int, default=30, help="guided samples per class")
    p.add_argument("--jump", type=int, default=10)
    p.add_argument("--resample", type=int, default=5)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    host.configure()
    model, cparams, _ = load_classifier(a.classifier)
    classify = jax.jit(lambda x: jnp.argmax(model.apply({"params": cparams}, x)["logits"], -1))
    rows, figures = [], {}

    def row(task, method, x, truth, labels, mask=None, seconds=None):
        r = dict(task=task, method=method, n=len(x), psnr=float(np.mean(psnr(x, truth, mask=mask))),
                 ssim=float(np.mean(ssim(x, truth))))
        if x.shape[1] == 28:
            r["class_acc"] = float(np.mean(np.asarray(classify(jnp.asarray(x))) == labels))
        if seconds:
            r["seconds"] = seconds
        rows.append(r)
        print(r, flush=True)

    def timed(fn, *args):
        t0 = time.perf_counter()
        out = np.asarray(jax.block_until_ready(fn(*args)))
        return out, time.perf_counter() - t0

    # --- held-out digits: the mnist5k test split (50 per class), as the pipeline feeds them
    run = open_run(a.uncond)
    config = run.config
    test = open_source("builtin:mnist5k:test")
    all_labels = mnist5k_arrays("test")[1]  # sorted by class: take the first num/10 of each
    pick = np.concatenate([np.flatnonzero(all_labels == c)[:a.num // 10] for c in range(10)])
    x, labels = first_images(test, config.data, len(all_labels))[pick], all_labels[pick]
    train_mean = first_images(open_source("builtin:mnist5k:train"), config.data, 4500).mean(0, keepdims=True)
    key = jax.random.PRNGKey(0)

    # --- inpainting: RePaint against the mean image in the hole
    rng = np.random.default_rng(0)
    for kind in ("box", "half", "strokes"):
        keep = np.concatenate([A.make_mask(kind, 28, int(rng.integers(1 << 30))) for _ in range(a.num)])
        hole = 1.0 - keep
        out, sec = timed(partial(A.inpaint, run, jump=a.jump, resample=a.resample), x, keep, key)
        mean_fill = keep * x + hole * train_mean
        row(f"inpaint {kind}", "mean fill", mean_fill, x, labels, hole)
        row(f"inpaint {kind}", f"RePaint j{a.jump} r{a.resample}", out, x, labels, hole, sec)
        assert np.max(np.abs((out - x) * keep)) < 1e-6, "known pixels changed"
        figures[f"inpaint_{kind}"] = np.stack([np.where(keep > 0, x, -1.0), mean_fill, out, x], 1)[::a.num // 10]

    # --- super-resolution, zero-shot ILVR with the unconditional model: 7x7 -> 28x28
    low = np.asarray(G.downsample(jnp.asarray(x), 4))
    bicubic = np.clip(np.asarray(G.upsample_bicubic(jnp.asarray(low), 4)), -1, 1)
    out, sec = timed(A.superres, run, low, 4, key)
    row("superres 7->28", "bicubic", bicubic, x, labels)
    row("superres 7->28", "ILVR (unconditional run)", out, x, labels, seconds=sec)
    gap = float(np.max(np.abs(np.asarray(G.downsample(jnp.asarray(out), 4)) - low)))
    rows.append(dict(task="superres 7->28", method="ILVR: max abs(downsample(output) - input)", n=a.num, value=gap))
    print(rows[-1], flush=True)
    rough = np.asarray(G.upsample_nearest(jnp.asarray(low), 4))
    figures["superres_ilvr"] = np.stack([rough, bicubic, out, x], 1)[::a.num // 10]

    # --- SDEdit: the blocky 7x7 'paintings' of held-out digits turned back into digits
    row("SDEdit of 7x7 blocks", "input (blocks)", rough, x, labels)
    for strength in (0.3, 0.5):
        out, sec = timed(A.edit, run, rough, strength, key)
        row("SDEdit of 7x7 blocks", f"SDEdit strength {strength}", out, x, labels, seconds=sec)
        figures[f"sdedit_{strength}"] = np.stack([rough, out, x], 1)[::a.num // 10]

    # --- SR3: 8x8 -> 32x32 with the run trained on low-resolution inputs
    srun = open_run(a.sr3)
    x32 = first_images(test, srun.config.data, len(all_labels))[pick]
    low32 = np.asarray(G.downsample(jnp.asarray(x32), 4))
    bicubic32 = np.clip(np.asarray(G.upsample_bicubic(jnp.asarray(low32), 4)), -1, 1)
    out, sec = timed(A.superres, srun, low32, 4, key)
    row("superres 8->32", "bicubic", bicubic32, x32, labels)
    row("superres 8->32", "SR3", out, x32, labels, seconds=sec)
    figures["superres_sr3"] = np.stack([np.asarray(G.upsample_nearest(jnp.asarray(low32), 4)), bicubic32, out,
                                        x32], 1)[::a.num // 10]

    # --- classifier-free guidance: does the classifier see the intended class?
    wanted = np.repeat(np.arange(10), a.per_class)
    draw = open_run(a.cfg).sampler(len(wanted))
    for scale in (0.0, 1.0, 2.0, 3.0):
        out, sec = timed(draw, key, Cond(labels=jnp.asarray(wanted), guidance=scale))
        acc = float(np.mean(np.asarray(classify(jnp.asarray(out))) == wanted))
        rows.append(dict(task="class-conditional", method=f"guidance {scale}", n=len(wanted), class_acc=acc,
                         seconds=sec))
        print(rows[-1], flush=True)
        figures[f"cfg_{scale}"] = out.reshape(10, a.per_class, 28, 28, 1)[:, :10]

    lines = ["| task | method | n | PSNR dB | SSIM | classifier acc | value | s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda k, fmt: format(r[k], fmt) if k in r else ""
        lines.append(f"| {r['task']} | {r['method']} | {r['n']} | {f('psnr', '.2f')} | {f('ssim', '.3f')} | "
                     f"{f('class_acc', '.3f')} | {f('value', '.2e')} | {f('seconds', '.0f')} |")
    heading = (f"Applications on held-out mnist5k digits ({os.cpu_count()} CPU cores, jax {jax.__version__}); "
               f"inpainting PSNR over the hole, SSIM over the image")
    stem = write_results(a.out, "applications", heading, "\n".join(lines), rows)
    for name, im in figures.items():
        save_grid(im.reshape((-1,) + im.shape[2:]), f"{stem}-{name}.png", cols=im.shape[1])


if __name__ == "__main__":
    main()
