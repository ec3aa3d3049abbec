"""DCGAN on CelebA at 64x64, as pytorch/examples/dcgan trains it (ngf = ndf = 64, nz 100, batch 128).

The aligned 178x218 faces are centre-cropped to 178x178 and resized to 64 (the example resizes
the short side to 64, then centre-crops: the same square). Needs `tfds build celeb_a`.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.data.update(source="tfds:celeb_a:train", image_size=64, channels=3, crop=178)
    c.train.update(steps=50000, batch_size=128, sample_every=2500, ckpt_every=2500, keep_checkpoints=3)
    c.eval.update(num=10000, metrics="fid,is", extractor="inception")
    return c
