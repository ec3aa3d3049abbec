"""WGAN-GP (Gulrajani et al. 2017) on CIFAR-10 with the DCGAN networks.

The paper's Algorithm 1: lambda 10, n_critic 5, Adam(1e-4, betas (0, 0.9)), critic batch m = 64, no
BatchNorm in the critic (the penalty is per image). train.batch_size counts the real images one
generator step consumes: n_critic * m = 320. Needs `tfds build cifar10`.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "gan"
    c.seed = 0
    c.data = dict(source="tfds:cifar10:train", data_dir="", image_size=32, channels=3, crop=0,
                  random_flip=False, shuffle_buffer=10000)
    c.model = dict(latent_dim=128, ngf=64, ndf=64, disc_norm="none", upsample="subpixel")
    c.gan = dict(loss="wgan-gp", n_critic=5, gp_weight=10.0)
    adam = dict(lr=1e-4, warmup_steps=0, b1=0.0, b2=0.9, eps=1e-8, weight_decay=0.0, grad_clip=0.0)
    c.optim = dict(gen=adam, disc=dict(adam), ema_decay=0.999)
    c.train = dict(steps=100000, batch_size=320, log_every=100, sample_every=5000,
                   ckpt_every=5000, keep_checkpoints=3,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=10000, metrics="fid,is", extractor="inception", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
