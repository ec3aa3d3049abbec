"""Feature extraction throughput for `jgen eval`: the classifier extractor and the FID Inception, with
pytorch-fid's Inception (random weights, same input) beside it when the parity-fid extra is installed.

Measures `jgen.eval.evaluate.extract` end to end (uint8 in, NumPy features out, batches over the mesh),
median of timed passes after a warm-up pass; the first pass's extra time is the jit compile.

Run: python benchmarks/eval_features.py [--inception-images 200] [--classifier-images 5000]
"""

import argparse
import os
import platform
import sys
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.timing import timed, write_results  # noqa: E402
from jgen.eval import evaluate as E  # noqa: E402
from jgen.eval import inception  # noqa: E402
from jgen.eval.classifier import Classifier  # noqa: E402
from jgen.sharding import make_mesh  # noqa: E402


def random_params(module, shape, rng):
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), np.zeros(shape, np.float32))["params"]
    return jax.tree_util.tree_map(lambda s: np.float32(0.05 * rng.normal(size=s.shape)) if len(s.shape) > 1
                                  else np.float32(rng.uniform(0.5, 1.5, s.shape)), shapes)


def jgen_rate(extractor, images, mesh):
    t0 = time.perf_counter()
    E.extract(extractor, images, mesh)
    first = time.perf_counter() - t0
    seconds = timed(lambda: E.extract(extractor, images, mesh), repeats=3, inner=1, sync=lambda out: out)
    return len(images) / seconds, first - seconds


def torch_fid_rate(images_uint8, batch):
    """pytorch-fid's InceptionV3 (block 3 = pool3) on the same images, [0, 1] NCHW as it takes them."""
    import torch
    import pytorch_fid.inception as pfid

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_inception import _random_fid_inception_state

    state = _random_fid_inception_state(torch, pfid)
    pfid.load_state_dict_from_url = lambda *a, **k: state
    net = pfid.InceptionV3([3]).eval()
    x = torch.from_numpy(images_uint8.transpose(0, 3, 1, 2).astype(np.float32) / 255)

    def run():
        with torch.no_grad():
            return [net(x[i:i + batch])[0] for i in range(0, len(x), batch)]
    return len(x) / timed(run, repeats=3, inner=1, sync=lambda out: out), torch.__version__


def main():
    from jgen import host

    host.configure()  # the CPU host settings the `jgen` command applies
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inception-images", type=int, default=200)
    p.add_argument("--classifier-images", type=int, default=5000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    mesh = make_mesh()
    rows = []

    model = Classifier(10)
    cls = E.Extractor("classifier", "bench", lambda p, x: model.apply({"params": p}, x),
                      random_params(model, (1, 28, 28, 1), rng), batch=500)
    digits = rng.integers(0, 256, size=(args.classifier_images, 28, 28, 1), dtype=np.uint8)
    rate, compile_s = jgen_rate(cls, digits, mesh)
    rows.append(dict(extractor="classifier (128-d)", input="28x28x1", batch=500, jgen_per_s=rate,
                     jgen_compile_s=compile_s))

    net = inception.InceptionV3()
    inc = E.Extractor("inception", "bench", lambda p, x: net.apply({"params": p}, x),
                      random_params(net, (1, 75, 75, 3), rng), batch=50)
    torch_rates = {}
    for side, matmul in ((32, False), (32, True), (64, True)):
        inception._matmul_convs = lambda: matmul  # False: XLA's own convolutions, the path GPUs take
        jax.clear_caches()  # else the next row reuses the program traced under the previous choice
        images = rng.integers(0, 256, size=(args.inception_images, side, side, 3), dtype=np.uint8)
        rate, compile_s = jgen_rate(inc, images, mesh)
        how = "im2col matmul convs" if matmul else "XLA convs"
        row = dict(extractor=f"Inception pool3 (2048-d), {how}", input=f"{side}x{side}x3 -> 299", batch=50,
                   jgen_per_s=rate, jgen_compile_s=compile_s)
        try:
            if side not in torch_rates:
                torch_rates[side] = torch_fid_rate(images, 50)
            row["torch_per_s"], row["torch"] = torch_rates[side]
        except ImportError:
            pass
        rows.append(row)

    lines = ["| extractor | input | batch | jgen images/s | first-call compile (s) | pytorch-fid images/s | "
             "jgen / pytorch-fid |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        torch_rate = f"{r['torch_per_s']:.1f}" if "torch_per_s" in r else "n/a"
        ratio = f"{r['jgen_per_s'] / r['torch_per_s']:.2f}" if "torch_per_s" in r else "n/a"
        lines.append(f"| {r['extractor']} | {r['input']} | {r['batch']} | {r['jgen_per_s']:.1f} | "
                     f"{r['jgen_compile_s']:.1f} | {torch_rate} | {ratio} |")
    torch_note = next((f", torch {r['torch']} eager" for r in rows if "torch" in r), "")
    text = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}"
            f"{torch_note}; `extract` end to end (uint8 in, features out).\n\n" + "\n".join(lines))
    write_results(os.path.join(ROOT, "benchmarks", "results"), "eval-features",
                  "Feature extraction throughput (jgen eval)", text, rows)


if __name__ == "__main__":
    main()
