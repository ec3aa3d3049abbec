"""beta-VAE on dSprites (TFDS `dsprites`, 737,280 binary 64x64 shapes), Higgins et al. 2017: beta 4,
10 latents, Bernoulli likelihood, Adam 5e-4 (the paper's 1e-4 also works, slower), batch 64. The
paper's architecture (32-32-64-64 convolutions, 256 hidden). Needs `tfds build dsprites`.
Set vae.objective=capacity for Burgess et al. 2018 (gamma 1000, C to 25 nats over 100k steps).
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "vae"
    c.seed = 0
    c.data = dict(source="tfds:dsprites:train", data_dir="", image_size=64, channels=1, crop=0,
                  random_flip=False, shuffle_buffer=50000)
    c.model = dict(latent_dim=10)
    c.vae = dict(likelihood="bernoulli", sigma=0.1, objective="beta", beta=4.0, gamma=1000.0,
                 capacity_max=25.0, capacity_steps=100000)
    c.optim = dict(lr=5e-4, warmup_steps=0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=0.0, ema_decay=0.0)
    c.train = dict(steps=300000, batch_size=64, log_every=100, sample_every=10000,
                   ckpt_every=10000, keep_checkpoints=3,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=10000, metrics="fid,kid,pr", extractor="classifier", split="train", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
