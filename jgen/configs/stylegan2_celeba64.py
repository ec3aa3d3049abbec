"""StyleGAN2 on CelebA at 64 px with stylegan2-ada-pytorch's `auto` rules at batch 64: widths
min(16384 / side, 512), two mapping layers, Adam(0.0025, betas 0 and 0.99), R1 gamma = 0.0002
side^2 / batch, path length 2 every 4 steps, style mixing 0.9, EMA half-life 20 k images. A GPU or
pod recipe (TFDS celeb_a as ArrayRecord, the 178 px centre crop resized to 64); unmeasured here.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.data.update(source="tfds:celeb_a:train", image_size=64, channels=3, crop=178, random_flip=True)
    c.gan.update(arch="stylegan2", r1_gamma=0.0002 * 64 ** 2 / 64, r1_interval=16, pl_weight=2.0,
                 style_mixing=0.9)
    c.model.update(latent_dim=512, w_dim=512, mapping_layers=2, channel_base=16384, channel_max=512)
    adam = dict(lr=0.0025, b1=0.0, b2=0.99, eps=1e-8)
    c.optim.gen.update(adam)
    c.optim.disc.update(adam)
    c.optim.ema_decay = 0.5 ** (64 / 20000)
    c.train.update(batch_size=64, steps=200000, sample_every=5000, ckpt_every=5000)
    c.eval.update(extractor="inception", metrics="fid")
    return c
