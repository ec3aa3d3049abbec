"""Does synthetic data help? The offline classifier (jgen.eval.classifier) trained on
  (a) 500 real training digits (a uniform subset, drawn per seed),
  (b) the same 500 plus 4,500 class-conditional samples of the guided run (`jgen export`, 450 a class),
  (c) the 4,500 samples only: the Classification Accuracy Score of Ravuri & Vinyals 2019,
  (d) all 4,500 real training digits,
each for the same number of steps, scored on the 500 held-out test digits; 3 seeds each (classifier
initialisation, batch order and the real subset of (a) and (b)), mean and spread.

  python benchmarks/augmentation.py      # trains the guided run (ddpm_mnist5k_cfg) and exports first if missing
"""

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.timing import jgen  # noqa: E402
from jgen import host  # noqa: E402

host.configure()

from jgen.data.pipeline import first_images, images_at, uniform_subset  # noqa: E402
from jgen.data.sources import Source, open_source  # noqa: E402
from jgen.eval.classifier import _data_config, accuracy, fit  # noqa: E402
from jgen.images import to_uint8  # noqa: E402


def in_memory(images: np.ndarray, labels: np.ndarray, name: str) -> Source:
    """uint8 [N, S, S, C] images with labels as a Source the pipeline reads without preprocessing."""
    return Source(lambda i: (images[i], int(labels[i])), len(images), 10, name, ready=True)


def arrays(source: Source, data, indices):
    indices = np.asarray(indices)
    return to_uint8(images_at(source, data, indices)), np.array([source[i][1] for i in indices], np.int32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "ddpm_mnist5k_cfg"), help="the guided run")
    p.add_argument("--steps", type=int, default=800, help="classifier steps, every arm (default 800)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    if not os.path.exists(os.path.join(a.workdir, "samples", "final.png")):
        jgen("train", "--config", "ddpm_mnist5k_cfg", "--workdir", a.workdir)
    export = os.path.join(a.workdir, "export")
    if not os.path.exists(os.path.join(export, "9")):
        jgen("export", "--workdir", a.workdir, "--num", 4500, "--out", export, "--batch", 250)
    data = _data_config(28, 1)
    train, test = open_source("builtin:mnist5k:train"), open_source("builtin:mnist5k:test")
    synthetic = open_source(f"folder:{export}")
    syn_x, syn_y = arrays(synthetic, data, range(len(synthetic)))
    real_x, real_y = arrays(train, data, range(len(train)))
    test_x, test_y = first_images(test, data, len(test)), test.labels(len(test))
    rows = {}
    for seed in range(a.seeds):
        pick = uniform_subset(train, 500, seed)
        arms = {"(a) 500 real": (real_x[pick], real_y[pick]),
                "(b) 500 real + 4,500 synthetic": (np.concatenate([real_x[pick], syn_x]),
                                                   np.concatenate([real_y[pick], syn_y])),
                "(c) 4,500 synthetic (CAS)": (syn_x, syn_y),
                "(d) 4,500 real": (real_x, real_y)}
        for name, (x, y) in arms.items():
            start = time.time()
            model, params, _ = fit(in_memory(x, y, name), data, a.steps, seed=seed)
            acc = accuracy(model, params, test_x, test_y)
            rows.setdefault(name, []).append(acc)
            print(json.dumps(dict(arm=name, seed=seed, test_accuracy=acc, seconds=round(time.time() - start, 1))),
                  flush=True)
    config = json.load(open(os.path.join(a.workdir, "config.json")))
    lines = ["| training data | test accuracy, mean | spread (min-max) | seeds |", "|---|---|---|---|"]
    lines += [f"| {n} | {np.mean(v):.3f} | {min(v):.3f}-{max(v):.3f} | {len(v)} |" for n, v in rows.items()]
    stamp = time.strftime("%Y-%m-%d")
    path = os.path.join(a.out, f"cpu2-augmentation-{stamp}")
    with open(path + ".json", "w") as f:
        json.dump(dict(steps=a.steps, seeds=a.seeds, guided_run=config["train"], sample=config["sample"],
                       accuracy=rows), f, indent=1)
    with open(path + ".md", "w") as f:
        f.write(f"# Synthetic digits as training data (2 CPU cores, {stamp})\n\nClassifier: jgen.eval.classifier, "
                f"{a.steps} Adam steps of 64, the same for every arm; test: the 500 held-out mnist5k digits. "
                f"Synthetic: {len(syn_x)} samples of the guided run ({a.workdir}, guidance "
                f"{config['sample']['guidance']}, {config['sample']['sampler']} {config['sample']['steps']} steps).\n\n"
                + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
