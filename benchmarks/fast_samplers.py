"""FID (classifier features) of the offline default run's samples by sampler and model evaluations:
DDIM at 10, 20, 50 and 100, DPM-Solver++(2M) at 10, 20 and 50, Heun at 9, 19 and 49 (2 steps - 1), and
the floor (a uniform subset of real training digits of the same size). Same samples count, same
reference (a uniform subset of the test split), same seed for every row.

  python benchmarks/fast_samplers.py            # trains the run and the classifier first if missing
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.timing import write_results  # noqa: E402

ROWS = [("ddim", 10, 10), ("ddim", 20, 20), ("ddim", 50, 50), ("ddim", 100, 100),
        ("dpmpp2m", 10, 10), ("dpmpp2m", 20, 20), ("dpmpp2m", 50, 50),
        ("heun", 5, 9), ("heun", 10, 19), ("heun", 25, 49)]  # (sampler, steps, model evaluations)


def jgen(*args):
    proc = subprocess.run([sys.executable, "-m", "jgen.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode:
        raise SystemExit(f"jgen {' '.join(map(str, args))} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "ddpm_mnist5k"))
    p.add_argument("--classifier", default=os.path.join(ROOT, "runs", "classifier_mnist5k"))
    p.add_argument("--num", type=int, default=500, help="samples per row (default 500)")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    if not os.path.exists(os.path.join(a.workdir, "samples", "final.png")):
        jgen("train", "--config", "ddpm_mnist5k", "--workdir", a.workdir)
    if not os.path.exists(os.path.join(a.classifier, "classifier.json")):
        jgen("train-classifier", "--out", a.classifier)
    common = ["--workdir", a.workdir, "--num", a.num, "--extractor", "classifier", "--classifier", a.classifier,
              "--metrics", "fid", "--cache-dir", os.path.join(a.workdir, "eval", "cache")]
    rows = []
    for sampler, steps, nfe in ROWS + [("real train digits (floor)", 0, 0)]:
        out = os.path.join(a.workdir, "eval", f"samplers_{sampler.split()[0]}_{steps}.json")
        extra = ["--real", "train"] if steps == 0 else ["--sampler", sampler, "--steps", steps]
        start = time.time()
        jgen("eval", *common, *extra, "--out", out)
        report = json.load(open(out))
        rows.append(dict(sampler=sampler, steps=steps, evaluations=nfe, fid_classifier=report["fid_classifier"],
                         seconds=round(time.time() - start, 1)))
        print(rows[-1], flush=True)
    ddim100 = next(r["fid_classifier"] for r in rows if r["sampler"] == "ddim" and r["steps"] == 100)
    lines = ["| sampler | steps | model evaluations | FID (classifier features) | / DDIM-100 |", "|---|---|---|---|---|"]
    lines += [f"| {r['sampler']} | {r['steps'] or '-'} | {r['evaluations'] or '-'} | {r['fid_classifier']:.1f} | "
              f"{r['fid_classifier'] / ddim100:.2f} |" for r in rows]
    heading = (f"Fast samplers on the offline default run ({a.num} samples each, reference: a uniform {a.num} of "
               f"the test digits), {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')} "
               "(`python benchmarks/fast_samplers.py`)")
    write_results(a.out, "fast-samplers", heading, "\n".join(lines), rows)


if __name__ == "__main__":
    main()
