"""How varied a sample grid is: the per-pixel standard deviation over its tiles, averaged over pixels.

A quick mode-collapse gauge for a run's `samples/*.png` (a grid of COLS x COLS equal tiles, jgen's
2-pixel borders included): a collapsed GAN's grid of one repeated shape scores about 0.05 on the
digits, the DDPM main job's grid 0.153 (benchmarks/results/cpu2-stylegan2-collapse-2026-12-06.md).

  python benchmarks/grid_diversity.py runs/stylegan2_mnist5k/samples/*.png [--cols 8]
"""

import argparse

import numpy as np
from PIL import Image


def diversity(path: str, cols: int = 8) -> float:
    """Mean over pixels of the standard deviation over the cols x cols tiles, grey levels in [0, 1]."""
    a = np.asarray(Image.open(path).convert("L"), np.float64) / 255.0
    s = a.shape[0] // cols
    tiles = np.stack([a[i * s:(i + 1) * s, j * s:(j + 1) * s] for i in range(cols) for j in range(cols)])
    return float(tiles.std(axis=0).mean())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("grids", nargs="+")
    p.add_argument("--cols", type=int, default=8)
    a = p.parse_args()
    for g in a.grids:
        print(f"{g}: {diversity(g, a.cols):.3f}")
