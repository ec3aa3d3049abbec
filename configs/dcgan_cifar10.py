"""DCGAN (Radford et al. 2016) on CIFAR-10 32x32: the paper's architecture, losses and Adam(2e-4, beta1 0.5).

Needs the TFDS dataset prepared (`tfds build cifar10`, or --set data.data_dir=DIR). 32 = 4 * 2^3:
z (100) -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x3; the discriminator mirrors it.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "gan"
    c.seed = 0
    c.data = dict(source="tfds:cifar10:train", data_dir="", image_size=32, channels=3, crop=0,
                  random_flip=False, shuffle_buffer=10000)
    c.model = dict(latent_dim=100, ngf=64, ndf=64, disc_norm="batch", upsample="subpixel")
    c.gan = dict(loss="nonsaturating", n_critic=1, gp_weight=10.0)
    adam = dict(lr=2e-4, warmup_steps=0, b1=0.5, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip=0.0)
    c.optim = dict(gen=adam, disc=dict(adam), ema_decay=0.0)
    c.train = dict(steps=100000, batch_size=128, log_every=100, sample_every=5000,
                   ckpt_every=5000, keep_checkpoints=3,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=10000, metrics="fid,is", extractor="inception", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
