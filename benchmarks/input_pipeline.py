"""Images per second the input pipeline delivers as uint8 global batches (jgen.data.pipeline.local_batches:
Grain index shuffle, PIL decode/crop/resize in reader threads), with no training step beside it.

  python benchmarks/input_pipeline.py      # (a) 32x32 PNG records, (b) 178x218 JPEG -> crop 178 -> 64,
                                           # (c) builtin mnist5k; (b) also with data.cache=true

Goals (issue 19), 2 cores: (a) >= 4,000 images/s, (b) >= 1,500 uncached, (b) cached >= 10x (b).
Records are generated in memory (encoded bytes, as TFDS's ArrayRecord files hold them), so the
figures are the decode and preprocessing cost, not the disk's.
"""

import argparse
import io
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.timing import write_results  # noqa: E402


def encoded_source(n: int, height: int, width: int, fmt: str):
    """n smooth random RGB images (photo-like, so JPEG sizes are realistic) as encoded bytes."""
    from jgen.data.sources import Source

    rng, blobs = np.random.default_rng(0), []
    for _ in range(n):
        small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        blobs.append(buf.getvalue())
    return Source(lambda i: (blobs[i], i % 10), n, 10, f"{fmt.lower()}-{height}x{width}")


def images_per_second(source, data, batch: int, seconds: float) -> float:
    from jgen.data.pipeline import local_batches

    it = local_batches(source, data, batch, seed=0)
    next(it)  # threads started, first batches made
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += len(next(it)["label"])
    return n / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per case (default 10)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    a = p.parse_args()
    from jgen.data.pipeline import cached
    from jgen.data.sources import open_source

    def data(size, channels, crop=0):
        return ml_collections.ConfigDict(dict(image_size=size, channels=channels, crop=crop, random_flip=False))

    jpeg = encoded_source(2000, 218, 178, "JPEG")
    cases = [("(a) 32x32 PNG", encoded_source(5000, 32, 32, "PNG"), data(32, 3), 4000),
             ("(b) 178x218 JPEG -> crop 178 -> 64", jpeg, data(64, 3, 178), 1500),
             ("(b) cached (data.cache=true)", None, data(64, 3, 178), None),
             ("(c) builtin mnist5k, 28x28x1", open_source("builtin:mnist5k:train"), data(28, 1), None)]
    rows = []
    for name, source, cfg, goal in cases:
        if source is None:
            start = time.perf_counter()
            source = cached(jpeg, cfg)
            print(f"cache filled in {time.perf_counter() - start:.1f} s", flush=True)
            goal = 10 * rows[-1]["images_per_s"]
        rate = images_per_second(source, cfg, a.batch, a.seconds)
        rows.append(dict(case=name, images_per_s=rate, goal=goal))
        print(rows[-1], flush=True)
    lines = ["| case | images/s | goal |", "|---|---|---|"]
    lines += [f"| {r['case']} | {r['images_per_s']:,.0f} | {'>= ' + format(r['goal'], ',.0f') if r['goal'] else ''} |"
              for r in rows]
    heading = (f"Input pipeline throughput, uint8 batches of {a.batch}, {os.cpu_count()} CPU cores, "
               f"{time.strftime('%Y-%m-%d')} (`python benchmarks/input_pipeline.py`)")
    write_results(a.out, "input-pipeline", heading, "\n".join(lines), rows)


if __name__ == "__main__":
    main()
