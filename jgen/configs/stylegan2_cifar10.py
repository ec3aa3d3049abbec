"""StyleGAN2 on CIFAR-10 (32 px RGB) with the settings of stylegan2-ada-pytorch's `cifar` spec:
512 channels at every side, two mapping layers, batch 64, minibatch-std groups of 32, Adam(0.0025,
betas 0 and 0.99), R1 gamma 0.01 every 16 steps, no path-length term and no style mixing, EMA
half-life 500 k images (jgen's EMA warm-up rule instead of the spec's 5% ramp). The spec's original
(non-residual) discriminator is not in jgen: this one is residual. A GPU or pod recipe (TFDS cifar10
prepared as ArrayRecord); unmeasured here.
"""

from jgen.configs import base


def get_config():
    c = base.get_config("gan")
    c.data.update(source="tfds:cifar10:train", image_size=32, channels=3, random_flip=True)
    c.gan.update(arch="stylegan2", r1_gamma=0.01, r1_interval=16)
    c.model.update(latent_dim=512, w_dim=512, mapping_layers=2, channel_base=16384, channel_max=512,
                   mbstd_group=32)
    adam = dict(lr=0.0025, b1=0.0, b2=0.99, eps=1e-8)
    c.optim.gen.update(adam)
    c.optim.disc.update(adam)
    c.optim.ema_decay = 0.5 ** (64 / 500000)
    c.train.update(batch_size=64, steps=400000, sample_every=5000, ckpt_every=5000)
    c.eval.update(extractor="inception", metrics="fid")
    return c
