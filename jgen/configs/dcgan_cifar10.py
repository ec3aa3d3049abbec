"""DCGAN (Radford et al. 2016) on CIFAR-10 32x32: the paper's architecture, losses and Adam(2e-4, beta1 0.5).

Needs the TFDS dataset prepared (`tfds build cifar10`, or --set data.data_dir=DIR). 32 = 4 * 2^3:
z (100) -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x3; the discriminator mirrors it.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.data.update(source="tfds:cifar10:train", image_size=32, channels=3)
    c.train.update(steps=100000, batch_size=128, sample_every=5000, ckpt_every=5000, keep_checkpoints=3)
    c.eval.update(num=10000, metrics="fid,is", extractor="inception")
    return c
