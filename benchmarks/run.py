"""jgen against its PyTorch twins, family by family: train-step and sampling throughput, peak memory,
first-step (jit / compile) time, as ratios jgen / PyTorch.

Every measurement runs in its own process (benchmarks/workers.py), the variants alternating round
by round so that drifting machine load hits them alike; each figure is the median over rounds.
Writes benchmarks/results/<device>-<date>.{json,md,png} (on CPU the device is cpu<cores>).

  python benchmarks/run.py --device cpu --quick     # 3 families + DiT, jgen float32 vs torch eager, ~9 min on 2 cores
  python benchmarks/run.py --device cpu             # + bfloat16, torch.compile, CIFAR shapes, 2 rounds
  python benchmarks/run.py --device gpu             # the CIFAR-10 U-Net at batch 128 and friends
  python benchmarks/run.py --device cpu --only dit  # the DiT rows alone

The DiT rows (label "dit") train and sample the mnist5k recipe with model.arch=dit (DIT below: 28x28x1,
patch 2, so 14x14 tokens, width 192, 6 blocks, 3 heads) against dit_torch's twin.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (family label, config in configs/, batch); label "dit" runs the config with DIT's overrides
CASES = {
    "quick": [("ddpm", "ddpm_mnist5k", 16), ("dcgan", "dcgan_mnist5k", 64), ("vae", "betavae_mnist5k", 64),
              ("dit", "ddpm_mnist5k", 64), ("stylegan2", "stylegan2_mnist5k", 32)],
    "cpu": [("ddpm", "ddpm_mnist5k", 16), ("dcgan", "dcgan_mnist5k", 64), ("vae", "betavae_mnist5k", 64),
            ("ddpm", "ddpm_cifar10", 4), ("dcgan", "dcgan_cifar10", 64), ("vae", "betavae_celeba64", 64),
            ("dit", "ddpm_mnist5k", 64), ("stylegan2", "stylegan2_mnist5k", 32)],
    "gpu": [("ddpm", "ddpm_cifar10", 128), ("dcgan", "dcgan_cifar10", 128), ("vae", "betavae_celeba64", 128),
            ("dit", "ddpm_mnist5k", 128), ("stylegan2", "stylegan2_cifar10", 64)],
}
# A small DiT (Peebles & Xie 2023) on the mnist5k recipe's 28x28x1 digits: 14x14 tokens of width 192.
# Its sampling figure is 10-step DDIM: 50 steps of a batch of 64 take ~2 min a call on 2 cores.
DIT = dict(patch_size=2, hidden=192, depth=6, heads=3)
DIT_SAMPLE_STEPS = 10
DIT_SET = ["model.arch=dit"] + [f"model.{k}={v}" for k, v in DIT.items()] + [f"sample.steps={DIT_SAMPLE_STEPS}"]
VARIANTS = {"quick": [("jgen", "float32"), ("torch", "eager")],
            "full": [("jgen", "float32"), ("torch", "eager"), ("jgen", "bfloat16"), ("torch", "compile"),
                     ("jgen", "loop")]}
FIGURES = [("train_img_s", "train images/s", True), ("sample_img_s", "sampling images/s", True),
           ("peak_mib", "peak memory MiB", False), ("first_step_s", "first step s (jit/compile)", False),
           ("mfu", "MFU (XLA's step FLOPs / time / the chip's dense peak)", True)]


def run_worker(framework, variant, config, batch, gpu, repeats, timeout, family=""):
    args = ["--framework", framework, "--variant", variant, "--config", config, "--batch", str(batch),
            "--repeats", str(repeats)] + (["--gpu"] if gpu else [])
    cmd = [sys.executable, "-m", "benchmarks.workers"] + args + ([a for kv in DIT_SET for a in ("--set", kv)]
                                                                 if family == "dit" else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # PyTorch runs as its users run it: the torch worker never calls jgen.host.configure()
    if not gpu:
        env["JAX_PLATFORMS"] = "cpu"
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def name(framework, variant):
    return {"float32": "jgen f32", "bfloat16": "jgen bf16", "eager": "torch eager", "compile": "torch.compile",
            "loop": "jgen loop"}[variant]


def summarise(rows):
    """{(label, config, batch): {variant: {figure: median}}}"""
    out = {}
    for r in rows:
        if "error" in r:
            continue
        cell = out.setdefault((r["family"], r["config"], r["batch"]), {}).setdefault(r["variant"], {})
        for key, _, _ in FIGURES:
            if r.get(key) is not None:  # MFU: jgen only, and only where the chip's peak is known
                cell.setdefault(key, []).append(r[key])
    return {case: {v: {k: statistics.median(x) for k, x in figs.items()} for v, figs in vs.items()}
            for case, vs in out.items()}


def table(summary, variants):
    names = [name(*v) for v in variants]
    ratios = [(a, b) for a, b in (("jgen f32", "torch eager"), ("jgen f32", "torch.compile"),
                                   ("jgen bf16", "torch eager"), ("jgen bf16", "torch.compile"),
                                   ("jgen loop", "jgen f32")) if a in names and b in names]
    head = ["case", "figure"] + names + [f"{a} / {b}" for a, b in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (family, config, batch), vs in summary.items():
        for key, label, higher_better in FIGURES:
            vals = [vs.get(n, {}).get(key) for n in names]
            cells = [f"{v:.3g}" if v is not None else "-" for v in vals]
            for a, b in ratios:
                x, y = vs.get(a, {}).get(key), vs.get(b, {}).get(key)
                cells.append(f"{x / y:.2f}" if x and y else "-")
            lines.append(f"| {family} {config} b{batch} | {label}{'' if higher_better else ' (lower is better)'} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(summary, variants, path):
    """Train and sampling throughput relative to torch eager: one row per case and measure, one horizontal
    bar per other variant, parity at 1.0, legend and footnote below (benchmarks/charts.py)."""
    if ROOT not in sys.path:  # run as a script, benchmarks/ is on the path but not the repository
        sys.path.insert(0, ROOT)
    from benchmarks.charts import date, machine, ratio_chart

    names = [n for n in (name(*v) for v in variants) if n != "torch eager"
             and any(key in vs.get(n, {}) for vs in summary.values() for key in ("train_img_s", "sample_img_s"))]
    labels, series = [], {f"{n} / torch eager": [] for n in names}
    for (family, config, batch), vs in summary.items():
        for key, measure in (("train_img_s", "training"), ("sample_img_s", "sampling")):
            labels.append(f"{family} {config} b{batch}, {measure}")
            base = vs.get("torch eager", {}).get(key)
            for n in names:
                x = vs.get(n, {}).get(key)
                series[f"{n} / torch eager"].append(x / base if x and base else None)
    stem = os.path.basename(path)
    ratio_chart(labels, series, "images per second relative to torch eager (above 1: faster)",
                "Training and sampling throughput relative to torch eager",
                f"{machine(stem)}, {date(stem)}; {os.path.splitext(stem)[0]}.json (python benchmarks/run.py), medians "
                "over rounds. n/a: not measured or failed.", path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--quick", action="store_true", help="mnist5k shapes, jgen float32 vs torch eager, one round")
    p.add_argument("--rounds", type=int, default=0, help="rounds of alternating runs (default 1 quick, 2 full)")
    p.add_argument("--only", default="", help="comma-separated family labels (ddpm,dcgan,vae,dit,stylegan2)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    gpu = a.device == "gpu"
    cases = CASES["quick" if a.quick else a.device]
    if a.only:
        cases = [c for c in cases if c[0] in a.only.split(",")]
    variants = VARIANTS["quick" if a.quick else "full"]
    rounds = a.rounds or (1 if a.quick else 2)
    repeats = 3 if a.quick else 5
    rows, device, t_start = [], None, time.time()
    for family, config, batch in cases:
        for r in range(rounds):
            for framework, variant in variants:
                if family == "dit" and variant == "loop":  # the loop's overhead is the U-Net rows' figure
                    continue
                res = run_worker(framework, variant, config, batch, gpu, repeats, a.timeout, family)
                res.update(family=family, config=config, batch=batch, variant=name(framework, variant), round=r)
                device = device or (res.get("device") if framework == "jgen" else None)
                rows.append(res)
                shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}
                print(json.dumps(shown), flush=True)
    summary = summarise(rows)
    text = table(summary, variants)
    tag = f"cpu{os.cpu_count()}" if not gpu else (device or "gpu").lower().replace(" ", "-")
    stem = os.path.join(a.out, f"{tag}-{time.strftime('%Y-%m-%d')}{'-quick' if a.quick else ''}")
    import jax
    import torch
    heading = (f"# jgen vs PyTorch twins on {tag} ({os.cpu_count()} cores), jax {jax.__version__}, "
               f"torch {torch.__version__}\n\n`python benchmarks/run.py --device {a.device}{' --quick' if a.quick else ''}`"
               f", {rounds} round(s) alternating, medians; {time.time() - t_start:.0f} s in all. Throughput: images/s, "
               f"median of timed windows after a warm-up; DDPM sampling is 50-step DDIM, DiT sampling "
               f"{DIT_SAMPLE_STEPS}-step. Peak memory (CPU): resident "
               f"high-water mark of the timed train steps over the size before the model was built. Ratios are "
               f"jgen / PyTorch: above 1 is jgen faster for throughput, below 1 is jgen better for memory and first step.\n")
    print(text)
    os.makedirs(a.out, exist_ok=True)
    with open(stem + ".md", "w") as f:
        f.write(heading + "\n" + text + "\n\n![ratios](" + os.path.basename(stem) + ".png)\n")
    with open(stem + ".json", "w") as f:
        json.dump({"device": tag, "rows": rows}, f, indent=1)
    chart(summary, variants, stem + ".png")
    print(f"wrote {stem}.md, .json, .png ({time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
