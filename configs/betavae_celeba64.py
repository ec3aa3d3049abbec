"""beta-VAE on CelebA 64x64 (Higgins et al. 2017's CelebA network: 32-32-64-64 convolutions, 256 hidden,
32 latents), Gaussian likelihood with fixed sigma 0.1 on the [-1, 1] scale, beta 1 (raise it for
smoother, more factorised codes), centre crop 148 as PyTorch-VAE does. Needs `tfds build celeb_a`.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "vae"
    c.seed = 0
    c.data = dict(source="tfds:celeb_a:train", data_dir="", image_size=64, channels=3, crop=148,
                  random_flip=True, shuffle_buffer=10000)
    c.model = dict(latent_dim=32)
    c.vae = dict(likelihood="gaussian", sigma=0.1, objective="beta", beta=1.0, gamma=1000.0,
                 capacity_max=50.0, capacity_steps=100000)
    c.optim = dict(lr=5e-4, warmup_steps=0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=0.0, ema_decay=0.0)
    c.train = dict(steps=100000, batch_size=144, log_every=100, sample_every=5000,
                   ckpt_every=5000, keep_checkpoints=3,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=10000, metrics="fid,is", extractor="inception", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
