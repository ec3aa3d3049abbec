"""FID (classifier features) against model evaluations, per sampler and process: each trained run
(--run LABEL=WORKDIR, repeatable) sampled by Euler (DDIM with eta 0), Heun (about 2 evaluations a step;
samplers.model_calls counts them on the run's grid)
and DPM-Solver++(2M) at about 10, 20, 50 and 100 evaluations, plus the floor (a uniform subset of real
training digits of the same size). Same sample count, same reference (a uniform subset of the test
split) and same seed for every row; a table and a chart (FID against evaluations, one line per run and
sampler) in benchmarks/results/.

  python benchmarks/fast_samplers.py --run ddpm=runs/ddpm_mnist5k --run flow=runs/recipes/flow_8k
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.timing import jgen, write_results  # noqa: E402

ROWS = [("euler", 10), ("euler", 20), ("euler", 50), ("euler", 100), ("dpmpp2m", 10), ("dpmpp2m", 20),
        ("dpmpp2m", 50), ("dpmpp2m", 100), ("heun", 5), ("heun", 10), ("heun", 25), ("heun", 50)]  # (sampler, steps)


def evaluations(workdir: str, sampler: str, steps: int) -> int:
    """Model calls per sample of `sampler` at `steps` on the run's process and grid (jgen.diffusion.samplers)."""
    from jgen.config import read_config
    from jgen.diffusion import process, samplers

    proc = process.from_config(read_config(os.path.join(workdir, "config.json")).diffusion)
    return samplers.model_calls(proc, sampler, samplers.sampler_path(proc, sampler, steps))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], metavar="LABEL=WORKDIR", help="a trained diffusion run")
    p.add_argument("--classifier", default=os.path.join(ROOT, "runs", "classifier_mnist5k"))
    p.add_argument("--num", type=int, default=500, help="samples per row (default 500)")
    p.add_argument("--samplers", default="euler,heun,dpmpp2m")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    runs = [r.split("=", 1) for r in a.run] or [("ddpm", os.path.join(ROOT, "runs", "ddpm_mnist5k"))]
    if not os.path.exists(os.path.join(a.classifier, "classifier.json")):
        jgen("train-classifier", "--out", a.classifier)
    rows, floor = [], None
    for label, workdir in runs:
        common = ["--workdir", workdir, "--num", a.num, "--extractor", "classifier", "--classifier", a.classifier,
                  "--metrics", "fid", "--cache-dir", os.path.join(workdir, "eval", "cache")]
        todo = [r for r in ROWS if r[0] in a.samplers.split(",")] + ([("real", 0)] if floor is None else [])
        for sampler, steps in todo:
            out = os.path.join(workdir, "eval", f"samplers_{sampler}_{steps}_{a.num}.json")
            extra = ["--real", "train"] if steps == 0 else ["--sampler", sampler, "--steps", steps]
            start = time.time()
            if not os.path.exists(out):  # a row measured before (same run, sampler, steps, count) is read back
                jgen("eval", *common, *extra, "--out", out)
            report = json.load(open(out))
            fid = report["fid_classifier"]
            if steps == 0:
                floor = fid
                continue
            rows.append(dict(run=label, sampler=sampler, steps=steps, evaluations=evaluations(workdir, sampler, steps),
                             fid_classifier=fid,
                             seconds=report.get("seconds", {}).get("sampling", round(time.time() - start, 1))))
            print(rows[-1], flush=True)
    lines = ["| run | sampler | steps | model evaluations | FID (classifier features) | / same sampler at ~100 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ref = max((q for q in rows if q["run"] == r["run"] and q["sampler"] == r["sampler"]),
                  key=lambda q: q["evaluations"])["fid_classifier"]
        lines.append(f"| {r['run']} | {r['sampler']} | {r['steps']} | {r['evaluations']} | {r['fid_classifier']:.1f} | "
                     f"{r['fid_classifier'] / ref:.2f} |")
    lines.append(f"| real train digits (floor) | - | - | - | {floor:.1f} | - |")
    heading = (f"FID against model evaluations per sampler and process ({a.num} samples each, reference: a uniform "
               f"{a.num} of the test digits), {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')} "
               "(`python benchmarks/fast_samplers.py`)")
    stem = write_results(a.out, "fast-samplers", heading, "\n".join(lines), rows + [dict(run="floor", fid_classifier=floor)])
    from benchmarks.charts import calls_figure  # sets matplotlib's Agg backend

    runs = dict.fromkeys(r["run"] for r in rows)
    calls_figure([([r for r in rows if r["run"] == run], floor, f"{run} run") for run in runs],
                 f"FID against model calls, {a.num} samples each",
                 f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}; reference: {a.num} test digits. "
                 "Lower is better.", stem + ".png")


if __name__ == "__main__":
    main()
