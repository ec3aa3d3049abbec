"""The results charts of the documentation site, drawn from the measured files in benchmarks/results/
into docs/img/ (PNG, 120 dpi, 8 in wide):

  fid-vs-steps.png      FID / floor against training steps: the ddpm_mnist5k rows of
                        cpu2-recipes-2026-11-30.jsonl and the flow_mnist5k / edm_mnist5k rows of
                        cpu2-recipes-2026-12-06.jsonl, each file's FID over its own floor (the two dates
                        judged with different classifiers)
  fid-vs-calls.png      FID against model calls per sampler, one panel per run (process):
                        cpu2-fast-samplers-2026-11-30.json (DDPM) and cpu2-fast-samplers-2026-12-06.json
                        (flow, EDM), each panel with its file's floor
  cpu-speed-ratios.png  jgen f32 / PyTorch throughput per case and measure: cpu2-2026-11-27.json
                        (benchmarks/run.py's rows, medians over rounds as in its table)

Footnotes take the machine and dates from the file names; benchmarks/run.py draws with ratio_chart.
  python benchmarks/charts.py
"""

import json
import os
import re
import statistics
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
OUT = os.path.join(ROOT, "docs", "img")
DATE = r"\d{4}-\d{2}-\d{2}"
# Rows without a train.steps override or an "_Nk" in their name: ddpm_mnist5k's default then, from the
# recipe's history (git log configs/ddpm_mnist5k.py): 2,000 steps until e9863fb, 10,000 until 3917505,
# then 13,000 (docs/results.md's recipe table gives the same three)
RECIPE_STEPS = {"default": 2000, "ddpm_mnist5k, new default (README main command)": 10000,
                "ddpm_mnist5k main command (clean clone)": 13000}
SAMPLERS = {"ddim": "DDIM", "euler": "Euler", "dpmpp2m": "DPM-Solver++(2M)", "heun": "Heun (2 calls a step but the last)"}


def machine(filename):
    """'cpu2-recipes-2026-11-30.jsonl' -> '2 CPU cores'; another tag is the part before the date."""
    m = re.match(r"cpu(\d+)-", filename)
    if m:
        return f"{m[1]} CPU cores"
    d = re.search(DATE, filename)
    return filename[:d.start()].strip("-") if d else filename


def date(filename):
    found = re.search(DATE, filename)
    return found[0] if found else "undated"


def load(filename):
    with open(os.path.join(RESULTS, filename)) as f:
        return [json.loads(line) for line in f if line.strip()] if filename.endswith(".jsonl") else json.load(f)


def finish(fig, ax, title, note, path, ncol, handles=None):
    """Title above; legend (ax's entries or {label: handle}) below ax's x label, then a grey footnote: both
    anchored to ax, outside the layout (the saved bounding box takes them in), so they cover nothing."""
    handles = handles or dict(zip(*reversed(ax.get_legend_handles_labels())))
    below = offset_copy(ax.transAxes, fig=fig, y=-40, units="points")  # clear of tick labels and x label
    legend = ax.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0),
                       bbox_transform=below, ncol=ncol, fontsize=8, frameon=False)
    text = ax.annotate(textwrap.fill(note, 125), xy=(0.01, 0), xycoords=("figure fraction", legend),
                       xytext=(0, -4), textcoords="offset points", ha="left", va="top", fontsize=7.5, color="0.3",
                       annotation_clip=False)
    legend.set_in_layout(False), text.set_in_layout(False)
    head = fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.savefig(path, dpi=120, bbox_inches="tight", bbox_extra_artists=[head, legend, text], pad_inches=0.15)
    plt.close(fig)
    print("wrote", path)


def ratio_bars(ax, labels, series, xlabel):
    """Horizontal bars, one row per label and one bar per series ({name: [ratio or None]}), the value
    printed at each bar's end and a dashed parity line at 1.0."""
    h = 0.8 / len(series)
    top = max([v for vals in series.values() for v in vals if v] + [1.0])
    for i, (name, vals) in enumerate(series.items()):
        pos = [y - 0.4 + h * (i + 0.5) for y in range(len(labels))]
        bars = ax.barh(pos, [v or 0 for v in vals], height=h * 0.92, label=name)
        ax.bar_label(bars, [f"{v:.2f}" if v else "n/a" for v in vals], padding=2, fontsize=7,
                     bbox=dict(facecolor="white", edgecolor="none", pad=0.3))  # readable over the parity line
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="parity (1.0)")
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first label on top
    ax.set_xlim(0, top * 1.12)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)


def ratio_chart(labels, series, xlabel, title, note, path):
    height = 1.6 + len(labels) * (0.16 * len(series) + 0.1)
    fig, ax = plt.subplots(figsize=(8, height), layout="constrained", dpi=120)
    ratio_bars(ax, labels, series, xlabel)
    finish(fig, ax, title, note, path, min(3, len(series) + 1))


def train_steps(row):
    """From a train.steps override or an '_Nk' in the name (both must agree), else RECIPE_STEPS; None
    where neither says."""
    found = {int(o.split("=")[1]) for o in row.get("overrides", []) if o.startswith("train.steps=")}
    found |= {int(n) * 1000 for n in re.findall(r"(?:^|_)(\d+)k(?=_|$)", row["name"])}
    if len(found) == 1:
        return found.pop()
    return RECIPE_STEPS.get(row["name"]) if not found else None


def fid_vs_steps(path):
    files = {"cpu2-recipes-2026-11-30.jsonl": ["ddpm_mnist5k"],
             "cpu2-recipes-2026-12-06.jsonl": ["flow_mnist5k", "edm_mnist5k"]}
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained", dpi=120)
    floors = []
    for filename, configs in files.items():
        rows = load(filename)
        floor = next(r for r in rows if r["name"] == "floor (real training digits)")
        floors.append(f"{floor['fid']:.1f} ({date(filename)})")
        for config in configs:
            pts = []
            for r in rows:
                if r.get("config") != config:
                    continue
                steps = train_steps(r)
                if steps is None or "sampled with" in r["name"] or r["num"] != floor["num"]:
                    print(f"  left out of {os.path.basename(path)}: {filename}: {r['name']}")
                    continue
                pts.append((steps, r["fid"] / floor["fid"]))
            xs = sorted({x for x, _ in pts})
            meds = [statistics.median(y for x2, y in pts if x2 == x) for x in xs]
            line, = ax.plot(xs, meds, "-", linewidth=1.5)
            runs = f"{len(pts)} run{'s' * (len(pts) > 1)}"
            ax.plot(*zip(*pts), "o", color=line.get_color(), alpha=0.75, label=f"{config} ({runs})")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1,
               label="floor: real training digits (FID " + ", ".join(floors) + ")")
    ax.set_xlim(0, None)
    ax.set_ylim(0, None)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("training steps")
    ax.set_ylabel("FID / floor (classifier features; 1 = real digits)")
    ax.grid(alpha=0.3)
    names = list(files)
    finish(fig, ax, "Sample quality against training steps, offline digit recipes",
           f"{machine(names[0])}; {', '.join(names)}. Each point is one run (seeds and the overrides tried: EMA, "
           "learning rate, cosine decay, min-SNR weighting, a 32-channel U-Net); the line joins the median at each "
           "step count. Each file's FID is divided by its own floor because the two dates judged with different "
           "classifiers. Rows resampled with another sampler (250 DDIM steps) are left out.", path, 2)


def calls_panel(ax, rows, floor, title):
    """FID against model calls (log axis) of one run's rows ({sampler, evaluations, fid_classifier}), one
    line per sampler, the floor dashed."""
    styles = dict(zip(SAMPLERS, ["o-", "D-", "^:", "s--"]))
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted((r["evaluations"], r["fid_classifier"]) for r in rows if r["sampler"] == sampler)
        ax.plot(*zip(*pts), styles.get(sampler, "o-"), label=SAMPLERS.get(sampler, sampler),
                color=f"C{list(SAMPLERS).index(sampler) if sampler in SAMPLERS else 5}")
    ax.axhline(floor, color="grey", linestyle="--", linewidth=1, label="floor: real training digits")
    ax.set_title(title, fontsize=10)
    ax.set_xscale("log")
    ax.set_xticks([10, 20, 50, 100], labels=["10", "20", "50", "100"])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(7.5, 130)
    ax.set_ylim(0, None)
    ax.set_xlabel("model calls per sample")
    ax.grid(alpha=0.3)


def calls_figure(panels, title, note, path):
    """One calls_panel per (rows, floor, panel title), side by side, with the union of their legends once."""
    fig, axes = plt.subplots(1, len(panels), figsize=(8, 3.8), sharex=True, layout="constrained",
                             dpi=120, squeeze=False)
    for ax, (rows, floor, panel_title) in zip(axes[0], panels):
        calls_panel(ax, rows, floor, panel_title)
    axes[0, 0].set_ylabel("FID (classifier features)")
    handles = {}
    for ax in axes[0]:  # the union of the panels' entries, each once
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    finish(fig, axes[0, len(panels) // 2], title, note, path, 3, handles)


def fid_vs_calls(path):
    files = ["cpu2-fast-samplers-2026-11-30.json", "cpu2-fast-samplers-2026-12-06.json"]
    panels = {}  # run -> (rows, floor, file)
    for filename in files:
        rows = [dict(r, run=r.get("run", "ddpm")) for r in load(filename)]  # the 11-30 file is the DDPM run
        floor = next(r["fid_classifier"] for r in rows if r["run"] == "floor" or "floor" in r.get("sampler", ""))
        for run in dict.fromkeys(r["run"] for r in rows if "evaluations" in r and r["evaluations"] > 0):
            panels[run] = ([r for r in rows if r["run"] == run and r.get("evaluations", 0) > 0], floor, filename)
    calls_figure([(rows, floor, f"{run} run ({date(filename)})") for run, (rows, floor, filename) in panels.items()],
                 "FID against model calls, per sampler and per trained run",
                 f"{machine(files[0])}; {', '.join(files)}. Lower is better. The two dates used different classifiers "
                 "(see each panel's floor), so compare a panel's curves with each other and with its own floor.", path)


def cpu_speed_ratios(path):
    sys.path.insert(0, ROOT)
    from benchmarks.run import summarise

    filename = "cpu2-2026-11-27.json"
    rows = load(filename)["rows"]
    summary, rounds = summarise(rows), len({r["round"] for r in rows})
    labels, series = [], {"jgen f32 / torch eager": [], "jgen f32 / torch.compile": []}
    for (family, config, batch), vs in summary.items():
        for key, measure in (("train_img_s", "training"), ("sample_img_s", "sampling")):
            labels.append(f"{config} (batch {batch}), {measure}")
            for name in series:
                a, b = (vs.get(v, {}).get(key) for v in name.split(" / "))
                series[name].append(a / b if a and b else None)
    ratio_chart(labels, series, "jgen / PyTorch, images per second (above 1: jgen faster)",
                "jgen against its PyTorch twins: training and sampling speed on CPU",
                f"{machine(filename)}, {date(filename)}; {filename} (python benchmarks/run.py --device cpu), medians "
                f"over {rounds} alternating rounds. Memory, first-step time and bfloat16 figures are in the .md beside "
                "it.", path)


def main():
    os.makedirs(OUT, exist_ok=True)
    fid_vs_steps(os.path.join(OUT, "fid-vs-steps.png"))
    fid_vs_calls(os.path.join(OUT, "fid-vs-calls.png"))
    cpu_speed_ratios(os.path.join(OUT, "cpu-speed-ratios.png"))


if __name__ == "__main__":
    main()
