"""DCGAN on CelebA at 64x64, as pytorch/examples/dcgan trains it (ngf = ndf = 64, nz 100, batch 128).

The aligned 178x218 faces are centre-cropped to 178x178 and resized to 64 (the example resizes
the short side to 64, then centre-crops: the same square). Needs `tfds build celeb_a`.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.family = "gan"
    c.seed = 0
    c.data = dict(source="tfds:celeb_a:train", data_dir="", image_size=64, channels=3, crop=178,
                  random_flip=False, shuffle_buffer=10000)
    c.model = dict(latent_dim=100, ngf=64, ndf=64, disc_norm="batch", upsample="subpixel")
    c.gan = dict(loss="nonsaturating", n_critic=1, gp_weight=10.0)
    adam = dict(lr=2e-4, warmup_steps=0, b1=0.5, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip=0.0)
    c.optim = dict(gen=adam, disc=dict(adam), ema_decay=0.0)
    c.train = dict(steps=50000, batch_size=128, log_every=100, sample_every=2500,
                   ckpt_every=2500, keep_checkpoints=3,
                   compute_dtype="float32", grad_accum=1, max_nonfinite=10)
    c.sample = dict(num=64)
    # every > 0: `jgen eval` every that many steps, logged as eval/* and saved in WORKDIR/eval/
    c.eval = dict(every=0, num=10000, metrics="fid,is", extractor="inception", split="test", batch=250,
                  classifier="", inception="", cache_dir="")
    return ml_collections.ConfigDict(c)
