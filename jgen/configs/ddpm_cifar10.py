"""DDPM on CIFAR-10 as in Ho et al. 2020 (35.7M-parameter U-Net, T=1000, 800k steps, FID 3.17)."""

from jgen.configs import base


def get_config():
    c = base.get_config("diffusion")
    c.data.update(source="tfds:cifar10:train", image_size=32, channels=3, random_flip=True)
    c.model.update(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1,
                   num_groups=32)
    c.train.update(steps=800_000, batch_size=128, sample_every=10_000, ckpt_every=10_000, keep_checkpoints=3)
    c.eval.update(num=10000, metrics="fid,is", extractor="inception")
    return c
